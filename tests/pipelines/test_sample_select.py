"""Keep policies and dedup: every completion gets kept or exactly one reason, case by case."""

from __future__ import annotations

import pytest

from rewardkit.pipelines.sample.config import DedupConfig, FilterConfig, KeepConfig
from rewardkit.pipelines.sample.dedup import duplicates, jaccard, normalise, shingles
from rewardkit.pipelines.sample.records import Candidate
from rewardkit.pipelines.sample.select import decide

ANSWERS = [
    "<think>Sixteen minus three is thirteen.</think>The answer is 13.",
    "<think>Janet keeps what she does not eat: thirteen eggs.</think>13",
    "<think>She eats three, so twelve are left.</think>12",
    "<think>Thirteen eggs stay in the basket after breakfast.</think>Thirteen.",
]


def group(rewards: list[float | None], texts: list[str] | None = None) -> list[Candidate]:
    texts = texts or ANSWERS
    return [
        Candidate(
            "p",
            i,
            texts[i % len(texts)],
            prompt_text="How many eggs are left?",
            finish_reason="stop",
            reward=r,
        )
        for i, r in enumerate(rewards)
    ]


def reasons(
    cands: list[Candidate], keep: KeepConfig, dedup: DedupConfig | None = None
) -> list[str | None]:
    return [d.reason for d in decide(cands, keep, FilterConfig(), dedup or DedupConfig())]


# (case, rewards, keep, expected reason per sample: None = kept)
KEEP_CASES = [
    (
        "correct keeps every correct",
        [1.0, 1.0, 0.0, 1.0],
        KeepConfig(),
        [None, None, "not_correct", None],
    ),
    (
        "correct with a lower threshold",
        [0.6, 0.4, 0.0, 1.0],
        KeepConfig(threshold=0.5),
        [None, "not_correct", "not_correct", None],
    ),
    ("unscored is never kept", [None, 1.0, 1.0, 1.0], KeepConfig(), ["unscored", None, None, None]),
    (
        "above keeps everything over min_reward",
        [0.7, 0.2, 0.5, 0.9],
        KeepConfig(policy="above", min_reward=0.5),
        [None, "below_min_reward", None, None],
    ),
    (
        "best-of-n keeps the highest",
        [0.2, 0.9, 0.5, 0.1],
        KeepConfig(policy="best"),
        ["not_best", None, "not_best", "not_best"],
    ),
    (
        "best-of-n tie goes to the lower index",
        [0.9, 0.9, 0.5, 0.9],
        KeepConfig(policy="best"),
        [None, "not_best", "not_best", "not_best"],
    ),
    (
        "best-of-n gated: nothing good enough",
        [0.2, 0.3, 0.1, 0.0],
        KeepConfig(policy="best", min_reward=0.5),
        ["below_min_reward"] * 4,
    ),
    (
        "best-of-n even when all wrong, without a gate",
        [0.0, 0.0, 0.0, 0.0],
        KeepConfig(policy="best"),
        [None, "not_best", "not_best", "not_best"],
    ),
    (
        "top-k keeps the k highest",
        [0.2, 0.9, 0.5, 0.7],
        KeepConfig(policy="top_k", k=2),
        ["not_top_k", None, "not_top_k", None],
    ),
    (
        "top-k with fewer candidates than k",
        [0.2, None, 0.5, 0.7],
        KeepConfig(policy="top_k", k=5),
        [None, "unscored", None, None],
    ),
]


@pytest.mark.parametrize(
    ("case", "rewards", "keep", "expected"), KEEP_CASES, ids=[c[0] for c in KEEP_CASES]
)
def test_keep_policies(
    case: str, rewards: list[float | None], keep: KeepConfig, expected: list[str | None]
) -> None:
    assert reasons(group(rewards), keep) == expected


def test_best_of_n_picks_among_readable_ones() -> None:
    texts = [ANSWERS[0], "<think>```\nprint(13)\n```</think>13", ANSWERS[2], ANSWERS[3]]
    cands = group([0.8, 1.0, 0.1, 0.3], texts)
    assert reasons(cands, KeepConfig(policy="best")) == [None, "code_block", "not_best", "not_best"]


def test_generation_errors_are_reported_not_dropped() -> None:
    ok = Candidate(
        "p", 1, ANSWERS[0], prompt_text="How many eggs?", finish_reason="stop", reward=1.0
    )
    cands = [Candidate("p", 0, error="BackendTimeoutError: slow"), ok]
    assert reasons(cands, KeepConfig()) == ["error", None]


def test_duplicates_keep_the_better_copy() -> None:
    texts = [
        ANSWERS[0],
        ANSWERS[1],
        "<think>Sixteen minus three is thirteen.</think>The answer is 13.",
        ANSWERS[0].upper(),
    ]
    decisions = decide(
        group([0.5, 1.0, 1.0, 1.0], texts), KeepConfig(threshold=0.5), FilterConfig(), DedupConfig()
    )
    # 0, 2 and 3 are one text; 2 has the highest reward and the lowest index among the best.
    assert [d.reason for d in decisions] == ["duplicate", None, None, "duplicate"]
    assert decisions[0].duplicate_of == 2 and decisions[3].duplicate_of == 2


def test_near_duplicate_is_caught_and_can_be_turned_off() -> None:
    base = (
        "<think>"
        + "Janet has sixteen eggs, eats three for breakfast and bakes four into muffins. " * 3
        + "</think>Nine."
    )
    near = base.replace("Nine.", "9.")
    cands = group([1.0, 1.0], [base, near])
    assert reasons(cands, KeepConfig()) == [None, "near_duplicate"]
    assert reasons(cands, KeepConfig(), DedupConfig(near_threshold=None)) == [None, None]
    assert reasons(cands, KeepConfig(), DedupConfig(exact=False, near_threshold=None)) == [
        None,
        None,
    ]


def test_dedup_before_top_k_so_k_distinct_answers_stay() -> None:
    texts = [ANSWERS[0], ANSWERS[0], ANSWERS[1], ANSWERS[3]]
    assert reasons(group([1.0, 1.0, 0.9, 0.8], texts), KeepConfig(policy="top_k", k=2)) == [
        None,
        "duplicate",
        None,
        "not_top_k",
    ]


# (a, b, expected Jaccard of 3-shingles): small exact cases
JACCARD_CASES = [
    ("abcd", "abcd", 1.0),
    ("abcd", "bcde", 1 / 3),
    ("abc", "xyz", 0.0),
    ("ab", "ab", 1.0),
    ("Ab  C", "ab c", 1.0),
]


@pytest.mark.parametrize(("a", "b", "expected"), JACCARD_CASES)
def test_jaccard_small_cases(a: str, b: str, expected: float) -> None:
    assert jaccard(shingles(a, 3), shingles(b, 3)) == pytest.approx(expected)


def test_normalise_and_exact_duplicates() -> None:
    assert normalise("  The\tANSWER\n\nis  13 ") == "the answer is 13"
    assert duplicates(["x y", "X  Y", "z"], DedupConfig(near_threshold=None)) == [
        None,
        (0, "duplicate"),
        None,
    ]
