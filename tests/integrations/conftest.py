"""Test-local rewards for the adapter tests, registered under names no real reward uses."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
import types
from collections.abc import Sequence

import pytest

from rewardkit.backends.base import GenerateRequest
from rewardkit.backends.mock import MockBackend
from rewardkit.registry import register_reward
from rewardkit.reward import Reward
from rewardkit.types import RewardResult, Sample, Score, Unscored

# Every batch an async judge received, as lists of (prompt, response): tests read it.
JUDGE_BATCHES: list[list[tuple[str, str]]] = []


@register_reward("h2_contains")
class ContainsReference(Reward):
    """1.0 if the reference occurs in the response, 0.0 if not; unscored without a reference."""

    value_range = (0.0, 1.0)

    def score(self, sample: Sample) -> RewardResult:
        if sample.reference is None:
            return Unscored("no_reference", "no reference to check against")
        return Score(1.0 if str(sample.reference) in sample.response else 0.0)


@register_reward("h2_length")
class LengthReward(Reward):
    """Number of words in the response (a second, always-scoring component)."""

    def score(self, sample: Sample) -> RewardResult:
        return Score(float(len(sample.response.split())))


@register_reward("h2_field")
class FieldEcho(Reward):
    """Echoes a numeric sample field, to prove dataset columns arrive as fields."""

    def __init__(self, field: str = "bonus") -> None:
        self.field = field

    def score(self, sample: Sample) -> RewardResult:
        if self.field not in sample.fields:
            return Unscored("missing_field", f"no field {self.field!r}")
        return Score(float(sample.fields[self.field]))


def _listwise(request: GenerateRequest, index: int) -> str:
    """A scripted 'judge': scores each listed response by its count of the word 7."""
    del index
    text = request.messages[-1]["content"]
    responses = re.findall(r"\[\d+\] (.*)", text)
    return "Scores: " + ", ".join(str(r.split().count("7")) for r in responses)


@register_reward("h2_group_judge")
class GroupJudge(Reward):
    """An async, listwise judge over a MockBackend: one request per prompt group."""

    def __init__(self, max_group: int = 16) -> None:
        self.backend = MockBackend(_listwise)
        self.max_group = max_group

    async def ascore_batch(self, samples: Sequence[Sample]) -> list[RewardResult]:
        JUDGE_BATCHES.append([(s.prompt, s.response) for s in samples])
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            groups.setdefault(s.prompt, []).append(i)
        results: list[RewardResult] = [Unscored("error")] * len(samples)

        async def judge(indices: list[int]) -> None:
            listing = "\n".join(f"[{k}] {samples[i].response}" for k, i in enumerate(indices))
            request = GenerateRequest(messages=({"role": "user", "content": listing},))
            [completion] = await self.backend.generate(request)
            scores = completion.text.removeprefix("Scores: ").split(", ")
            for i, value in zip(indices, scores, strict=True):
                results[i] = Score(float(value))

        chunks = [
            idx[k : k + self.max_group]
            for idx in groups.values()
            for k in range(0, len(idx), self.max_group)
        ]
        await asyncio.gather(*(judge(c) for c in chunks))
        return results

    def score_batch(self, samples: Sequence[Sample]) -> list[RewardResult]:
        return asyncio.run(self.ascore_batch(samples))


@pytest.fixture
def judge_batches() -> list[list[tuple[str, str]]]:
    """The batches `h2_group_judge` received during the test."""
    JUDGE_BATCHES.clear()
    return JUDGE_BATCHES


@pytest.fixture
def vllm_stub(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in `vllm` for importing OpenRLHF's CPU-side rollout code without a GPU.

    vLLM needs CUDA and is not installed in CI. OpenRLHF's samples generator imports
    `vllm.SamplingParams`, `vllm.inputs.TokensPrompt` and `vllm.utils.random_uuid` at module
    level but the function under test (turning a reward answer into an `Experience`) uses
    none of them. Installed only for the test that asks for it, and only when the real
    vLLM is absent; nothing here generates text.
    """
    if importlib.util.find_spec("vllm") is not None:
        return
    vllm = types.ModuleType("vllm")
    inputs = types.ModuleType("vllm.inputs")
    utils = types.ModuleType("vllm.utils")
    vllm.SamplingParams = type("SamplingParams", (), {})  # type: ignore[attr-defined]
    inputs.TokensPrompt = dict  # type: ignore[attr-defined]
    utils.random_uuid = lambda: "stub"  # type: ignore[attr-defined]
    vllm.inputs, vllm.utils = inputs, utils  # type: ignore[attr-defined]
    for name, module in (("vllm", vllm), ("vllm.inputs", inputs), ("vllm.utils", utils)):
        monkeypatch.setitem(sys.modules, name, module)
