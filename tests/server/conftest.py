"""Test-local rewards and scorers for the server tests (no math or judge reward needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import pytest

from rewardkit.registry import register_reward
from rewardkit.reward import Reward
from rewardkit.scoring import RewardReport, Scorer
from rewardkit.types import RewardResult, Sample, Score, Unscored


@register_reward("server_test_exact")
class ExactReward(Reward):
    """1.0 when the response equals the reference; raises on a response containing BOOM."""

    name: ClassVar[str] = "server_test_exact"
    value_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)

    def score(self, sample: Sample) -> RewardResult:
        if "BOOM" in sample.response:
            raise ValueError("reward exploded on this sample")
        if sample.reference is None:
            return Unscored("no_reference", "sample has no reference")
        return Score(1.0 if sample.response.strip() == str(sample.reference) else 0.0, "checked")


@register_reward("server_test_judge")
class FailingJudge(Reward):
    """Stands in for a judge whose backend fails on every sample."""

    name: ClassVar[str] = "judge"

    def score(self, sample: Sample) -> RewardResult:
        return Unscored("backend_error", "judge backend unreachable")


class CountingScorer(Scorer):
    """A Scorer that records every `ascore` call (batch sizes), optionally slowed down."""

    def __init__(self, *args: object, delay: float = 0.0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.calls: list[int] = []
        self.delay = delay

    async def ascore(self, samples: Sequence[Sample]) -> list[RewardReport]:
        self.calls.append(len(samples))
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super().ascore(samples)


@pytest.fixture
def make_scorer() -> Iterator[Callable[..., CountingScorer]]:
    """Build CountingScorers from specs; closed after the test."""
    made: list[CountingScorer] = []

    def make(spec: dict[str, Any] | None = None, delay: float = 0.0) -> CountingScorer:
        scorer = CountingScorer(spec or {"rewards": [{"reward": "server_test_exact"}]}, delay=delay)
        made.append(scorer)
        return scorer

    yield make
    for scorer in made:
        scorer.close()


@pytest.fixture
def exact_scorer(make_scorer: Callable[..., CountingScorer]) -> CountingScorer:
    return make_scorer()
