"""Estimators of `rewardkit eval`: outcomes, the k-subset estimator, bootstrap CIs, aggregates."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from rewardkit.pipelines.eval.stats import (
    Draw,
    bootstrap_ci,
    estimate_at_k,
    ks_for,
    meta_filter,
    outcome,
    rb1_sections,
    rb2_ties_score,
    vote_totals,
    wilson_interval,
)

# -- outcomes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("totals", "good", "rule", "expected"),
    [
        ((8, 3), (True, False), "separate", "correct"),
        ((3, 8), (True, False), "separate", "wrong"),
        ((5, 5), (True, False), "separate", "tie"),  # strict: a tie is not a win
        ((None, 5), (True, False), "separate", "invalid"),
        ((9, 2, 2, 8), (True, False, False, False), "separate", "correct"),  # best-of-4
        ((9, 2, 9, 1), (True, False, False, False), "separate", "tie"),
        ((9, 7, 8, 1), (True, True, False, False), "separate", "wrong"),  # Ties: 7 < 8
        ((9, 8, 7, 1), (True, True, False, False), "separate", "correct"),
        ((9, 2, 9), (True, False, True), "top", "correct"),  # two good share the top
        ((9, 9, 1), (True, False, True), "top", "tie"),  # a good and a bad share the top
        ((2, 9, 1), (True, False, True), "top", "wrong"),
    ],
)
def test_outcome(totals, good, rule, expected) -> None:  # type: ignore[no-untyped-def]
    assert outcome(totals, good, rule) == expected


def test_vote_totals_skip_draws_without_a_score() -> None:
    draws = [Draw((7.0, 3.0)), Draw((None, None)), Draw((5.0, 6.0))]
    assert vote_totals(draws, 2) == (12.0, 9.0)
    assert vote_totals([Draw((None, None))], 2) == (None, None)


# -- the k-subset estimator ------------------------------------------------------------------


def _brute_force(draws: list[Draw], good: tuple[bool, ...], k: int) -> float:
    """Voting@k by hand: the share of k-subsets whose summed scores rank good first."""
    wins = total = 0
    for subset in itertools.combinations(draws, k):
        sums = [sum(d.scores[i] or 0 for d in subset) for i in range(len(good))]
        wins += sums[0] > max(sums[1:])
        total += 1
    return wins / total


def test_exact_estimate_matches_a_hand_computed_case() -> None:
    # Draws prefer the good response 3 times out of 4: (8,3) x3 and (2,9) x1.
    draws = [Draw((8.0, 3.0))] * 3 + [Draw((2.0, 9.0))]
    good = (True, False)
    assert estimate_at_k(draws, good, 1).correct == pytest.approx(0.75)
    # k=2: 3 of 6 pairs are two good votes (win), 3 mix one of each: 10 vs 12 -> lose.
    assert estimate_at_k(draws, good, 2).correct == pytest.approx(0.5)
    assert estimate_at_k(draws, good, 4).correct == 1.0  # 26 vs 18
    assert estimate_at_k(draws, good, 4).subsets == 1


@pytest.mark.parametrize("seed", range(5))
def test_exact_estimate_equals_brute_force_on_random_small_cases(seed: int) -> None:
    rng = random.Random(seed)
    draws = [Draw((float(rng.randint(1, 10)), float(rng.randint(1, 10)))) for _ in range(6)]
    for k in (1, 2, 3, 6):
        got = estimate_at_k(draws, (True, False), k)
        assert got.exact
        assert got.correct == pytest.approx(_brute_force(draws, (True, False), k))


def test_monte_carlo_estimate_is_close_to_exact_and_reproducible() -> None:
    rng = random.Random(7)
    draws = [Draw((float(rng.randint(1, 10)), float(rng.randint(1, 10)))) for _ in range(12)]
    exact = estimate_at_k(draws, (True, False), 6)
    sampled = estimate_at_k(draws, (True, False), 6, exact_limit=10, mc_draws=4000, seed=1)
    assert exact.exact and not sampled.exact
    assert sampled.correct == pytest.approx(exact.correct, abs=0.03)
    again = estimate_at_k(draws, (True, False), 6, exact_limit=10, mc_draws=4000, seed=1)
    assert again == sampled


def test_stratified_plan_takes_k_from_each_order() -> None:
    # Pairwise: order (0,1) always picks response 0, order (1,0) always picks response 1
    # (a pure position bias). k from each order: every subset is a tie, never a win.
    draws = [Draw((1.0, 0.0), stratum=0)] * 4 + [Draw((0.0, 1.0), stratum=1)] * 4
    for k in (1, 2, 4):
        est = estimate_at_k(draws, (True, False), k)
        assert est.correct == 0.0 and est.tie == 1.0
    with pytest.raises(ValueError, match="exceeds"):
        estimate_at_k(draws, (True, False), 5)


def test_invalid_draws_are_skipped_and_all_invalid_is_invalid() -> None:
    draws = [Draw((None, None)), Draw((9.0, 1.0))]
    est = estimate_at_k(draws, (True, False), 1)
    assert est.correct == 0.5 and est.invalid == 0.5


def test_meta_rm_keeps_the_best_rated_draws() -> None:
    # Two misleading draws rated low, one right draw rated high: MetaRM keeps the right one.
    draws = [Draw((2.0, 9.0), meta=-1.0), Draw((2.0, 9.0), meta=-2.0), Draw((9.0, 1.0), meta=3.0)]
    assert meta_filter(draws, 1) == [draws[2]]
    assert estimate_at_k(draws, (True, False), 3).correct == 0.0  # plain voting: 13 vs 19
    assert estimate_at_k(draws, (True, False), 3, meta_keep=1).correct == 1.0


def test_ks_for() -> None:
    assert ks_for(1) == [1]
    assert ks_for(8) == [1, 2, 4, 8]
    assert ks_for(6) == [1, 2, 4, 6]


# -- confidence intervals -------------------------------------------------------------------


def test_bootstrap_ci_agrees_with_the_binomial_case() -> None:
    # 280 of 400 correct: the Wilson interval is about [0.653, 0.743].
    values = [1.0] * 280 + [0.0] * 120
    lo, hi = bootstrap_ci(values, resamples=2000, seed=0)
    w_lo, w_hi = wilson_interval(280, 400)
    assert w_lo == pytest.approx(0.6532, abs=1e-3) and w_hi == pytest.approx(0.7430, abs=1e-3)
    assert lo == pytest.approx(w_lo, abs=0.012) and hi == pytest.approx(w_hi, abs=0.012)
    assert lo < 0.7 < hi
    assert bootstrap_ci(values, resamples=2000, seed=0) == (lo, hi)  # fixed seed


def test_bootstrap_ci_degenerate_and_empty() -> None:
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))


# -- leaderboard aggregates -------------------------------------------------------------------


def test_rewardbench_v1_sections_weight_by_example_count_and_upweight_math_prm() -> None:
    acc = {"llmbar-natural": 1.0, "llmbar-adver-neighbor": 0.0}
    # Chat Hard = (1.0 * 100 + 0.0 * 134) / 234
    assert rb1_sections(acc) == {"Chat Hard": pytest.approx(100 / 234)}
    reasoning = {
        "math-prm": 1.0,
        **{f"hep-{x}": 0.0 for x in ("cpp", "go", "java", "js", "python", "rust")},
    }
    # math-prm counts 984 = 6 x 164: it weighs as much as all code subsets together.
    assert rb1_sections(reasoning)["Reasoning"] == pytest.approx(0.5)
    full = {"alpacaeval-easy": 1.0, "mt-bench-hard": 0.5, "donotanswer": 0.0, "math-prm": 1.0}
    sections = rb1_sections(full)
    assert sections["score"] == pytest.approx((1.0 + 0.5 + 0.0 + 1.0) / 4)


def test_rewardbench2_ties_composite() -> None:
    perfect = [
        ("ref:1", [9.0, 1.0], [True, False]),
        ("tied:1", [9.0, 9.0, 1.0], [True, True, False]),
    ]
    assert rb2_ties_score(perfect) == pytest.approx(1.0)  # tanh term 0 (spread 0 -> skipped)
    wrong = [
        ("ref:1", [1.0, 9.0], [True, False]),
        ("tied:1", [1.0, 9.0, 5.0], [True, True, False]),
    ]
    # hard margin min(-8, -4) over the spread 8 among correct answers
    assert rb2_ties_score(wrong) == pytest.approx(0.01 * math.tanh(-8 / 8 - 1))
