"""Reducers: the built-in table, user-registered ones, and the judge option that picks one."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import pytest

from rewardkit.backends.base import GenerateRequest
from rewardkit.backends.mock import MockBackend
from rewardkit.errors import ConfigError
from rewardkit.judges import (
    REDUCERS,
    JudgeConfig,
    JudgeQuery,
    Judgment,
    PointwiseJudge,
    available_reducers,
    reducer,
    vote,
)
from rewardkit.judges.voting import get_reducer


@pytest.fixture(autouse=True)
def _restore_registry() -> Iterator[None]:
    saved = dict(REDUCERS)
    yield
    REDUCERS.clear()
    REDUCERS.update(saved)


# (reducer, one response's scores over k samples, expected vote)
CASES = [
    ("sum", [7], 7.0),
    ("sum", [7, 3, 8], 18.0),
    ("mean", [7, 3, 8], 6.0),
    ("mean", [2.5, 3.5], 3.0),
    ("median", [1, 9, 8], 8.0),
    ("median", [1, 9, 8, 2], 5.0),
    ("majority", [9, 2, 9, 1], 9.0),
    ("majority", [2, 8], 5.0),  # a tie: the mean of the tied scores
    ("majority", [4, 4, 6, 6, 10], 5.0),
]


@pytest.mark.parametrize(("name", "values", "expected"), CASES)
def test_builtin_reducers(name: str, values: list[float], expected: float) -> None:
    assert get_reducer(name)(values) == pytest.approx(expected)


@pytest.mark.parametrize("name", ["sum", "mean", "median", "majority"])
def test_reducers_do_not_depend_on_sample_order(name: str) -> None:
    values = [9, 2, 9, 1, 5, 2]
    assert get_reducer(name)(values) == get_reducer(name)(list(reversed(values)))


def test_builtins_are_registered() -> None:
    assert {"sum", "mean", "median", "majority"} <= set(available_reducers())


def _judgment(scores: tuple[int, ...] | None, n: int = 1) -> Judgment:
    error = None if scores is not None else "no_scores"
    return Judgment("", None, None, None, tuple(range(n)), scores, error)


def test_vote_reduces_per_response_and_skips_invalid_judgments() -> None:
    judgments = [_judgment((9, 2), 2), _judgment((7, 4), 2), _judgment(None, 2)]
    assert vote(judgments, 2, "median") == (8.0, 3.0)
    assert vote(judgments[2:], 2, "majority") == (None, None)  # no valid vote: None, not 0


def test_a_user_reducer_is_registered_and_listed() -> None:
    @reducer("spread")
    def spread(values: Sequence[float]) -> float:
        return float(max(values) - min(values))

    assert "spread" in available_reducers()
    assert vote([_judgment((9,)), _judgment((3,))], 1, "spread") == (6.0,)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"reducer": "mode"}, "unknown reducer 'mode'; choose one of .*majority"),
        ({"reducer": ""}, "unknown reducer"),
        ({"reducer": None}, "unknown reducer"),
    ],
)
def test_an_unknown_reducer_is_a_config_error_naming_the_choices(
    options: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        JudgeConfig.from_options(options)


@pytest.mark.parametrize("bad", [None, ""])
def test_bad_registrations_are_config_errors(bad: str | None) -> None:
    with pytest.raises(ConfigError):
        reducer(bad)(lambda values: 0.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="callable"):
        reducer("x")(42)  # type: ignore[type-var]


def _scripted(per_sample: Sequence[int]) -> MockBackend:
    """A one-response judge whose i-th sample scores it `per_sample[i]`."""

    def answer(request: GenerateRequest, index: int) -> str:
        return f"Analysis: fine\nScores: \\boxed{{{per_sample[index]}}}"

    return MockBackend(answer)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("sum", 20.0), ("mean", 20 / 3), ("median", 9.0), ("majority", 9.0), ("spread", 7.0)],
)
async def test_pointwise_judge_votes_with_the_configured_reducer(
    name: str, expected: float
) -> None:
    @reducer("spread")  # a user's reducer, picked by name through the judge config
    def spread(values: Sequence[float]) -> float:
        return float(max(values) - min(values))

    config = JudgeConfig.from_options({"samples": 3, "reducer": name, "constrain": False})
    judge = PointwiseJudge(_scripted([2, 9, 9]), config)
    result = await judge.judge(JudgeQuery("q", ("only answer",)))
    assert result.rewards[0] == pytest.approx(expected)
    assert not math.isnan(result.rewards[0] or 0.0)
