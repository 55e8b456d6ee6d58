"""Apply a reward spec to samples: routing, batching, combination, per-sample isolation.

`Scorer` is the engine behind `rewardkit score`, the server and the trainer adapters. One
bad sample never fails the batch: an exception inside a reward becomes an `Unscored` for
that sample alone, and a sample no reward applies to is reported unscored with a reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardkit.errors import ConfigError, IsolationUnavailableError, MissingDependencyError
from rewardkit.registry import build_reward
from rewardkit.reward import Reward, check_range
from rewardkit.spec import RewardEntry, RewardSpec, load_spec
from rewardkit.types import RewardResult, Sample, Score, Unscored

__all__ = ["RewardReport", "Scorer", "result_to_dict"]


def result_to_dict(result: RewardResult) -> dict[str, Any]:
    """JSON-ready form of one reward's result."""
    if isinstance(result, Score):
        out: dict[str, Any] = {"score": result.value, "reason": result.reason}
        if result.details:
            out["details"] = dict(result.details)
        return out
    out = {"score": None, "reason": result.reason, "message": result.message}
    if result.raw is not None:
        out["raw"] = result.raw
    return out


@dataclass(frozen=True, slots=True)
class RewardReport:
    """The combined reward of one sample and the result of every reward that applied."""

    reward: float | None
    components: dict[str, RewardResult] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    reason: str | None = None  # why `reward` is None

    @property
    def scored(self) -> bool:
        return self.reward is not None

    def details(self) -> dict[str, Any]:
        """Per-reward breakdown, JSON-ready."""
        return {
            label: {**result_to_dict(result), "weight": self.weights[label]}
            for label, result in self.components.items()
        }


class Scorer:
    """Scores samples under a spec. Build once, call many times; `close()` frees pools."""

    def __init__(self, spec: RewardSpec | str | Path | dict[str, Any]) -> None:
        self.spec = load_spec(spec)
        self._rewards: list[tuple[RewardEntry, Reward]] = [
            (entry, build_reward(entry.reward, **entry.args)) for entry in self.spec.rewards
        ]

    @classmethod
    def for_reward(cls, name: str, **args: Any) -> Scorer:
        return cls(RewardSpec.single(name, **args))

    @property
    def labels(self) -> list[str]:
        return [entry.label for entry, _ in self._rewards]

    def _routes(self, samples: Sequence[Sample]) -> list[list[int]]:
        """For each reward, the indices of samples it applies to."""
        return [
            [i for i, s in enumerate(samples) if entry.applies_to(s.fields)]
            for entry, _ in self._rewards
        ]

    def score(self, samples: Sequence[Sample]) -> list[RewardReport]:
        """Score a batch synchronously; one report per sample, in order."""
        routes = self._routes(samples)
        per_reward: list[list[RewardResult]] = []
        for (_, reward), indices in zip(self._rewards, routes, strict=True):
            batch = [samples[i] for i in indices]
            per_reward.append(_isolated_batch(reward, batch) if batch else [])
        return self._combine(len(samples), routes, per_reward)

    async def ascore(self, samples: Sequence[Sample]) -> list[RewardReport]:
        """Score a batch; rewards run concurrently (judges stay async, rules run in threads)."""
        routes = self._routes(samples)

        async def run(reward: Reward, indices: list[int]) -> list[RewardResult]:
            batch = [samples[i] for i in indices]
            return await _aisolated_batch(reward, batch) if batch else []

        per_reward = await asyncio.gather(
            *(run(reward, idx) for (_, reward), idx in zip(self._rewards, routes, strict=True))
        )
        return self._combine(len(samples), routes, list(per_reward))

    def _combine(
        self, n: int, routes: list[list[int]], per_reward: list[list[RewardResult]]
    ) -> list[RewardReport]:
        components: list[dict[str, RewardResult]] = [{} for _ in range(n)]
        for (entry, reward), indices, results in zip(
            self._rewards, routes, per_reward, strict=True
        ):
            if len(results) != len(indices):
                bad = Unscored(
                    "error",
                    f"{entry.label} returned {len(results)} results for {len(indices)} samples",
                )
                results = [bad] * len(indices)
            for i, result in zip(indices, results, strict=True):
                components[i][entry.label] = check_range(
                    _checked_type(result, entry.label), reward.value_range
                )
        weights = {entry.label: entry.weight for entry, _ in self._rewards}
        return [self._combine_one(parts, weights) for parts in components]

    def _combine_one(
        self, parts: dict[str, RewardResult], weights: dict[str, float]
    ) -> RewardReport:
        used = {label: weights[label] for label in parts}
        if not parts:
            return RewardReport(
                None,
                {},
                {},
                reason="no_matching_reward: no reward in the spec applies to this sample",
            )
        unscored = {label: r for label, r in parts.items() if isinstance(r, Unscored)}
        if unscored and self.spec.on_unscored == "unscored":
            why = "; ".join(f"{label}: {r.reason}" for label, r in unscored.items())
            return RewardReport(None, parts, used, reason=why)
        scored = [(label, r) for label, r in parts.items() if isinstance(r, Score)]
        if not scored and self.spec.on_unscored == "skip":
            why = "; ".join(f"{label}: {r.reason}" for label, r in unscored.items())
            return RewardReport(None, parts, used, reason=why)
        total = sum(weights[label] * r.value for label, r in scored)
        return RewardReport(float(total), parts, used)

    def warm_up(self) -> None:
        """Start what rewards start lazily (worker pools): rewards with a `warm_up()` method."""
        for _, reward in self._rewards:
            warm_up = getattr(reward, "warm_up", None)
            if callable(warm_up):
                warm_up()

    def close(self) -> None:
        for _, reward in self._rewards:
            reward.close()

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _checked_type(result: object, label: str) -> RewardResult:
    """A reward that returns a bare float (or anything else) must not vanish from the sum."""
    if isinstance(result, Score | Unscored):
        return result
    return Unscored(
        "invalid_reward", f"{label} returned {type(result).__name__}, not a Score or Unscored"
    )


def _error(exc: Exception) -> Unscored:
    return Unscored("error", f"{type(exc).__name__}: {exc}")


def _one(results: list[RewardResult]) -> RewardResult:
    if len(results) != 1:
        return Unscored("error", f"returned {len(results)} results for 1 sample")
    return results[0]


def _score_one(reward: Reward, sample: Sample) -> RewardResult:
    # A reward may implement only the batch form; then one sample is a batch of one.
    if type(reward).score is not Reward.score:
        return reward.score(sample)
    return _one(reward.score_batch([sample]))


# Errors about the setup, not the sample: every sample would fail the same way, so the
# user must hear about it once (a one-line CLI error), not as a column of unscored rows.
_SETUP_ERRORS = (ConfigError, MissingDependencyError, IsolationUnavailableError)


def _isolated_batch(reward: Reward, batch: Sequence[Sample]) -> list[RewardResult]:
    """Run a batch; if it raises, rescore one by one so only the bad sample is lost."""
    try:
        return reward.score_batch(batch)
    except _SETUP_ERRORS:
        raise
    except Exception:
        results: list[RewardResult] = []
        for sample in batch:
            try:
                results.append(_score_one(reward, sample))
            except _SETUP_ERRORS:
                raise
            except Exception as exc:
                results.append(_error(exc))
        return results


async def _aisolated_batch(reward: Reward, batch: Sequence[Sample]) -> list[RewardResult]:
    """The async form: a judge stays on the event loop when one sample breaks its batch."""
    try:
        return await reward.ascore_batch(batch)
    except _SETUP_ERRORS:
        raise
    except Exception:
        if type(reward).ascore_batch is Reward.ascore_batch:  # a sync rule run in a thread
            return await asyncio.to_thread(_isolated_batch, reward, batch)
        results: list[RewardResult] = []
        for sample in batch:
            try:
                results.append(_one(await reward.ascore_batch([sample])))
            except _SETUP_ERRORS:
                raise
            except Exception as exc:
                results.append(_error(exc))
        return results
