"""Pairwise win rates: both orders, bootstrap CIs, and the length-controlled fit."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))
from judge_doubles import shown_responses  # noqa: E402

from rewardkit.backends.base import GenerateRequest  # noqa: E402
from rewardkit.backends.mock import MockBackend  # noqa: E402
from rewardkit.judges import JudgeConfig, PairwiseJudge  # noqa: E402
from rewardkit.pipelines.audit.winrate import (  # noqa: E402
    Battle,
    PairInput,
    WinRateReport,
    fit_logistic,
    judge_battles,
    length_controlled,
    win_rate,
)


def verdict(first_wins: bool) -> str:
    return f"Analysis: compared.\nVerdict: [[{1 if first_wins else 2}]]"


def length_loving_judge(strength: float = 6.0, position_bias: float = 0.0) -> MockBackend:
    """Prefers the longer answer (logistically in the normalised length gap), nothing else."""

    def answer(request: GenerateRequest, index: int) -> str:
        first, second = shown_responses(request)
        gap = (len(first) - len(second)) / (len(first) + len(second))
        p_first = 1 / (1 + math.exp(-(strength * gap + position_bias)))
        rng = random.Random(f"{first}|{second}|{index}")
        return verdict(rng.random() < p_first)

    return MockBackend(answer)


def quality_judge() -> MockBackend:
    """Prefers the answer that says 'correct', whatever its length."""

    def answer(request: GenerateRequest, index: int) -> str:
        first, second = shown_responses(request)
        return verdict(
            "correct" in first if ("correct" in first) != ("correct" in second) else True
        )

    return MockBackend(answer)


def make_pairs(n: int, *, policy_longer: float, seed: int = 0) -> list[PairInput]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        short, long = "x" * rng.randint(20, 60), "y" * rng.randint(120, 400)
        longer = rng.random() < policy_longer
        pairs.append(
            PairInput(str(i), f"question {i}", long if longer else short, short if longer else long)
        )
    return pairs


async def judged(backend: MockBackend, pairs: list[PairInput], samples: int = 1) -> WinRateReport:
    judge = PairwiseJudge(backend, JudgeConfig(samples=samples, temperature=0.7))
    battles, invalid, _ = await judge_battles(judge, pairs)
    return WinRateReport(battles, len(pairs), invalid, n_boot=300)


async def test_length_bias_is_taken_out_by_length_control() -> None:
    pairs = make_pairs(300, policy_longer=0.8)
    report = (await judged(length_loving_judge(), pairs, samples=2)).to_dict()
    assert report["kind"] == "winrate" and report["battles"] == 300 * 2 * 2
    assert report["win_rate"] > 0.7  # the judge likes the policy's longer answers
    lc = report["length_controlled"]
    assert abs(lc["win_rate"] - 0.5) < 0.08, lc
    assert lc["ci"][0] < 0.5 < lc["ci"][1]
    assert lc["coefficients"]["length"] > 1.0  # the judge's length preference, found
    assert report["ci"][0] > 0.6  # and the raw rate's CI stays clear of 50%


async def test_a_real_preference_survives_length_control() -> None:
    rng = random.Random(1)
    pairs = []
    for i in range(200):  # the policy is right (and, by chance, of any length)
        policy = "correct " + "p" * rng.randint(10, 300)
        baseline = "wrong " + "b" * rng.randint(10, 300)
        pairs.append(PairInput(str(i), f"q{i}", policy, baseline))
    report = (await judged(quality_judge(), pairs)).to_dict()
    assert report["win_rate"] == 1.0
    assert report["length_controlled"]["win_rate"] > 0.95


async def test_both_orders_are_asked_and_position_bias_shows() -> None:
    pairs = make_pairs(200, policy_longer=0.5, seed=3)
    report = (await judged(length_loving_judge(strength=0.5, position_bias=1.5), pairs)).to_dict()
    orders = report["by_order"]
    assert orders["policy_first"] > 0.6 > 0.4 > orders["policy_second"]
    assert report["length_controlled"]["coefficients"]["position_first"] > 1.0
    assert abs(report["length_controlled"]["win_rate"] - 0.5) < 0.1


async def test_invalid_judgments_are_counted_not_dropped() -> None:
    backend = MockBackend(["no verdict here", verdict(True)])
    pairs = make_pairs(10, policy_longer=0.5)
    report = await judged(backend, pairs)
    doc = report.to_dict()
    assert doc["battles"] == 10 and doc["invalid_judgments"] == {"no_verdict": 10}
    empty = WinRateReport([], 3, {"backend_error": 6}).to_dict()
    assert empty["win_rate"] is None and empty["invalid_judgments"] == {"backend_error": 6}


def battles_with_share(share: float, n: int, seed: int = 0) -> list[Battle]:
    rng = random.Random(seed)
    return [Battle(str(i // 2), rng.random() < share, i % 2 == 0, 100, 100) for i in range(2 * n)]


def test_bootstrap_ci_covers_the_truth_and_narrows_with_data() -> None:
    small_rate, small = win_rate(battles_with_share(0.7, 50), seed=1)
    _, big = win_rate(battles_with_share(0.7, 2000), seed=1)
    assert small[0] <= small_rate <= small[1] and big[0] < 0.7 < big[1]
    assert (big[1] - big[0]) < (small[1] - small[0]) / 3
    again = win_rate(battles_with_share(0.7, 50), seed=1)
    assert again == (small_rate, small)  # seeded: the same CI every time


def test_ci_resamples_prompts_not_battles() -> None:
    # Every prompt's two orders agree: the per-prompt shares are 0 or 1, so the CI is
    # as wide as for n independent coin flips, not 2n.
    battles = [
        Battle(str(i), i % 2 == 0, first, 10, 10) for i in range(100) for first in (True, False)
    ]
    rate, (lo, hi) = win_rate(battles, n_boot=2000)
    assert rate == 0.5
    expected_halfwidth = 1.96 * math.sqrt(0.25 / 100)
    assert (hi - lo) / 2 == pytest.approx(expected_halfwidth, rel=0.15)


def test_logistic_fit_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(20000), rng.normal(size=20000), rng.choice([-1.0, 1.0], 20000)])
    true = np.array([0.4, -1.2, 0.3])
    y = rng.random(20000) < 1 / (1 + np.exp(-(x @ true)))
    assert np.allclose(fit_logistic(x, y), true, atol=0.06)


def test_separable_data_still_gives_a_finite_fit() -> None:
    battles = [Battle(str(i), i % 2 == 0, True, 200 if i % 2 == 0 else 20, 100) for i in range(40)]
    result = length_controlled(battles, n_boot=20)
    assert all(math.isfinite(v) for v in result["coefficients"].values())
    assert 0 <= result["win_rate"] <= 1
