"""The reward contract: configured once, called on batches of samples.

A rule is a plain function (see `rewardkit.rules`); a `Reward` wraps one with its options
so the registry, the spec, the CLI and the trainer adapters can build and call it by name.
Subclasses implement `score` (one sample) or, when batching pays (worker pools, judge
requests), `score_batch` / `ascore_batch`. Instances must be picklable: trainers ship
reward functions to worker processes.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import ClassVar

from rewardkit.types import RewardResult, Sample, Score, Unscored

__all__ = ["Reward", "check_range"]


class Reward(abc.ABC):  # noqa: B024 - subclasses implement score OR score_batch, not both
    """A configured reward function over `Sample`s."""

    #: Registered name, used in logs and details.
    name: ClassVar[str] = "reward"
    #: Inclusive range every `Score` must fall in; None means any finite value.
    value_range: ClassVar[tuple[float, float] | None] = None

    def score(self, sample: Sample) -> RewardResult:
        """Score one sample."""
        raise NotImplementedError(f"{type(self).__name__} implements neither score nor score_batch")

    def score_batch(self, samples: Sequence[Sample]) -> list[RewardResult]:
        """Score many samples; one result per sample, in order."""
        return [self.score(s) for s in samples]

    async def ascore_batch(self, samples: Sequence[Sample]) -> list[RewardResult]:
        """Async form; CPU-bound rewards run in a thread so the event loop stays free."""
        import asyncio  # here: `import rewardkit` (and so the CLI's start) stays light

        return await asyncio.to_thread(self.score_batch, list(samples))

    def close(self) -> None:  # noqa: B027 - optional hook, most rewards hold nothing
        """Release pools, sessions or models this reward holds."""


def check_range(result: RewardResult, value_range: tuple[float, float] | None) -> RewardResult:
    """Turn an out-of-range or non-finite score into an explicit `Unscored`, never a silent value."""
    if not isinstance(result, Score):
        return result
    if not math.isfinite(result.value):
        return Unscored("invalid_reward", f"reward is not finite: {result.value!r}")
    if value_range is not None and not (value_range[0] <= result.value <= value_range[1]):
        return Unscored(
            "invalid_reward",
            f"reward {result.value!r} outside the declared range {list(value_range)}",
        )
    return result
