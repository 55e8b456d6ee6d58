"""The scoring engine: routing, weights, on_unscored, isolation of bad samples, range checks,
and the async path."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from rewardkit.errors import IsolationUnavailableError
from rewardkit.registry import register_reward
from rewardkit.reward import Reward
from rewardkit.scoring import RewardReport, Scorer, result_to_dict
from rewardkit.types import RewardResult, Sample, Score, Unscored


@register_reward("test_scoring_lookup")
class Lookup(Reward):
    """Scores a sample from `fields["value"]`: a number, "unscored", "raise", or "float"."""

    name: ClassVar[str] = "test_scoring_lookup"
    value_range: ClassVar[tuple[float, float] | None] = (-1.0, 1.0)
    closed: ClassVar[list[str]] = []

    def __init__(self, key: str = "value", batch_raises: bool = False) -> None:
        self.key = key
        self.batch_raises = batch_raises

    def score(self, sample: Sample) -> RewardResult:
        value = sample.fields.get(self.key)
        if value == "raise":
            raise ValueError(f"cannot score {sample.id}")
        if value == "unscored" or value is None:
            return Unscored("no_value", f"{sample.id} has no {self.key}", raw=str(value))
        if value == "float":
            return 0.5  # type: ignore[return-value]  # a bare float: a contract violation
        return Score(float(value), "looked_up", {"key": self.key})

    def score_batch(self, samples: Sequence[Sample]) -> list[RewardResult]:
        if self.batch_raises and any(s.fields.get(self.key) == "raise" for s in samples):
            raise RuntimeError("the whole batch failed")
        return [self.score(s) for s in samples]

    def close(self) -> None:
        Lookup.closed.append(self.key)


@register_reward("test_scoring_batch_only")
class BatchOnly(Reward):
    """Implements only score_batch (like a pool-backed reward); raises on a poisoned batch."""

    name: ClassVar[str] = "test_scoring_batch_only"

    def score_batch(self, samples: Sequence[Sample]) -> list[RewardResult]:
        if any(s.response == "poison" for s in samples):
            raise RuntimeError("poisoned sample in batch")
        return [Score(float(len(s.response)), "length") for s in samples]


@register_reward("test_scoring_short")
class ShortBatch(Reward):
    """Returns one result too few: the engine must not misalign samples and results."""

    name: ClassVar[str] = "test_scoring_short"

    def score_batch(self, samples: Sequence[Sample]) -> list[RewardResult]:
        return [Score(1.0)] * (len(samples) - 1)


@register_reward("test_scoring_async")
class AsyncReward(Reward):
    """An async-only reward (like a judge): waits on a shared event so concurrency is observable."""

    name: ClassVar[str] = "test_scoring_async"
    events: ClassVar[dict[str, asyncio.Event]] = {}

    def __init__(self, role: str, value: float = 1.0) -> None:
        self.role = role
        self.value = value

    async def ascore_batch(self, samples: Sequence[Sample]) -> list[RewardResult]:
        if any(s.response == "poison" for s in samples):
            raise RuntimeError("judge request failed")
        if self.role == "waiter":
            # Completes only if the "setter" reward runs concurrently with this one.
            await asyncio.wait_for(AsyncReward.events["go"].wait(), timeout=5)
        elif self.role == "setter":
            AsyncReward.events["go"].set()
        return [Score(self.value, self.role) for _ in samples]


def sample(sid: str, response: str = "r", **fields: Any) -> Sample:
    return Sample(prompt="p", response=response, id=sid, fields=fields)


def lookup(
    weight: float = 1.0, when: dict[str, Any] | None = None, name: str | None = None, **args: Any
) -> dict[str, Any]:
    entry: dict[str, Any] = {"reward": "test_scoring_lookup", "weight": weight, "args": args}
    if when:
        entry["when"] = when
    if name:
        entry["name"] = name
    return entry


def test_routing_and_weights() -> None:
    spec = {
        "rewards": [
            lookup(1.0, {"task": "math"}, name="math_part"),
            lookup(0.5, name="bonus", key="bonus"),
        ]
    }
    samples = [
        sample("m", task="math", value=1.0, bonus=0.4),
        sample("c", task="chat", value=1.0, bonus=-0.6),
        sample("n", task="math", value=0.0, bonus=1.0),
    ]
    with Scorer(spec) as scorer:
        reports = scorer.score(samples)
    assert [r.reward for r in reports] == pytest.approx([1.2, -0.3, 0.5])
    assert set(reports[0].components) == {"math_part", "bonus"}
    assert set(reports[1].components) == {"bonus"}  # routed away from math_part
    assert reports[1].weights == {"bonus": 0.5}
    assert scorer.labels == ["math_part", "bonus"]


@pytest.mark.parametrize(
    ("mode", "values", "expected", "reason"),
    [
        ("unscored", [1.0, "unscored"], None, "b: no_value"),
        ("skip", [1.0, "unscored"], 1.0, None),
        ("zero", [1.0, "unscored"], 1.0, None),
        ("unscored", ["unscored", "unscored"], None, "a: no_value; b: no_value"),
        ("skip", ["unscored", "unscored"], None, "a: no_value; b: no_value"),
        ("zero", ["unscored", "unscored"], 0.0, None),
        ("unscored", [0.25, 0.5], 0.75, None),
    ],
)
def test_on_unscored_modes(
    mode: str, values: list[Any], expected: float | None, reason: str | None
) -> None:
    spec = {"rewards": [lookup(name="a", key="a"), lookup(name="b", key="b")], "on_unscored": mode}
    with Scorer(spec) as scorer:
        (report,) = scorer.score([sample("s", a=values[0], b=values[1])])
    assert report.reward == expected
    assert report.reason == reason
    assert report.scored is (expected is not None)
    assert set(report.components) == {"a", "b"}  # unscored parts are still reported


def test_no_matching_reward_is_unscored_with_a_reason() -> None:
    with Scorer({"rewards": [lookup(when={"task": "math"})]}) as scorer:
        (report,) = scorer.score([sample("x", task="chat", value=1.0)])
    assert report.reward is None
    assert report.reason is not None and report.reason.startswith("no_matching_reward")
    assert report.components == {} and report.details() == {}


def test_one_raising_sample_does_not_fail_the_batch() -> None:
    spec = {"rewards": [lookup(batch_raises=True)]}
    samples = [sample("a", value=0.5), sample("b", value="raise"), sample("c", value=-0.5)]
    with Scorer(spec) as scorer:
        reports = scorer.score(samples)
    assert [r.reward for r in reports] == [0.5, None, -0.5]
    bad = reports[1].components["test_scoring_lookup"]
    assert isinstance(bad, Unscored) and bad.reason == "error"
    assert bad.message == "ValueError: cannot score b"


def test_batch_only_reward_is_isolated_through_single_batches() -> None:
    with Scorer.for_reward("test_scoring_batch_only") as scorer:
        reports = scorer.score([sample("a", "abc"), sample("b", "poison"), sample("c", "de")])
    assert [r.reward for r in reports] == [3.0, None, 2.0]
    bad = reports[1].components["test_scoring_batch_only"]
    assert isinstance(bad, Unscored) and bad.message == "RuntimeError: poisoned sample in batch"


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        (1.5, "invalid_reward", "outside the declared range [-1.0, 1.0]"),
        (-2.0, "invalid_reward", "outside the declared range"),
        ("float", "invalid_reward", "returned float, not a Score or Unscored"),
    ],
)
def test_invalid_results_become_unscored(value: Any, reason: str, message: str) -> None:
    with Scorer({"rewards": [lookup()], "on_unscored": "zero"}) as scorer:
        report, ok = scorer.score([sample("x", value=value), sample("y", value=1.0)])
    part = report.components["test_scoring_lookup"]
    assert isinstance(part, Unscored) and part.reason == reason and message in part.message
    assert report.reward == 0.0  # counted as zero under on_unscored=zero, never the bad value
    assert ok.reward == 1.0


def test_wrong_number_of_results_unscores_that_reward_for_the_batch() -> None:
    spec = {"rewards": [{"reward": "test_scoring_short"}, lookup()], "on_unscored": "skip"}
    with Scorer(spec) as scorer:
        reports = scorer.score([sample("a", value=0.5), sample("b", value=0.25)])
    for report in reports:
        part = report.components["test_scoring_short"]
        assert isinstance(part, Unscored) and "returned 1 results for 2 samples" in part.message
    assert [r.reward for r in reports] == [0.5, 0.25]


def test_close_reaches_every_reward() -> None:
    Lookup.closed.clear()
    with Scorer({"rewards": [lookup(name="a", key="a"), lookup(name="b", key="b")]}):
        pass
    assert Lookup.closed == ["a", "b"]


def test_details_are_json_ready() -> None:
    with Scorer(
        {"rewards": [lookup(name="a", key="a", weight=2.0), lookup(name="b", key="b")]}
    ) as scorer:
        (report,) = scorer.score([sample("s", a=0.5, b="unscored")])
    details = report.details()
    assert json.loads(json.dumps(details)) == {
        "a": {"score": 0.5, "reason": "looked_up", "details": {"key": "a"}, "weight": 2.0},
        "b": {
            "score": None,
            "reason": "no_value",
            "message": "s has no b",
            "raw": "unscored",
            "weight": 1.0,
        },
    }
    assert result_to_dict(Unscored("x")) == {"score": None, "reason": "x", "message": ""}
    assert RewardReport(1.0).scored and not RewardReport(None).scored


async def test_async_path_matches_sync_and_runs_rewards_concurrently() -> None:
    AsyncReward.events["go"] = asyncio.Event()
    spec = {
        "rewards": [
            {
                "reward": "test_scoring_async",
                "name": "waiter",
                "args": {"role": "waiter", "value": 0.25},
            },
            {
                "reward": "test_scoring_async",
                "name": "setter",
                "args": {"role": "setter", "value": 0.5},
            },
            lookup(when={"task": "math"}),
        ]
    }
    samples = [sample("a", task="math", value=1.0), sample("b", task="chat")]
    with Scorer(spec) as scorer:
        reports = await scorer.ascore(samples)
    # The waiter finished, so both async rewards were in flight at once.
    assert [r.reward for r in reports] == pytest.approx([1.75, 0.75])
    assert set(reports[1].components) == {"waiter", "setter"}


async def test_async_path_isolates_a_failing_sample() -> None:
    AsyncReward.events["go"] = asyncio.Event()
    spec = {
        "rewards": [
            {"reward": "test_scoring_async", "args": {"role": "setter"}},
            lookup(batch_raises=True),
        ]
    }
    samples = [sample("a", value=0.5), sample("b", "poison", value="raise"), sample("c", value=0.0)]
    with Scorer(spec) as scorer:
        reports = await scorer.ascore(samples)
        sync_lookup = [r.components["test_scoring_lookup"] for r in scorer.score(samples)]
    assert [r.reward for r in reports] == [1.5, None, 1.0]
    judge = reports[1].components["test_scoring_async"]
    assert isinstance(judge, Unscored) and judge.message == "RuntimeError: judge request failed"
    # The sync rule inside the async path is isolated the same way as on the sync path.
    assert [r.components["test_scoring_lookup"] for r in reports] == sync_lookup


def test_empty_batch() -> None:
    with Scorer({"rewards": [lookup()]}) as scorer:
        assert scorer.score([]) == []
        assert asyncio.run(scorer.ascore([])) == []


def test_nan_never_passes() -> None:
    # Score refuses NaN at construction, so a reward cannot smuggle one through.
    with pytest.raises(ValueError, match="finite"):
        Score(math.nan)


class _NoIsolationReward(Reward):
    name = "no_isolation"

    def score(self, sample: Sample) -> RewardResult:
        raise IsolationUnavailableError("this host cannot isolate code")


def test_setup_errors_propagate_instead_of_becoming_unscored_rows() -> None:
    # A host that cannot isolate code fails every sample the same way: the user must see one
    # error (the CLI turns it into a one-line message), not a column of unscored rows.
    register_reward("test_no_isolation")(_NoIsolationReward)
    scorer = Scorer.for_reward("test_no_isolation")
    with pytest.raises(IsolationUnavailableError):
        scorer.score([Sample(prompt="p", response="r")])
    with pytest.raises(IsolationUnavailableError):
        asyncio.run(scorer.ascore([Sample(prompt="p", response="r")]))
