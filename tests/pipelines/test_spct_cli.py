"""`rewardkit spct rft` end to end over HTTP (the fake OpenAI server), gold labels included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rewardkit.cli.main import main
from rewardkit.pipelines.spct import read_items
from rewardkit.pipelines.spct.toy import shown_responses
from rewardkit.testing.fake_openai import FakeOpenAI

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "judge-eval"


def verdict(scores: list[int]) -> str:
    return (
        "Specific Criteria: c.\nAnalysis: a.\nScores: \\boxed{" + ", ".join(map(str, scores)) + "}"
    )


def reply(body: dict[str, Any], index: int) -> str:
    """model "gold": scores "good" responses 9, others 2. model "small": position-biased,
    it always prefers the response shown first."""
    shown = shown_responses(body["messages"][-1]["content"])
    if body["model"] == "gold":
        return verdict([9 if s.startswith("good") else 2 for s in shown])
    return verdict([8] + [3] * (len(shown) - 1))


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(reply=reply).run_in_thread() as fake:
        yield fake


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


UNLABELLED = [
    {
        "id": f"q{i}",
        "prompt": f"question {i}",
        "responses": ["good a", "bad b"][:: 1 if i % 2 else -1],
    }
    for i in range(6)
]


def test_gold_judge_labels_then_small_judge_rft(
    tmp_path: Path, server: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_rows(tmp_path / "rows.jsonl", UNLABELLED)
    gold = tmp_path / "gold.jsonl"
    url = ["--base-url", server.base_url]
    assert (
        main(
            [
                "judge",
                str(data),
                "-o",
                str(gold),
                *url,
                "--model",
                "gold",
                "--samples",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    out = tmp_path / "rft"
    argv = [
        "spct",
        "rft",
        str(data),
        "--labels",
        str(gold),
        "-o",
        str(out),
        *url,
        "--model",
        "small",
        "--n-rft",
        "3",
        "--no-progress",
    ]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    # the biased judge is right exactly when the good response is shown first: some but
    # not all of each item's 3 shuffled samples
    assert summary["items"] == 6 and summary["item_status"] == {"accepted": 6}
    assert summary["trajectories"] == 18 and 0 < summary["correct"] < 18
    assert summary["sft_rows"] == summary["correct"]
    assert summary["rejected"] == {"wrong": 18 - summary["correct"]}
    # the bias shows: every accepted row has the best response shown first
    assert summary["sft_best_position"] == {"1": summary["correct"]}
    assert "6 items, 18 trajectories" in capsys.readouterr().err
    # every SFT row agrees with the gold label: good response scored strictly highest
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    for sample in samples:
        row = next(r for r in UNLABELLED if r["id"] == sample["id"])
        good = row["responses"].index("good a")
        assert sample["correct"] == (sample["order"][0] == good)
    # rerun: everything is on disk, no request is sent
    before = len(server.bodies)
    assert main(argv) == 0
    assert len(server.bodies) == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--samples", "4"], "--samples does not apply to spct rft; use --n-rft"),
        (["--meta-rm", "x"], "--meta-rm does not apply"),
        (["--labels", "missing.jsonl"], "--labels missing.jsonl: no such file"),
        (["--n-rft", "0"], "n_rft must be a positive integer"),
    ],
)
def test_user_mistakes_are_one_line_errors(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_rows(tmp_path / "rows.jsonl", UNLABELLED)
    argv = [
        "spct",
        "rft",
        str(data),
        "-o",
        str(tmp_path / "out"),
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
        *extra,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_output_must_be_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_rows(tmp_path / "rows.jsonl", UNLABELLED)
    (tmp_path / "file").write_text("")
    assert (
        main(
            [
                "spct",
                "rft",
                str(data),
                "-o",
                str(tmp_path / "file"),
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
            ]
        )
        == 2
    )
    assert "is a file" in capsys.readouterr().err


@pytest.mark.shared
def test_judge_eval_pairs_read_with_their_labels() -> None:
    path = SHARED / "llmbar" / "llmbar_Natural.json"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path}")
    raw = json.loads(path.read_text())
    items = list(read_items(path))
    assert len(items) == len(raw) == 100
    for item, row in zip(items, raw, strict=True):
        assert item.responses == (row["output_1"], row["output_2"])  # type: ignore[union-attr]
        assert item.best == int(row["label"]) - 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("command", "config", "message"),
    [
        (
            "judge-sft",
            {"model": "m", "dataset": "d", "output_dir": "o", "sft_args": {}},
            "sft_args: Extra inputs are not permitted",
        ),
        ("judge-grpo", {"model": "m", "output_dir": "o"}, "dataset: Field required"),
        (
            "judge-grpo",
            {"model": "m", "dataset": "d", "output_dir": "o", "beta": -1},
            "beta: Input should be greater than or equal to 0",
        ),
        (
            "meta-rm",
            {"model": "m", "data": [], "output_dir": "o"},
            "data: List should have at least 1",
        ),
        ("meta-rm", "- just a list", "expected a mapping"),
    ],
)
def test_train_config_mistakes_are_one_line_errors(
    tmp_path: Path, command: str, config: Any, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    assert main(["train", command, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert main(["train", command, "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_spct_without_a_stage_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spct"]) == 2
    assert "rft" in capsys.readouterr().out
