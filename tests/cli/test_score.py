"""`rewardkit score`: happy path, resume, bad rows, duplicate ids, usage errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from rewardkit.cli._spec_args import parse_reward_args
from rewardkit.cli.main import main
from rewardkit.errors import ConfigError
from rewardkit.registry import register_reward
from rewardkit.reward import Reward
from rewardkit.types import RewardResult, Sample, Score, Unscored

REPO = Path(__file__).resolve().parents[2]


@register_reward("test_cli_exact")
class ExactMatch(Reward):
    """Test-local reward: 1 if the response equals the reference, unscored without one.

    Counts every sample it sees in a class-level list, so tests can tell which samples a
    resumed run actually scored.
    """

    name: ClassVar[str] = "test_cli_exact"
    value_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)
    seen: ClassVar[list[str]] = []

    def __init__(self, strip: bool = False, bonus: float = 0.0) -> None:
        self.strip = strip
        self.bonus = bonus

    def score(self, sample: Sample) -> RewardResult:
        ExactMatch.seen.append(str(sample.id))
        if sample.response == "boom":
            raise RuntimeError("reward crashed on this sample")
        if sample.reference is None:
            return Unscored("no_reference", "sample has no reference")
        response = sample.response.strip() if self.strip else sample.response
        return Score(1.0 if response == str(sample.reference) else self.bonus, "checked")

    def score_batch(self, samples: Sequence[Sample]) -> list[RewardResult]:
        return [self.score(s) for s in samples]


def write_jsonl(path: Path, rows: Sequence[dict[str, Any] | str]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def by_id(path: Path) -> dict[str, dict[str, Any]]:
    lines = read_jsonl(path)
    ids = [line["id"] for line in lines]
    assert len(ids) == len(set(ids)), f"ids repeated in output: {ids}"
    return {line["id"]: line for line in lines}


@pytest.fixture(autouse=True)
def _reset_seen() -> None:
    ExactMatch.seen.clear()


ROWS: list[dict[str, Any] | str] = [
    {"id": "a", "prompt": "1+1?", "response": "2", "reference": "2"},
    {"id": "b", "prompt": "1+2?", "response": " 3 ", "reference": "3"},
    {"prompt": "no id", "response": "x", "reference": "y", "task": "chat"},
    {"id": 7, "prompt": "p", "response": "r"},
]


def test_happy_path_writes_one_line_per_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    code = main(
        [
            "score",
            str(src),
            "-o",
            str(out),
            "--reward",
            "test_cli_exact",
            "--arg",
            "strip=true",
            "--arg",
            "bonus=0.25",
        ]
    )
    assert code == 0
    lines = read_jsonl(out)
    assert [line["id"] for line in lines] == [
        "a",
        "b",
        "3",
        "7",
    ]  # input order; line number as default id
    got = {line["id"]: line for line in lines}
    assert got["a"]["reward"] == 1.0
    assert got["b"]["reward"] == 1.0  # strip=true parsed as a bool
    assert got["3"]["reward"] == 0.25  # bonus=0.25 parsed as a float
    assert got["a"]["details"] == {
        "test_cli_exact": {"score": 1.0, "reason": "checked", "weight": 1.0}
    }
    assert got["7"]["reward"] is None
    assert got["7"]["reason"] == "test_cli_exact: no_reference"
    assert got["7"]["details"]["test_cli_exact"]["reason"] == "no_reference"
    assert all("error" not in line for line in lines)
    err = capsys.readouterr().err
    assert "3 scored, 1 unscored, 0 errors, 0 already done" in err


def test_spec_routes_by_fields_and_weights(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "rewards:\n"
        "  - reward: test_cli_exact\n"
        "    args: {strip: true}\n"
        "    when: {task: [math]}\n"
        "  - reward: think_format\n"
        "    weight: 0.5\n"
        "on_unscored: zero\n",
        encoding="utf-8",
    )
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {
                "id": "m1",
                "task": "math",
                "prompt": "p",
                "response": "<think>t</think>4",
                "reference": "<think>t</think>4",
            },
            {"id": "m2", "task": "math", "prompt": "p", "response": "4", "reference": "5"},
            {"id": "c1", "task": "chat", "prompt": "p", "response": "<think>t</think>hi"},
        ],
    )
    out = tmp_path / "out.jsonl"
    assert main(["score", str(src), "-o", str(out), "--spec", str(spec), "--no-progress"]) == 0
    got = by_id(out)
    assert got["m1"]["reward"] == pytest.approx(1.5)
    assert got["m2"]["reward"] == pytest.approx(0.0)
    assert got["c1"]["reward"] == pytest.approx(0.5)
    assert set(got["c1"]["details"]) == {"think_format"}  # routed away from the math reward
    assert set(got["m1"]["details"]) == {"test_cli_exact", "think_format"}


def test_bad_lines_are_reported_with_line_numbers_and_do_not_stop_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "ok1", "prompt": "p", "response": "r", "reference": "r"},
            "{not json",
            "[1, 2]",
            {"id": "noresp", "prompt": "p"},
            {"id": "badresp", "prompt": "p", "response": 5},
            {"id": "crash", "prompt": "p", "response": "boom", "reference": "x"},
            {"id": "ok2", "prompt": "p", "response": "r", "reference": "r"},
        ],
    )
    out = tmp_path / "out.jsonl"
    # Bad rows are error lines: the run finishes and exits 1 (rewardkit.cli._exit).
    assert (
        main(["score", str(src), "-o", str(out), "--reward", "test_cli_exact", "--chunk-size", "2"])
        == 1
    )
    got = by_id(out)
    assert got["ok1"]["reward"] == 1.0 and got["ok2"]["reward"] == 1.0
    assert got["2"]["line"] == 2 and "line 2: invalid JSON" in got["2"]["error"]
    assert got["3"]["line"] == 3 and "expected a JSON object" in got["3"]["error"]
    assert got["noresp"]["error"] == "line 4: missing field 'response'"
    assert "line 5" in got["badresp"]["error"] and "string" in got["badresp"]["error"]
    for key in ("2", "3", "noresp", "badresp"):
        assert got[key]["reward"] is None
    # A reward that raises on one sample makes only that sample unscored.
    assert got["crash"]["reward"] is None and "error" not in got["crash"]
    assert got["crash"]["details"]["test_cli_exact"]["reason"] == "error"
    assert "reward crashed" in got["crash"]["details"]["test_cli_exact"]["message"]
    assert "2 scored, 1 unscored, 4 errors" in capsys.readouterr().err


def test_duplicate_ids_keep_the_first_and_report_later_ones(tmp_path: Path) -> None:
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "q1", "prompt": "p", "response": "r", "reference": "r"},
            {"id": "q1", "prompt": "p", "response": "other", "reference": "r"},
            {"id": "q2", "prompt": "p", "response": "r", "reference": "r"},
            {"id": "q1", "prompt": "p", "response": "third", "reference": "r"},
        ],
    )
    out = tmp_path / "out.jsonl"
    assert main(["score", str(src), "-o", str(out), "--reward", "test_cli_exact"]) == 1
    got = by_id(out)
    assert set(got) == {"q1", "q1@line2", "q2", "q1@line4"}
    assert got["q1"]["reward"] == 1.0  # the first occurrence is the one scored
    assert got["q1@line2"]["error"] == "line 2: duplicate id 'q1' (first on line 1); not scored"
    assert got["q1@line4"]["line"] == 4 and got["q1@line4"]["reward"] is None
    assert ExactMatch.seen == ["q1", "q2"]
    # Rerunning writes nothing new: every key, duplicates included, is already done.
    assert main(["score", str(src), "-o", str(out), "--reward", "test_cli_exact"]) == 0
    assert len(read_jsonl(out)) == 4


def test_resume_skips_done_ids_and_trims_a_half_written_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"id": f"s{i}", "prompt": "p", "response": "r", "reference": "r"} for i in range(6)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    # A run that crashed: two complete lines (one with a marker value we must keep) and
    # half of a third line, no trailing newline.
    done = [
        {"id": "s0", "reward": 0.5, "details": {}},
        {"id": "s3", "reward": 0.5, "details": {}},
    ]
    out.write_text(
        "".join(json.dumps(d) + "\n" for d in done) + '{"id": "s1", "rew', encoding="utf-8"
    )
    assert (
        main(["score", str(src), "-o", str(out), "--reward", "test_cli_exact", "--no-progress"])
        == 0
    )
    got = by_id(out)  # parses every line: the half line is gone
    assert set(got) == {f"s{i}" for i in range(6)}
    assert got["s0"]["reward"] == 0.5 and got["s3"]["reward"] == 0.5  # not rescored
    assert got["s1"]["reward"] == 1.0
    assert ExactMatch.seen == ["s1", "s2", "s4", "s5"]
    assert "4 scored, 0 unscored, 0 errors, 2 already done" in capsys.readouterr().err


def test_interrupted_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"id": f"s{i}", "prompt": "p", "response": "r", "reference": "r"} for i in range(5)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    original = ExactMatch.score

    def interrupt_on_s3(self: ExactMatch, sample: Sample) -> RewardResult:
        if sample.id == "s3":
            raise KeyboardInterrupt
        return original(self, sample)

    monkeypatch.setattr(ExactMatch, "score", interrupt_on_s3)
    argv = ["score", str(src), "-o", str(out), "--reward", "test_cli_exact", "--chunk-size", "2"]
    assert main(argv) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err
    assert [line["id"] for line in read_jsonl(out)] == ["s0", "s1"]  # the first chunk was flushed
    monkeypatch.setattr(ExactMatch, "score", original)
    ExactMatch.seen.clear()
    assert main(argv) == 0
    assert set(by_id(out)) == {f"s{i}" for i in range(5)}
    assert ExactMatch.seen == ["s2", "s3", "s4"]


@pytest.mark.parametrize(
    ("argv_tail", "message"),
    [
        (["--reward", "no_such_reward"], "unknown reward 'no_such_reward'"),
        (
            ["--reward", "overlong_penalty", "--arg", "max_length=10"],
            "bad options for reward 'overlong_penalty'",
        ),
        (["--reward", "test_cli_exact", "--arg", "strip"], "expected KEY=VALUE"),
        (["--reward", "test_cli_exact", "--chunk-size", "0"], "--chunk-size"),
        (["--spec", "{spec}", "--arg", "a=1"], "--arg applies to --reward"),
        (["--spec", "{missing}"], "spec file not found"),
        (["--spec", "{bad_spec}"], "rewards.0.wieght: Extra inputs are not permitted"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv_tail: list[str], message: str
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    good = tmp_path / "good.yaml"
    good.write_text("rewards: [{reward: think_format}]\n", encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rewards:\n  - reward: think_format\n    wieght: 2\n", encoding="utf-8")
    paths = {"spec": str(good), "missing": str(tmp_path / "nope.yaml"), "bad_spec": str(bad)}
    out = tmp_path / "out.jsonl"
    argv = ["score", str(src), "-o", str(out), *[a.format(**paths) for a in argv_tail]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("rewardkit score: error:") and err.count("\n") == 1
    assert not out.exists()  # a bad spec leaves no empty output behind


def test_missing_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "score",
                str(tmp_path / "none.jsonl"),
                "-o",
                str(tmp_path / "o.jsonl"),
                "--reward",
                "think_format",
            ]
        )
        == 2
    )
    assert "input not found" in capsys.readouterr().err


def test_output_must_not_be_the_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    assert main(["score", str(src), "-o", str(src), "--reward", "think_format"]) == 2
    assert "OUTPUT is the INPUT" in capsys.readouterr().err


def test_progress_bar_only_on_a_tty_and_not_with_no_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert (
        main(["score", str(src), "-o", str(tmp_path / "a.jsonl"), "--reward", "think_format"]) == 0
    )
    assert "4/4" in capsys.readouterr().err  # tqdm drew a bar with the counted total
    assert (
        main(
            [
                "score",
                str(src),
                "-o",
                str(tmp_path / "b.jsonl"),
                "--reward",
                "think_format",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "4/4" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (["n=3"], {"n": 3}),
        (["x=0.5", "flag=false"], {"x": 0.5, "flag": False}),
        (["token=|special_token|"], {"token": "|special_token|"}),
        (["name=a=b"], {"name": "a=b"}),
        (["empty="], {"empty": ""}),
        (["target=en"], {"target": "en"}),
        (["v=null"], {"v": None}),
        (["pair=a: b"], {"pair": "a: b"}),
        (["broken=[1"], {"broken": "[1"}),
        (["langs=[en, fr]"], {"langs": ["en", "fr"]}),
    ],
)
def test_parse_reward_args(pairs: list[str], expected: dict[str, Any]) -> None:
    assert parse_reward_args(pairs) == expected


@pytest.mark.parametrize(
    ("pairs", "match"),
    [(["novalue"], "KEY=VALUE"), (["=1"], "KEY=VALUE"), (["a=1", "a=2"], "twice")],
)
def test_parse_reward_args_errors(pairs: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_reward_args(pairs)


def test_parquet_and_dataset_inputs(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    datasets = pytest.importorskip("datasets")
    rows = {
        "id": ["p1", "p2"],
        "prompt": ["q", "q"],
        "response": ["x", "y"],
        "reference": ["x", "x"],
    }
    pq.write_table(pa.table(rows), tmp_path / "in.parquet")
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    for source in ("in.parquet", "ds"):
        out = tmp_path / f"{source}.out.jsonl"
        assert (
            main(["score", str(tmp_path / source), "-o", str(out), "--reward", "test_cli_exact"])
            == 0
        )
        assert {k: v["reward"] for k, v in by_id(out).items()} == {"p1": 1.0, "p2": 0.0}


def test_console_script_subprocess(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "rewardkit"
    if not script.exists():
        pytest.skip("rewardkit console script is not installed next to this python")
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "good", "prompt": "p", "response": "<think>t</think>answer"},
            {"id": "bad", "prompt": "p", "response": "answer"},
            "oops",
        ],
    )
    out = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(script), "score", str(src), "-o", str(out), "--reward", "think_format"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr  # the "oops" row is an error line
    got = by_id(out)
    assert got["good"]["reward"] == 1.0
    assert got["bad"]["details"]["think_format"]["reason"] == "missing_think"
    assert "invalid JSON" in got["3"]["error"]
    assert "2 scored, 0 unscored, 1 errors" in done.stderr
    # A bad spec: exit 2, one line, no traceback.
    spec = tmp_path / "bad.toml"
    spec.write_text("[[rewards]]\nreward = 'think_format'\n[[rewards]]\nreward = 'think_format'\n")
    failed = subprocess.run(
        [str(script), "score", str(src), "-o", str(tmp_path / "o2.jsonl"), "--spec", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert failed.returncode == 2
    assert "Traceback" not in failed.stderr
    assert "reward labels must be unique" in failed.stderr
    assert failed.stderr.count("\n") == 1


EXAMPLES = REPO / "examples"


def test_readme_command_scores_the_math_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The README's first command: rewardkit score examples/math.jsonl -o scores.jsonl --reward math
    out = tmp_path / "scores.jsonl"
    assert main(["score", str(EXAMPLES / "math.jsonl"), "-o", str(out), "--reward", "math"]) == 0
    got = by_id(out)
    assert len(got) == 30
    assert all(line["reward"] in (0.0, 1.0) for line in got.values())  # every sample scored
    clear_cut = {
        "eggs-right": 1.0,
        "eggs-wrong": 0.0,
        "pens-boxed": 1.0,
        "train-unit-slip": 0.0,
        "cookies-selfcorrect": 1.0,
        "books-sign-wrong": 0.0,
        "ages-think-right": 1.0,
        "ages-answered-son": 0.0,
        "water-ignored-drain": 0.0,
        "salary-monthly-only": 0.0,
    }
    assert {k: got[k]["reward"] for k in clear_cut} == clear_cut
    assert "30 scored, 0 unscored, 0 errors" in capsys.readouterr().err


def test_mixed_example_routes_by_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mixed.jsonl"
    code = main(
        [
            "score",
            str(EXAMPLES / "mixed.jsonl"),
            "-o",
            str(out),
            "--spec",
            str(EXAMPLES / "spec.yaml"),
        ]
    )
    err = capsys.readouterr().err
    if code == 2 and "isolat" in err.lower():
        pytest.skip(f"this host cannot sandbox code: {err.strip()}")
    assert code == 0, err
    got = by_id(out)
    parts = {k: set(v["details"]) for k, v in got.items()}
    assert parts["m1"] == {"math", "format"}
    assert parts["c1"] == {"code", "format"}
    assert parts["t1"] == {"format", "language"}
    assert got["p1"]["reward"] is None and got["p1"]["reason"].startswith("no_matching_reward")
    assert got["c1"]["reward"] == pytest.approx(1.1)  # passes both tests, keeps the format
    assert got["c2"]["reward"] == pytest.approx(0.1)  # concatenates strings: wrong answer
    assert got["c4"]["reward"] == pytest.approx(1.1)  # asserts pass
    assert got["c5"]["reward"] == pytest.approx(0.1)  # asserts fail
    assert got["m3"]["details"]["format"]["reason"] == "missing_think"
    # The Chinese prompt's CoT drifts into English: language consistency below 1.
    assert 0 < got["t2"]["details"]["language"]["score"] < 1


def test_ids_past_64_bits_are_not_duplicates(tmp_path: Path) -> None:
    # orjson reads both as the float 1.8446744073709552e19: they would collide as one id.
    src = tmp_path / "in.jsonl"
    src.write_text(
        f'{{"id": {2**64}, "response": "r", "reference": "r"}}\n'
        f'{{"id": {2**64 + 1}, "response": "r", "reference": "r"}}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    assert main(["score", str(src), "-o", str(out), "--reward", "test_cli_exact"]) == 0
    got = by_id(out)
    assert set(got) == {str(2**64), str(2**64 + 1)}
    assert all(line["reward"] == 1.0 for line in got.values())


def test_made_up_keys_never_take_an_id_of_the_input(tmp_path: Path) -> None:
    rows: list[dict[str, Any] | str] = [
        {"id": "1", "response": "r", "reference": "r"},
        {"id": "1", "response": "dup", "reference": "r"},  # would be keyed "1@line2"...
        {"id": "1@line2", "response": "r", "reference": "r"},  # ...which is this row's own id
        {"prompt": "no id", "response": "r", "reference": "r"},  # line 4: "4" is taken below
        {"id": 4, "response": "r", "reference": "r"},
        {"id": "@line4", "response": "r", "reference": "r"},  # and so is "@line4"
        "not json",  # line 7, keyed "7"
    ]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assert (
        main(["score", str(src), "-o", str(out), "--reward", "test_cli_exact"]) == 1
    )  # error lines
    got = by_id(out)  # asserts one line per id
    assert len(got) == len(rows)
    # Every id given in the input is kept as given and scored.
    for given in ("1", "1@line2", "4", "@line4"):
        assert got[given]["reward"] == 1.0, given
    assert got["1@line2~"]["error"].startswith("line 2: duplicate id '1' (first on line 1)")
    assert got["@line4~"]["reward"] == 1.0  # the row without an id is scored too
    assert "invalid JSON" in got["7"]["error"]
    # The keys are the same on every run: a rerun finds everything done.
    assert main(["score", str(src), "-o", str(out), "--reward", "test_cli_exact"]) == 0
    assert len(read_jsonl(out)) == len(rows)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("{tmp}", "is a directory; give a file path"),
        ("{tmp}/in.jsonl/out.jsonl", "which is a file, not a directory"),
        ("/proc/rewardkit-test/out.jsonl", "cannot write /proc/rewardkit-test/out.jsonl"),
    ],
)
@pytest.mark.parametrize("command", ["score", "judge"])
def test_unusable_output_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str, message: str, command: str
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    target = output.format(tmp=tmp_path)
    if command == "score":
        tail = ["--reward", "test_cli_exact"]
    else:  # the judge is never reached: the output is checked first
        tail = ["--model", "j", "--base-url", "http://127.0.0.1:9/v1", "--no-progress"]
        if target.startswith("/proc"):
            tail.append("--no-cache")  # else the cache beside it fails first (also one line)
    assert main([command, str(src), "-o", target, *tail]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rewardkit {command}: error:") and err.count("\n") == 1, err
    assert message in err


@pytest.mark.slow  # starts the math worker pool in a subprocess
def test_ctrl_c_during_worker_start_up_prints_no_traceback(tmp_path: Path) -> None:
    rows = [{"id": i, "response": f"\\boxed{{{i}}}", "reference": str(i)} for i in range(50)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rewardkit.cli.main",
            "score",
            str(src),
            "-o",
            str(out),
            "--reward",
            "math",
            "--no-progress",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not out.exists():  # OUTPUT opens right before the first batch starts the pool
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)  # the fork server is importing Math-Verify now
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.5)  # a worker or fork server dying after the parent would write now
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err
    assert "interrupted; rerun the same command to resume" in err
