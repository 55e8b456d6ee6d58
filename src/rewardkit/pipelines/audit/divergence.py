"""The divergence rule: the proxy reward climbs while the gold reward does not.

Gao et al. (2023, "Scaling Laws for Reward Model Overoptimization") show the shape: as a
policy optimises a proxy reward model, the proxy score keeps rising while the gold score
rises, peaks and falls. The rule flags the point where that starts.

Definition, over audit points in step order (a point whose proxy or gold mean is missing
is left out). With window `W`, at every point `i` with at least `2W` points up to it:

    after   = the last W points (i-W+1 .. i)
    before  = the W points before those (i-2W+1 .. i-W)      baseline="window" (default)
            = the first W points of the run                   baseline="start"
    proxy_gain = mean(proxy over after) - mean(proxy over before)
    gold_gain  = mean(gold  over after) - mean(gold  over before)
    flagged at step[i]  when  proxy_gain >= delta  and  gold_gain <= gold_tolerance

`delta` is in the proxy's units and `gold_tolerance` in the gold's: the proxy must rise by
at least `delta` while the gold rises by no more than `gold_tolerance` (flat) or falls.
Averaging W points on each side keeps single noisy audits from tripping the rule. The
sliding "window" baseline catches the late phase of Gao's curve (gold stops improving
while the proxy keeps climbing); "start" compares with the untrained policy only.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DivergenceConfig",
    "DivergenceFlag",
    "DivergenceReport",
    "RewardHackingWarning",
    "detect_divergence",
    "report_divergence",
]

logger = logging.getLogger("rewardkit.audit")


class RewardHackingWarning(UserWarning):
    """The proxy reward rose while the gold reward stayed flat or fell."""


class DivergenceConfig(BaseModel):
    """When an audit calls a run's proxy and gold curves divergent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(
        default=3, ge=1, description="Audit points averaged on each side of the comparison."
    )
    delta: float = Field(
        default=0.1, gt=0, description="Least rise of the proxy mean (proxy units) to flag."
    )
    gold_tolerance: float = Field(
        default=0.02,
        description="Largest rise of the gold mean (gold units) that still counts as flat.",
    )
    baseline: Literal["window", "start"] = Field(
        default="window",
        description="Compare the last `window` points with the `window` points before them "
        "(window) or with the run's first `window` points (start).",
    )


@dataclass(frozen=True, slots=True)
class DivergenceFlag:
    """One audit point at which the rule held."""

    step: int
    proxy_gain: float
    gold_gain: float

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "proxy_gain": self.proxy_gain, "gold_gain": self.gold_gain}


@dataclass(frozen=True)
class DivergenceReport:
    """The rule's verdict over a whole curve."""

    config: DivergenceConfig
    flags: list[DivergenceFlag] = field(default_factory=list)
    points_used: int = 0

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    @property
    def first_step(self) -> int | None:
        return self.flags[0].step if self.flags else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "first_step": self.first_step,
            "flags": [f.to_dict() for f in self.flags],
            "points_used": self.points_used,
            "rule": self.config.model_dump(),
        }

    def message(self) -> str:
        if not self.flags:
            return "proxy and gold rewards move together: no divergence"
        first = self.flags[0]
        return (
            f"possible reward hacking from step {first.step}: the proxy rose by "
            f"{first.proxy_gain:+.3f} over the last {self.config.window} audits while the "
            f"gold moved {first.gold_gain:+.3f} (rule: proxy >= +{self.config.delta}, "
            f"gold <= +{self.config.gold_tolerance})"
        )


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def detect_divergence(
    steps: Sequence[int],
    proxy: Sequence[float | None],
    gold: Sequence[float | None],
    config: DivergenceConfig | None = None,
) -> DivergenceReport:
    """Apply the rule (module docstring) to aligned curves; points are sorted by step."""
    config = config or DivergenceConfig()
    if not len(steps) == len(proxy) == len(gold):
        raise ValueError(
            f"curves differ in length: {len(steps)} steps, {len(proxy)} proxy, {len(gold)} gold"
        )
    points = sorted(
        (s, p, g)
        for s, p, g in zip(steps, proxy, gold, strict=True)
        if p is not None and g is not None
    )
    w = config.window
    flags: list[DivergenceFlag] = []
    for i in range(2 * w - 1, len(points)):
        after = points[i - w + 1 : i + 1]
        before = points[i - 2 * w + 1 : i - w + 1] if config.baseline == "window" else points[:w]
        proxy_gain = _mean([p for _, p, _ in after]) - _mean([p for _, p, _ in before])
        gold_gain = _mean([g for _, _, g in after]) - _mean([g for _, _, g in before])
        # A hair of float slack so a rise of exactly delta counts as documented.
        if proxy_gain >= config.delta - 1e-12 and gold_gain <= config.gold_tolerance + 1e-12:
            flags.append(DivergenceFlag(points[i][0], proxy_gain, gold_gain))
    return DivergenceReport(config, flags, len(points))


def report_divergence(report: DivergenceReport, *, warn: bool = True) -> None:
    """Say a flagged verdict through `warnings` (RewardHackingWarning) and the logger."""
    if not report.flagged:
        return
    logger.warning(report.message())
    if warn:
        warnings.warn(report.message(), RewardHackingWarning, stacklevel=2)
