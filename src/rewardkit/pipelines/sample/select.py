"""The decision for every completion of one prompt: kept, or the first reason it was not.

Stages, in order (each reason is counted in the run summary):

1. `error` (generation failed) and `unscored` (the spec gave no reward);
2. the reward gate: `not_correct` (policy `correct`: reward < threshold) or
   `below_min_reward` (the other policies, when `min_reward` is set);
3. the readability filters (`rewardkit.pipelines.sample.filters`), first failure wins;
4. `duplicate` / `near_duplicate` of a better completion still standing;
5. selection: `not_best` (best-of-n) or `not_top_k`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rewardkit.pipelines.sample.config import DedupConfig, FilterConfig, KeepConfig
from rewardkit.pipelines.sample.dedup import duplicates
from rewardkit.pipelines.sample.filters import readability_reasons
from rewardkit.pipelines.sample.records import Candidate

__all__ = ["Decision", "decide"]


@dataclass(frozen=True, slots=True)
class Decision:
    candidate: Candidate
    reason: str | None  # None: kept
    #: Every readability filter it failed (also those after its first rejection reason).
    failed_filters: tuple[str, ...] = ()
    duplicate_of: int | None = None

    @property
    def kept(self) -> bool:
        return self.reason is None


def _gate(candidate: Candidate, keep: KeepConfig) -> str | None:
    reward = candidate.reward
    assert reward is not None
    if keep.policy == "correct":
        return "not_correct" if reward < keep.threshold else None
    if keep.min_reward is not None and reward < keep.min_reward:
        return "below_min_reward"
    return None


def decide(
    candidates: Sequence[Candidate], keep: KeepConfig, filters: FilterConfig, dedup: DedupConfig
) -> list[Decision]:
    """One decision per candidate, in the candidates' order."""
    reasons: dict[int, str | None] = {}
    failed: dict[int, tuple[str, ...]] = {}
    for i, c in enumerate(candidates):
        if c.error is not None:
            reasons[i] = "error"
            continue
        if c.reward is None:
            reasons[i] = "unscored"
            continue
        failed[i] = tuple(readability_reasons(c, filters))
        reasons[i] = _gate(c, keep) or (failed[i][0] if failed[i] else None)
    # Best first, so the copy that stays is the better one (ties: lower index).
    standing = sorted(
        (i for i, r in reasons.items() if r is None),
        key=lambda i: (-(candidates[i].reward or 0.0), candidates[i].index),
    )
    dup_of: dict[int, int] = {}
    for i, found in zip(
        standing, duplicates([candidates[i].completion for i in standing], dedup), strict=True
    ):
        if found is not None:
            reasons[i] = found[1]
            dup_of[i] = candidates[standing[found[0]]].index
    if keep.policy in ("best", "top_k"):
        limit = 1 if keep.policy == "best" else keep.k
        still = [i for i in standing if reasons[i] is None]
        for i in still[limit:]:
            reasons[i] = "not_best" if keep.policy == "best" else "not_top_k"
    return [
        Decision(c, reasons[i], failed.get(i, ()), dup_of.get(i)) for i, c in enumerate(candidates)
    ]
