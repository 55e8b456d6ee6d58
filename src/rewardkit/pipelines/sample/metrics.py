"""Policy metrics from the samples a rejection-sampling run drew anyway (R1's evaluation).

Per dataset (a row's `data_source` or `dataset` field, else "all"):

* `pass@1`: the share of correct samples of each prompt, averaged over prompts — R1's
  "pass@1 averaged over k samples at temperature 0.6";
* `pass@k`: the unbiased estimator of Chen et al. 2021 (Codex), `1 - C(n-c, k) / C(n, k)`
  per prompt with n samples and c correct, averaged over prompts;
* `cons@n`: majority vote over the extracted final answers (the math rule's `answer`):
  a prompt counts when the most frequent answer is a correct one. Samples without an
  answer do not vote; ties go to the answer seen first.

Each metric comes with a percentile bootstrap 95% interval over prompts (seeded, so a
rerun prints the same numbers). A sample counts as correct when its reward reaches the
keep threshold; unscored and failed samples count as not correct and are reported.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rewardkit.pipelines.sample.records import Candidate

__all__ = ["PromptOutcome", "bootstrap_ci", "majority_correct", "pass_at_k", "policy_metrics"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one prompt: n samples, c correct (Chen et al. 2021, Fig. 3)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # 1 - prod_{i=n-c+1}^{n} (1 - k/i): the numerically stable form of the binomial ratio.
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


_ANSWER_NOISE = re.compile(r"\s+|\\[,!;: ]|\$|\\text\{\s*\}")


def _answer_key(answer: str) -> str:
    """Answers written alike vote together: spaces, `$` and LaTeX spacing do not matter."""
    return _ANSWER_NOISE.sub("", answer).rstrip(".")


def majority_correct(samples: Sequence[tuple[str | None, bool]]) -> bool:
    """cons@n for one prompt: is the most frequent (answer) correct? (answer, correct) pairs."""
    votes: Counter[str] = Counter()
    correct: dict[str, bool] = {}
    for answer, ok in samples:
        if answer is None or not answer.strip():
            continue
        key = _answer_key(answer)
        votes[key] += 1
        correct[key] = correct.get(key, False) or ok
    if not votes:
        return False
    top, _ = votes.most_common(1)[0]  # Counter keeps first-seen order among ties
    return correct[top]


def bootstrap_ci(
    values: Sequence[float], resamples: int, seed: int = 0
) -> tuple[float, float] | None:
    """95% percentile interval of the mean, resampling `values` (one per prompt)."""
    if resamples <= 0 or not values:
        return None
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    lo = means[int(0.025 * (resamples - 1))]
    hi = means[round(0.975 * (resamples - 1))]
    return (lo, hi)


@dataclass(frozen=True, slots=True)
class PromptOutcome:
    """One prompt's samples reduced to what the metrics need."""

    data_source: str
    n: int  # samples drawn (failed generations excluded)
    correct: int
    votes: tuple[tuple[str | None, bool], ...]
    unscored: int = 0
    errors: int = 0


def outcome(candidates: Sequence[Candidate], threshold: float) -> PromptOutcome:
    drawn = [c for c in candidates if c.error is None]
    ok = [c.reward is not None and c.reward >= threshold for c in drawn]
    return PromptOutcome(
        data_source=candidates[0].data_source,
        n=len(drawn),
        correct=sum(ok),
        votes=tuple((c.answer, good) for c, good in zip(drawn, ok, strict=True)),
        unscored=sum(c.reward is None for c in drawn),
        errors=len(candidates) - len(drawn),
    )


def _metric(values: list[float], resamples: int) -> dict[str, Any]:
    ci = bootstrap_ci(values, resamples)
    out: dict[str, Any] = {"value": sum(values) / len(values), "prompts": len(values)}
    if ci is not None:
        out["ci95"] = [ci[0], ci[1]]
    return out


def policy_metrics(
    outcomes: Sequence[PromptOutcome], ks: Sequence[int], resamples: int
) -> dict[str, Any]:
    """{dataset: {"pass@1": {...}, "pass@k": ..., "cons@n": ..., counts}} plus "overall"."""
    groups: dict[str, list[PromptOutcome]] = {}
    for o in outcomes:
        groups.setdefault(o.data_source, []).append(o)
    if len(groups) > 1:
        groups["overall"] = list(outcomes)
    result: dict[str, Any] = {}
    for name, group in groups.items():
        drawn = [o for o in group if o.n > 0]
        entry: dict[str, Any] = {
            "prompts": len(group),
            "prompts_without_samples": len(group) - len(drawn),
            "samples": sum(o.n for o in group),
            "unscored_samples": sum(o.unscored for o in group),
            "failed_samples": sum(o.errors for o in group),
        }
        for k in ks:
            values = [pass_at_k(o.n, o.correct, k) for o in drawn if o.n >= k]
            if values:
                entry[f"pass@{k}"] = _metric(values, resamples)
        if drawn:
            n_max = max(o.n for o in drawn)
            entry[f"cons@{n_max}"] = _metric(
                [float(majority_correct(o.votes)) for o in drawn], resamples
            )
        result[name] = entry
    return result
