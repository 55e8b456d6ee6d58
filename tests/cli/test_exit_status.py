"""One exit-status rule for `rewardkit score` and `rewardkit judge` (rewardkit.cli._exit):
0 when every line the run wrote is clean, 1 when some hold an `error`, 2 when it could not
proceed. A script's `rewardkit score ... && next_step` stops on bad rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rewardkit.cli.main import main
from rewardkit.testing.fake_openai import FakeOpenAI

GOOD = [
    # score reads prompt/response; judge reads prompt/responses: both fields given.
    {"id": "a", "prompt": "question-1", "response": "<think>t</think>4", "responses": ["4"]},
    # Unscored by think_format (no think block) is data, not an error: still exit 0.
    {"id": "b", "prompt": "question-2", "response": "4", "responses": ["4", "5"]},
]
BAD_ROW = "{not json"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI().run_in_thread() as fake:
        yield fake


def run(command: str, src: Path, out: Path, server: FakeOpenAI) -> int:
    if command == "score":
        return main(
            ["score", str(src), "-o", str(out), "--reward", "think_format", "--no-progress"]
        )
    return main(
        [
            "judge",
            str(src),
            "-o",
            str(out),
            "--model",
            "j",
            "--base-url",
            server.base_url,
            "--no-progress",
        ]
    )


def write(path: Path, rows: list[dict[str, object] | str]) -> Path:
    text = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["score", "judge"])
@pytest.mark.parametrize(
    ("rows", "first", "rerun"),
    [
        (GOOD, 0, 0),
        # A bad row gets an error line: the run finishes, exits 1; a plain rerun writes
        # nothing new (that line is done) and exits 0.
        ([GOOD[0], BAD_ROW, GOOD[1]], 1, 0),
    ],
    ids=["clean", "bad-row"],
)
def test_exit_status_follows_the_lines_this_run_wrote(
    tmp_path: Path,
    server: FakeOpenAI,
    command: str,
    rows: list[dict[str, object] | str],
    first: int,
    rerun: int,
) -> None:
    src = write(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assert run(command, src, out, server) == first
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(rows)  # every input line has its output line either way
    assert sum(line.get("error") is not None for line in lines) == (first == 1)
    assert run(command, src, out, server) == rerun


@pytest.mark.parametrize("command", ["score", "judge"])
def test_a_run_that_cannot_proceed_exits_2(
    tmp_path: Path, server: FakeOpenAI, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(command, tmp_path / "missing.jsonl", tmp_path / "out.jsonl", server) == 2
    assert "input not found" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["score", "judge"])
def test_help_states_the_rule(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 every line this run wrote is clean" in text
    assert "1 it finished but some lines hold an 'error'" in text
