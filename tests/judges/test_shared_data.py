"""Real preference pairs (HH-RLHF harmless, from ../shared) through the judge's prompt path."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from judge_doubles import shown_responses

from rewardkit.backends.base import GenerateRequest
from rewardkit.backends.mock import MockBackend
from rewardkit.judges import JudgeConfig, JudgeQuery, PointwiseJudge

pytestmark = pytest.mark.shared

DATA = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "hh-rlhf-harmless"
    / "test.jsonl.gz"
)


def _pairs(limit: int) -> list[tuple[str, str, str]]:
    if not DATA.is_file():
        pytest.skip(f"shared data not found: {DATA}")
    pairs = []
    with gzip.open(DATA, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            head_c, _, chosen = row["chosen"].rpartition("\n\nAssistant:")
            head_r, _, rejected = row["rejected"].rpartition("\n\nAssistant:")
            if head_c != head_r or chosen.strip() == rejected.strip():
                continue
            pairs.append((head_c.strip(), chosen.strip(), rejected.strip()))
            if len(pairs) == limit:
                break
    return pairs


async def test_real_pairs_survive_fencing_and_map_back() -> None:
    """Every real response reaches the judge intact, between its own fences, and a judge
    that scores each text by identity gets its scores back in input order."""
    pairs = _pairs(60)
    truth = {chosen: 8 for _, chosen, _ in pairs} | {rejected: 3 for _, _, rejected in pairs}

    def by_identity(request: GenerateRequest, index: int) -> str:
        return "Scores: \\boxed{" + ", ".join(str(truth[s]) for s in shown_responses(request)) + "}"

    backend = MockBackend(by_identity)
    judge = PointwiseJudge(backend, JudgeConfig(mode="harmlessness", samples=2))
    for prompt, chosen, rejected in pairs:
        result = await judge.judge(JudgeQuery(prompt, (rejected, chosen)))
        assert result.rewards == (6.0, 16.0), prompt[:80]
    for request in backend.requests:
        assert request.messages[0]["content"].count("[BEGIN RESPONSE") == 2
