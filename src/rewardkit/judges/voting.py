"""Voting over sampled judgments: a registry of named reducers plus an optional meta-RM filter.

SPCT votes by summing each response's pointwise scores over k samples (a finer reward
range than one sample gives); `mean` is the same ranking on the 1-10 scale; `median` and
`majority` shrug off one wild sample. Meta-RM guided voting is composition, not a reducer:
rate, keep the top `keep` judgments (`select_top`), then reduce with any reducer.

Add your own with the decorator; `JudgeConfig(reducer="name")` then takes its name:

    @reducer("trimmed_mean")
    def trimmed_mean(values: Sequence[float]) -> float:
        ...

A reducer gets one response's scores (at least one) and returns one float. Register it at
import time of a module the process that judges imports (trainer workers included).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TypeVar

from rewardkit.errors import ConfigError
from rewardkit.judges.data import Judgment

__all__ = ["REDUCERS", "available_reducers", "get_reducer", "reducer", "select_top", "vote"]

Reducer = Callable[[Sequence[float]], float]
R = TypeVar("R", bound=Reducer)

#: name -> reducer; `reducer` adds to it.
REDUCERS: dict[str, Reducer] = {}


def reducer(name: str) -> Callable[[R], R]:
    """Decorator: register a reducer (`scores -> float`) under `name`."""
    if not name or not isinstance(name, str):
        raise ConfigError(f"a reducer name must be a non-empty string, got {name!r}")

    def decorate(fn: R) -> R:
        if not callable(fn):
            raise ConfigError(f"reducer {name!r} must be callable, got {type(fn).__name__}")
        REDUCERS[name] = fn
        return fn

    return decorate


def available_reducers() -> list[str]:
    """Every name `JudgeConfig.reducer` accepts."""
    return sorted(REDUCERS)


def get_reducer(name: str) -> Reducer:
    try:
        return REDUCERS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown reducer {name!r}; choose one of {', '.join(available_reducers())} "
            "or register one with @rewardkit.judges.reducer(name)"
        ) from None


@reducer("sum")
def _sum(values: Sequence[float]) -> float:
    return float(sum(values))


@reducer("mean")
def _mean(values: Sequence[float]) -> float:
    return float(sum(values)) / len(values)


@reducer("median")
def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@reducer("majority")
def _majority(values: Sequence[float]) -> float:
    """The most common score; a tie is the mean of the tied scores (order-independent)."""
    counts = Counter(values)
    top = max(counts.values())
    tied = [value for value, count in counts.items() if count == top]
    return float(sum(tied)) / len(tied)


def vote(
    judgments: Sequence[Judgment],
    n: int,
    reducer: str = "sum",
    *,
    use_expected: bool = False,
) -> tuple[float | None, ...]:
    """Reduce each input response's scores over the valid judgments that saw it.

    A response no valid judgment saw gets None (not 0). `use_expected` takes the
    logprob-weighted scores where a judgment has them.
    """
    reduce = get_reducer(reducer)
    collected: list[list[float]] = [[] for _ in range(n)]
    for judgment in judgments:
        if judgment.scores is None:
            continue
        values: Sequence[float] = judgment.scores
        if use_expected and judgment.expected_scores is not None:
            values = judgment.expected_scores
        for index, value in zip(judgment.indices, values, strict=True):
            collected[index].append(float(value))
    return tuple(reduce(v) if v else None for v in collected)


def select_top(ratings: Sequence[float], keep: int | None) -> list[int]:
    """Indices of the `keep` highest ratings (all when keep is None), in original order.

    Ties keep the earlier judgment, so the choice is deterministic.
    """
    if keep is None or keep >= len(ratings):
        return list(range(len(ratings)))
    ranked = sorted(range(len(ratings)), key=lambda i: (-ratings[i], i))
    return sorted(ranked[:keep])
