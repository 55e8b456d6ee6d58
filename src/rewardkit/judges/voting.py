"""Voting over sampled judgments: named reducers plus an optional meta-RM filter.

SPCT votes by summing each response's pointwise scores over k samples (a finer reward
range than one sample gives); `mean` is the same ranking on the 1-10 scale. Meta-RM
guided voting is composition: rate, keep the top `keep`, then reduce — no special class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rewardkit.errors import ConfigError
from rewardkit.judges.data import Judgment

__all__ = ["REDUCERS", "get_reducer", "select_top", "vote"]

Reducer = Callable[[Sequence[float]], float]


def _sum(values: Sequence[float]) -> float:
    return float(sum(values))


def _mean(values: Sequence[float]) -> float:
    return float(sum(values)) / len(values)


REDUCERS: dict[str, Reducer] = {"sum": _sum, "mean": _mean}


def get_reducer(name: str) -> Reducer:
    try:
        return REDUCERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown reducer {name!r}; choose one of {', '.join(REDUCERS)}"
        ) from None


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
