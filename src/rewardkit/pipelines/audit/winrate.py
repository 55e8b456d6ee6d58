"""Arena-Hard-style pairwise win rate of a policy's answers against a baseline's.

Each prompt is judged by `rewardkit.judges.PairwiseJudge` in both orders (policy shown
first, then second), so position bias cancels on average and shows up as its own number.
Every valid judgment is a *battle* the policy won or lost.

* Raw win rate: per prompt, the share of its valid battles the policy won; averaged over
  prompts. CI: percentile bootstrap over prompts (prompts are resampled, not battles,
  since a prompt's two orders are not independent).
* Length-controlled win rate, as Arena-Hard's style control does it: a Bradley–Terry
  model of the battles — with two players, a logistic regression — with a length feature,

      P(policy wins) = sigmoid(b0 + b_len * len_diff + b_pos * pos)
      len_diff = (len_policy - len_baseline) / (len_policy + len_baseline), divided by its
                 standard deviation over the battles (scaled, not centred: 0 stays "equal
                 length")
      pos      = +1 when the policy was shown first, -1 when second

  and the length-controlled win rate is sigmoid(b0): the chance the policy wins an answer
  of the same length, with position averaged out. A judge that only rewards length gives
  a high raw rate and a length-controlled rate near 50%. `b_len > 0` says the judge
  prefers longer answers. CI: bootstrap over prompts, refitting each time.

The fit is Newton's method (IRLS) in numpy with a small ridge, so perfectly separable
battles still give a finite answer.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardkit.errors import MissingDependencyError

__all__ = [
    "Battle",
    "PairInput",
    "WinRateReport",
    "fit_logistic",
    "judge_battles",
    "length_controlled",
    "win_rate",
]


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise MissingDependencyError("numpy", "audit", "win rates") from exc
    return numpy


@dataclass(frozen=True, slots=True)
class PairInput:
    """One prompt with the policy's and the baseline's answers."""

    id: str
    prompt: str
    policy: str
    baseline: str


@dataclass(frozen=True, slots=True)
class Battle:
    """One valid judgment: did the policy win, was it shown first, and both lengths."""

    id: str
    policy_won: bool
    policy_first: bool
    policy_len: int
    baseline_len: int


# --- the statistics ------------------------------------------------------------------------


def _per_prompt(battles: Sequence[Battle]) -> dict[str, list[Battle]]:
    groups: dict[str, list[Battle]] = {}
    for battle in battles:
        groups.setdefault(battle.id, []).append(battle)
    return groups


def _rate(groups: Sequence[Sequence[Battle]]) -> float:
    return sum(sum(b.policy_won for b in g) / len(g) for g in groups) / len(groups)


def _percentile_ci(values: Any, alpha: float) -> tuple[float, float]:
    np = _numpy()
    lo, hi = np.quantile(np.asarray(values, dtype=float), [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def win_rate(
    battles: Sequence[Battle], *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """Raw win rate (mean over prompts of each prompt's win share) and its bootstrap CI."""
    np = _numpy()
    groups = list(_per_prompt(battles).values())
    if not groups:
        raise ValueError("no valid battles")
    shares = np.array([sum(b.policy_won for b in g) / len(g) for g in groups])
    rng = np.random.default_rng(seed)
    boots = shares[rng.integers(0, len(shares), size=(n_boot, len(shares)))].mean(axis=1)
    return float(shares.mean()), _percentile_ci(boots, alpha)


def fit_logistic(x: Any, y: Any, *, ridge: float = 1e-3, max_iter: int = 100) -> Any:
    """Coefficients of a logistic regression by Newton/IRLS; `ridge` keeps it finite."""
    np = _numpy()
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    beta = np.zeros(x.shape[1])
    penalty = ridge * np.eye(x.shape[1])
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        gradient = x.T @ (y - p) - penalty @ beta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return beta


def _design(battles: Sequence[Battle], scale: float | None = None) -> tuple[Any, Any, float]:
    np = _numpy()
    diff = np.array(
        [(b.policy_len - b.baseline_len) / max(b.policy_len + b.baseline_len, 1) for b in battles]
    )
    if scale is None:
        scale = float(diff.std()) or 1.0
    pos = np.array([1.0 if b.policy_first else -1.0 for b in battles])
    x = np.column_stack([np.ones(len(battles)), diff / scale, pos])
    y = np.array([1.0 if b.policy_won else 0.0 for b in battles])
    return x, y, scale


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


def length_controlled(
    battles: Sequence[Battle], *, n_boot: int = 200, alpha: float = 0.05, seed: int = 0
) -> dict[str, Any]:
    """The length-controlled win rate (module docstring), its CI and the coefficients."""
    np = _numpy()
    if not battles:
        raise ValueError("no valid battles")
    x, y, scale = _design(battles)
    beta = fit_logistic(x, y)
    groups = list(_per_prompt(battles).values())
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        picked = [b for i in rng.integers(0, len(groups), size=len(groups)) for b in groups[i]]
        bx, by, _ = _design(picked, scale)  # one scale, so every refit means the same b0
        boots.append(_sigmoid(float(fit_logistic(bx, by)[0])))
    return {
        "win_rate": _sigmoid(float(beta[0])),
        "ci": list(_percentile_ci(boots, alpha)),
        "coefficients": {
            "intercept": float(beta[0]),
            "length": float(beta[1]),
            "position_first": float(beta[2]),
        },
        "length_scale": scale,
    }


# --- judging -------------------------------------------------------------------------------


@dataclass
class WinRateReport:
    """Everything `rewardkit audit winrate` writes to results.json (`kind: winrate`)."""

    battles: list[Battle]
    prompts: int
    invalid: dict[str, int] = field(default_factory=dict)  # reason -> judgments
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> prompts
    n_boot: int = 1000
    alpha: float = 0.05
    seed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "winrate",
            **self.meta,
            "prompts": self.prompts,
            "battles": len(self.battles),
            "prompts_with_verdict": len(_per_prompt(self.battles)),
            "invalid_judgments": dict(self.invalid),
            "skipped_prompts": dict(self.skipped),
            "confidence": 1 - self.alpha,
        }
        if not self.battles:
            out.update(win_rate=None, ci=None, length_controlled=None, by_order=None)
            return out
        rate, ci = win_rate(self.battles, n_boot=self.n_boot, alpha=self.alpha, seed=self.seed)
        by_order = {}
        for label, first in (("policy_first", True), ("policy_second", False)):
            side = [b for b in self.battles if b.policy_first == first]
            by_order[label] = sum(b.policy_won for b in side) / len(side) if side else None
        mean_len = {
            "policy": sum(b.policy_len for b in self.battles) / len(self.battles),
            "baseline": sum(b.baseline_len for b in self.battles) / len(self.battles),
        }
        out.update(
            win_rate=rate,
            ci=list(ci),
            by_order=by_order,
            mean_length_chars=mean_len,
            length_controlled=length_controlled(
                self.battles, n_boot=min(self.n_boot, 200), alpha=self.alpha, seed=self.seed
            ),
        )
        return out


async def judge_battles(
    judge: Any, pairs: Sequence[PairInput], *, concurrency: int = 16
) -> tuple[list[Battle], dict[str, int], list[Any]]:
    """Judge every pair in both orders with a `PairwiseJudge`.

    Returns the battles, the invalid judgments counted by reason, and the judge's
    `PairwiseResult` per pair (input order; response 0 is the policy's).
    """
    from rewardkit.judges import JudgeQuery

    semaphore = asyncio.Semaphore(concurrency)

    async def one(pair: PairInput) -> Any:
        async with semaphore:
            return await judge.judge(
                JudgeQuery(pair.prompt, (pair.policy, pair.baseline), id=pair.id)
            )

    results = await asyncio.gather(*(one(p) for p in pairs))
    battles: list[Battle] = []
    invalid: Counter[str] = Counter()
    for pair, result in zip(pairs, results, strict=True):
        for judgment in result.judgments:
            if judgment.winner is None:
                invalid[judgment.error or "no_verdict"] += 1
                continue
            battles.append(
                Battle(
                    id=pair.id,
                    policy_won=judgment.winner == 0,
                    policy_first=tuple(judgment.order) == (0, 1),
                    policy_len=len(pair.policy),
                    baseline_len=len(pair.baseline),
                )
            )
    return battles, dict(invalid), list(results)
