"""Audit points and the files they are written to: audit.csv and a `kind: audit` JSON.

An `AuditPoint` is one step of one run: the mean proxy and gold rewards of the policy's
completions at that step, how many completions each mean is over, why the rest were left
unscored, and the hacking features (`rewardkit.pipelines.audit.features`). The online GRPO
audit and the offline `rewardkit audit` both build points with `score_point` and write
them with `write_csv` / `audit_json`, so both produce the same files.

The JSON is self-describing for `rewardkit report`:

    {"kind": "audit", "steps": [...], "proxy": [...], "gold": [...], "n": [...],
     "features": {"length_chars": [...], ...}, "unscored": [{"gold: math:no_answer": 3}, ...],
     "divergence": {"flagged": ..., "first_step": ..., "flags": [...], "rule": {...}}}
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardkit.integrations._common import score_batch, spec_is_async, spec_key
from rewardkit.pipelines.audit.divergence import (
    DivergenceConfig,
    DivergenceReport,
    detect_divergence,
)
from rewardkit.pipelines.audit.features import FEATURES, mean_features
from rewardkit.scoring import RewardReport
from rewardkit.spec import RewardSpec
from rewardkit.types import Sample, Unscored

__all__ = [
    "AuditPoint",
    "ScoreFn",
    "audit_json",
    "detect",
    "points_from_json",
    "score_point",
    "spec_scorer",
    "write_csv",
    "write_json",
]

#: Scores a batch of samples: one report per sample, in order.
ScoreFn = Callable[[list[Sample]], list[RewardReport]]


def spec_scorer(spec: RewardSpec) -> ScoreFn:
    """Score by a spec as the trainer adapters do (judges through the shared event loop)."""
    key, use_async = spec_key(spec), spec_is_async(spec)

    def score(samples: list[Sample]) -> list[RewardReport]:
        return score_batch(spec, key, samples, use_async)

    return score


CSV_COLUMNS: tuple[str, ...] = (
    "step",
    "proxy_mean",
    "gold_mean",
    "n",
    "proxy_n",
    "gold_n",
    *FEATURES,
)


@dataclass(frozen=True)
class AuditPoint:
    """The audit of one step. A mean is None when no completion could be scored by it."""

    step: int
    proxy_mean: float | None
    gold_mean: float | None
    n: int  # completions audited
    proxy_n: int  # of which the proxy scored
    gold_n: int  # of which the gold scored
    features: dict[str, float] = field(default_factory=dict)
    # "proxy: <reason>" / "gold: <reason>" -> count of completions left unscored
    unscored: dict[str, int] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "proxy_mean": self.proxy_mean,
            "gold_mean": self.gold_mean,
            "n": self.n,
            "proxy_n": self.proxy_n,
            "gold_n": self.gold_n,
            **{name: self.features.get(name) for name in FEATURES},
        }


def _mean_of(reports: Sequence[RewardReport]) -> tuple[float | None, int, Counter[str]]:
    values = [r.reward for r in reports if r.reward is not None]
    reasons: Counter[str] = Counter(_reason_code(r) for r in reports if r.reward is None)
    return (sum(values) / len(values) if values else None), len(values), reasons


def _reason_code(report: RewardReport) -> str:
    """Why a report has no reward, as codes: "math:no_answer", or the report's own code."""
    parts = [
        f"{label}:{result.reason}"
        for label, result in report.components.items()
        if isinstance(result, Unscored)
    ]
    return "; ".join(parts) if parts else (report.reason or "unscored").split(":")[0]


def score_point(
    step: int,
    samples: Sequence[Sample],
    gold: ScoreFn,
    *,
    proxy: ScoreFn | None = None,
    proxy_rewards: Sequence[float | None] | None = None,
) -> AuditPoint:
    """Score one step's completions by the gold, and by the proxy or its recorded values."""
    samples = list(samples)
    if (proxy is None) == (proxy_rewards is None):
        raise ValueError("give exactly one of proxy (a Scorer) or proxy_rewards (recorded values)")
    gold_mean, gold_n, gold_why = _mean_of(gold(samples))
    if proxy is not None:
        proxy_mean, proxy_n, proxy_why = _mean_of(proxy(samples))
    else:
        assert proxy_rewards is not None
        values = [v for v in proxy_rewards if v is not None]
        proxy_mean = sum(values) / len(values) if values else None
        proxy_n = len(values)
        proxy_why = Counter(
            {"recorded_none": len(proxy_rewards) - len(values)}
            if proxy_n < len(proxy_rewards)
            else {}
        )
    unscored = {f"proxy: {k}": v for k, v in proxy_why.items()}
    unscored.update({f"gold: {k}": v for k, v in gold_why.items()})
    return AuditPoint(
        step=step,
        proxy_mean=proxy_mean,
        gold_mean=gold_mean,
        n=len(samples),
        proxy_n=proxy_n,
        gold_n=gold_n,
        features=mean_features([s.response for s in samples]),
        unscored=unscored,
    )


def points_from_json(document: dict[str, Any]) -> list[AuditPoint]:
    """The points of an audit JSON written by `audit_json` (to continue a resumed run)."""
    steps = document.get("steps", [])
    features = document.get("features", {})

    def column(name: str) -> list[Any]:
        values = document.get(name) or [None] * len(steps)
        return list(values)

    proxy, gold, n, proxy_n, gold_n, unscored = (
        column(k) for k in ("proxy", "gold", "n", "proxy_n", "gold_n", "unscored")
    )
    return [
        AuditPoint(
            step=int(step),
            proxy_mean=proxy[i],
            gold_mean=gold[i],
            n=int(n[i] or 0),
            proxy_n=int(proxy_n[i] or 0),
            gold_n=int(gold_n[i] or 0),
            features={k: v[i] for k, v in features.items() if i < len(v) and v[i] is not None},
            unscored=dict(unscored[i] or {}),
        )
        for i, step in enumerate(steps)
    ]


def detect(
    points: Sequence[AuditPoint], config: DivergenceConfig | None = None
) -> DivergenceReport:
    """The divergence rule over a run's points."""
    return detect_divergence(
        [p.step for p in points],
        [p.proxy_mean for p in points],
        [p.gold_mean for p in points],
        config,
    )


def audit_json(
    points: Sequence[AuditPoint], divergence: DivergenceReport, **meta: Any
) -> dict[str, Any]:
    """The self-describing `kind: audit` document (module docstring)."""
    return {
        "kind": "audit",
        **meta,
        "steps": [p.step for p in points],
        "proxy": [p.proxy_mean for p in points],
        "gold": [p.gold_mean for p in points],
        "n": [p.n for p in points],
        "proxy_n": [p.proxy_n for p in points],
        "gold_n": [p.gold_n for p in points],
        "features": {name: [p.features.get(name) for p in points] for name in FEATURES},
        "unscored": [dict(sorted(p.unscored.items())) for p in points],
        "divergence": divergence.to_dict(),
    }


def _atomic_write(path: Path, text: str) -> None:
    """Write whole or not at all: a crash mid-write must not leave half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, document: dict[str, Any]) -> None:
    _atomic_write(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def write_csv(path: Path, points: Sequence[AuditPoint]) -> None:
    """step, proxy_mean, gold_mean, n, proxy_n, gold_n and one column per feature."""
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for point in points:
        writer.writerow({k: "" if v is None else v for k, v in point.row().items()})
    _atomic_write(path, buffer.getvalue())
