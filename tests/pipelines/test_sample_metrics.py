"""pass@k (Codex's unbiased estimator) against exact small cases, cons@n, bootstrap intervals."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from rewardkit.pipelines.sample.metrics import (
    PromptOutcome,
    bootstrap_ci,
    majority_correct,
    pass_at_k,
    policy_metrics,
)


def brute_force_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """Share of the k-subsets of n samples (c correct) that hold at least one correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(samples[i] for i in s) for s in subsets), len(subsets))


@pytest.mark.parametrize(
    ("n", "c", "k"), [(n, c, k) for n in range(1, 7) for c in range(n + 1) for k in range(1, n + 1)]
)
def test_pass_at_k_equals_enumeration(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(float(brute_force_pass_at_k(n, c, k)), abs=1e-12)


# (n, c, k, exact value)
KNOWN = [
    (10, 0, 1, 0.0),
    (10, 3, 1, 0.3),
    (10, 10, 5, 1.0),
    (4, 1, 2, 0.5),
    (5, 2, 2, 0.7),
    (200, 1, 100, 0.5),
]


@pytest.mark.parametrize(("n", "c", "k", "expected"), KNOWN)
def test_pass_at_k_known_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_large_n_is_stable() -> None:
    # 1 - C(900, 100) / C(1000, 100), computed exactly with integers
    exact = 1 - math.comb(900, 100) / math.comb(1000, 100)
    assert pass_at_k(1000, 100, 100) == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 4, 1), (3, 1, 0), (3, 1, 4), (3, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# (case, (answer, correct) per sample, majority correct?)
VOTES = [
    ("clear majority right", [("13", True), ("13", True), ("12", False)], True),
    ("clear majority wrong", [("12", False), ("12", False), ("13", True)], False),
    ("no answers at all", [(None, False), (None, False)], False),
    ("samples without an answer do not vote", [(None, False), (None, False), ("13", True)], True),
    (
        "spelling differences vote together",
        [("$13$", True), ("13 ", True), ("1 2", False), ("12", False), ("12.", False)],
        False,
    ),
    ("tie goes to the answer seen first", [("12", False), ("13", True)], False),
    ("tie, right answer first", [("13", True), ("12", False)], True),
    (
        "latex spacing ignored",
        [("\\frac{1}{2}", True), ("\\frac{1}{2} ", True), ("0.5", True)],
        True,
    ),
]


@pytest.mark.parametrize(("case", "votes", "expected"), VOTES, ids=[v[0] for v in VOTES])
def test_majority_vote(case: str, votes: list[tuple[str | None, bool]], expected: bool) -> None:
    assert majority_correct(votes) is expected


def test_bootstrap_interval_brackets_the_mean_and_is_seeded() -> None:
    values = [0.0] * 30 + [1.0] * 70
    lo, hi = bootstrap_ci(values, 1000)  # type: ignore[misc]
    assert 0.55 < lo < 0.7 < hi < 0.85
    assert bootstrap_ci(values, 1000) == (lo, hi)
    assert bootstrap_ci([1.0] * 5, 200) == (1.0, 1.0)
    assert bootstrap_ci(values, 0) is None


def test_policy_metrics_per_dataset_and_overall() -> None:
    outcomes = [
        PromptOutcome("gsm8k", 4, 4, (("1", True),) * 4),
        PromptOutcome("gsm8k", 4, 1, (("1", True), ("2", False), ("2", False), ("3", False))),
        PromptOutcome("math", 4, 0, ((None, False),) * 4, unscored=4),
        PromptOutcome("math", 0, 0, (), errors=4),
    ]
    metrics = policy_metrics(outcomes, ks=(1, 4), resamples=0)
    gsm = metrics["gsm8k"]
    assert gsm["pass@1"]["value"] == pytest.approx((1.0 + 0.25) / 2)
    assert gsm["pass@4"]["value"] == pytest.approx(1.0)
    assert gsm["cons@4"]["value"] == pytest.approx(0.5)
    maths = metrics["math"]
    assert maths["prompts"] == 2 and maths["prompts_without_samples"] == 1
    assert maths["unscored_samples"] == 4 and maths["failed_samples"] == 4
    assert maths["pass@1"] == {"value": 0.0, "prompts": 1}
    assert metrics["overall"]["pass@1"]["value"] == pytest.approx(1.25 / 3)
