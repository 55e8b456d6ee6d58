"""The data that flows through rewardkit.

A `Sample` goes in; a `RewardResult` comes out: either a `Score` (a finite float with a
reason code) or an `Unscored` (no reward could be given, with a reason and the raw text
kept). A wrong answer is a `Score` of 0; "could not be judged" is `Unscored` — never a
silent 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from rewardkit.errors import InvalidRewardError

__all__ = ["RewardResult", "Sample", "Score", "Unscored"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One policy output to reward.

    `reference` is whatever the reward checks against: a gold answer string for math,
    `{"tests": [...]}` or `{"asserts": "..."}` for code, ground truth for a judge.
    `fields` keeps every other column of the input row (e.g. `data_source`, `task`),
    which reward specs route on.
    """

    prompt: str
    response: str
    reference: Any = None
    id: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Score:
    """A reward value. `reason` is a short machine-readable code ("correct", "wrong", ...)."""

    value: float
    reason: str = "ok"
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise InvalidRewardError(f"reward must be a number, got {type(self.value).__name__}")
        if not math.isfinite(self.value):
            raise InvalidRewardError(f"reward must be finite, got {self.value!r}")


@dataclass(frozen=True, slots=True)
class Unscored:
    """No reward could be given. `reason` is a code, `message` says why, `raw` keeps evidence."""

    reason: str
    message: str = ""
    raw: str | None = None


RewardResult: TypeAlias = Score | Unscored
