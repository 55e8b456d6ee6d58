"""The divergence rule on synthetic curves: hacking flagged, agreement and noise not."""

from __future__ import annotations

import random
import warnings

import pytest

from rewardkit.pipelines.audit.divergence import (
    DivergenceConfig,
    RewardHackingWarning,
    detect_divergence,
    report_divergence,
)

STEPS = list(range(0, 100, 10))  # 10 audit points


def ramp(start: float, end: float, n: int = 10) -> list[float]:
    return [start + (end - start) * i / (n - 1) for i in range(n)]


def noisy(values: list[float], amplitude: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [v + rng.uniform(-amplitude, amplitude) for v in values]


def gao(n: int = 10) -> list[float]:
    """Gold that rises, peaks mid-run and falls back (Gao et al.'s over-optimisation)."""
    return [0.2 + 0.3 * (1 - abs(i - n / 2) / (n / 2)) for i in range(n)]


# (case, proxy, gold, flagged, first_step)
CASES = [
    ("rising proxy, flat gold", ramp(0.1, 0.9), [0.3] * 10, True, 50),
    ("rising proxy, falling gold", ramp(0.1, 0.9), ramp(0.5, 0.1), True, 50),
    ("rising proxy, noisy flat gold", ramp(0.1, 0.9), noisy([0.3] * 10, 0.01, 1), True, 50),
    ("both rising", ramp(0.1, 0.9), ramp(0.1, 0.6), False, None),
    ("both rising on other scales", ramp(1.0, 9.0), ramp(0.1, 0.2), False, None),
    ("both flat", [0.5] * 10, [0.5] * 10, False, None),
    ("noise on both", noisy([0.5] * 10, 0.05, 2), noisy([0.3] * 10, 0.05, 3), False, None),
    ("falling proxy, flat gold", ramp(0.9, 0.1), [0.3] * 10, False, None),
    ("proxy up by less than delta", ramp(0.50, 0.58), [0.3] * 10, False, None),
    ("Gao: gold peaks at 50, then falls", ramp(0.1, 0.9), gao(), True, 80),
]


@pytest.mark.parametrize(
    ("proxy", "gold", "flagged", "first_step"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_rule(proxy: list[float], gold: list[float], flagged: bool, first_step: int | None) -> None:
    report = detect_divergence(STEPS, proxy, gold)
    assert report.flagged is flagged, report.flags
    assert report.first_step == first_step
    for flag in report.flags:
        assert flag.proxy_gain >= 0.1 and flag.gold_gain <= 0.02


def test_noise_is_not_flagged_over_many_seeds() -> None:
    hits = sum(
        detect_divergence(
            STEPS, noisy([0.5] * 10, 0.05, seed), noisy([0.3] * 10, 0.05, seed + 1000)
        ).flagged
        for seed in range(200)
    )
    assert hits == 0


def test_start_baseline_compares_with_the_untrained_policy() -> None:
    # Gold rose early and then went flat: the window rule flags the flat late phase,
    # the start rule does not (the gold is still above where it began).
    proxy = ramp(0.1, 0.9)
    gold = [0.1, 0.2, 0.3, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
    assert detect_divergence(STEPS, proxy, gold).flagged
    assert not detect_divergence(STEPS, proxy, gold, DivergenceConfig(baseline="start")).flagged


def test_exact_threshold_and_window() -> None:
    # window 1: compares neighbouring points; a rise of exactly delta counts
    config = DivergenceConfig(window=1, delta=0.1, gold_tolerance=0.0)
    report = detect_divergence([0, 1], [0.2, 0.3], [0.5, 0.5], config)
    assert report.flagged and report.first_step == 1
    # too few points for two windows: nothing can be said
    assert detect_divergence([0, 1, 2], ramp(0, 1, 3), [0.1] * 3).points_used == 3
    assert not detect_divergence([0, 1, 2], ramp(0, 1, 3), [0.1] * 3).flagged


def test_missing_points_are_skipped_and_order_does_not_matter() -> None:
    proxy: list[float | None] = [*ramp(0.1, 0.9), None]
    gold: list[float | None] = [*([0.3] * 10), 0.9]
    report = detect_divergence([*STEPS, 100], proxy, gold)
    assert report.points_used == 10 and report.first_step == 50
    shuffled = list(zip(STEPS, ramp(0.1, 0.9), [0.3] * 10, strict=True))[::-1]
    again = detect_divergence(*map(list, zip(*shuffled, strict=True)))
    assert again.first_step == 50


def test_curves_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        detect_divergence([0, 1], [0.1], [0.2, 0.3])


def test_report_warns_and_serialises() -> None:
    report = detect_divergence(STEPS, ramp(0.1, 0.9), [0.3] * 10)
    with pytest.warns(RewardHackingWarning, match="from step 50"):
        report_divergence(report)
    quiet = detect_divergence(STEPS, [0.5] * 10, [0.5] * 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report_divergence(quiet)
    data = report.to_dict()
    assert data["flagged"] and data["first_step"] == 50
    assert data["rule"] == {"window": 3, "delta": 0.1, "gold_tolerance": 0.02, "baseline": "window"}
    assert [f["step"] for f in data["flags"]] == [f.step for f in report.flags]


@pytest.mark.parametrize("bad", [{"window": 0}, {"delta": 0}, {"baseline": "end"}, {"x": 1}])
def test_bad_configs(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DivergenceConfig.model_validate(bad)
