"""One evaluation run: judge every item k_max times once, then estimate everything from it.

    judged = await judge_items(items, judge, concurrency=16)
    results = summarize(items, judged, judge, EvalSettings())
    write_eval(outdir, results, items, judged)     # results.json, items.jsonl, curve.csv, PNGs, report.html

`results.json` (the tested contract): `{"kind": "eval", "accuracy", "ties", "n", "ci": [lo, hi],
"subsets": {name: {"accuracy", "n", "ci", "ties"}}, "curve": [{"k", "voting", "meta_rm"?,
"requests", "tokens", ...}], ...}`. Accuracy counts a tie as wrong.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rewardkit.errors import ConfigError
from rewardkit.pipelines.eval.data import EvalItem, Loaded
from rewardkit.pipelines.eval.scorers import EvalJudge, Judged
from rewardkit.pipelines.eval.stats import (
    Estimate,
    bootstrap_ci,
    estimate_at_k,
    ks_for,
    outcome,
    rb1_sections,
    rb2_ties_score,
    vote_totals,
)

__all__ = ["EvalSettings", "judge_items", "run_eval", "summarize", "write_eval"]


@dataclass(frozen=True)
class EvalSettings:
    """How results are estimated (not how the judge runs)."""

    #: Bootstrap resamples for every CI (percentile method, fixed seed).
    bootstrap: int = 1000
    seed: int = 0
    #: MetaRM@k keeps this fraction of the k judgments (DeepSeek-GRM: k_meta = k/2).
    meta_keep: float = 0.5
    #: Enumerate every k-subset when there are at most this many, else sample `mc_draws`.
    exact_limit: int = 5000
    mc_draws: int = 256
    plot: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.meta_keep <= 1:
            raise ConfigError(f"--meta-keep must be in (0, 1], got {self.meta_keep}")
        if self.bootstrap < 100:
            raise ConfigError(f"--bootstrap must be >= 100 resamples, got {self.bootstrap}")


async def judge_items(
    items: Sequence[EvalItem], judge: EvalJudge, *, concurrency: int = 16, progress: bool = True
) -> list[Judged]:
    """Every item judged once (k_max draws), in input order; workers pull from one queue."""
    out: list[Judged | None] = [None] * len(items)
    queue = iter(range(len(items)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(items),
            unit="item",
            desc=f"eval {judge.name}",
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5,
        )

    async def worker() -> None:
        for index in queue:
            out[index] = await judge.judge(items[index])
            if bar is not None:
                bar.update(1)

    try:
        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    finally:
        if bar is not None:
            bar.close()
    return [j for j in out if j is not None]


def _estimate(
    item: EvalItem, judged: Judged, k: int, settings: EvalSettings, meta_keep: int | None
) -> Estimate:
    if not judged.draws:
        return Estimate(0.0, 0.0, 1.0, 0, True)
    return estimate_at_k(
        judged.draws,
        item.good,
        k,
        rule=item.rule,
        meta_keep=meta_keep,
        exact_limit=settings.exact_limit,
        mc_draws=settings.mc_draws,
        seed=settings.seed,
    )


def _chance(item: EvalItem) -> float:
    """Accuracy of random distinct scores: 1/C(n, good) for "separate", good/n for "top"."""
    n, good = len(item.good), sum(item.good)
    return good / n if item.rule == "top" else 1 / math.comb(n, good)


def _ci(values: Sequence[float], settings: EvalSettings) -> list[float]:
    lo, hi = bootstrap_ci(values, resamples=settings.bootstrap, seed=settings.seed)
    return [round(lo, 4), round(hi, 4)]


def summarize(
    items: Sequence[EvalItem],
    judged: Sequence[Judged],
    judge: EvalJudge,
    settings: EvalSettings,
    *,
    seconds: float = 0.0,
    loaded: Loaded | None = None,
) -> dict[str, Any]:
    """results.json: headline at k_max, per subset, RewardBench sections, the k-curve, cost."""
    if not items:
        raise ConfigError("nothing to evaluate: no items")
    k_max = judge.k_max
    outcomes = []
    for item, j in zip(items, judged, strict=True):
        outcomes.append(
            outcome(vote_totals(j.draws, len(item.good)), item.good, item.rule)
            if j.draws
            else "invalid"
        )
    correct = [1.0 if o == "correct" else 0.0 for o in outcomes]
    n = len(items)
    results: dict[str, Any] = {
        "kind": "eval",
        "judge": judge.name,
        "k_max": k_max,
        "n": n,
        "accuracy": round(sum(correct) / n, 4),
        "ties": round(outcomes.count("tie") / n, 4),
        "invalid": round(outcomes.count("invalid") / n, 4),
        "ci": _ci(correct, settings),
        "tie_rule": "a tie counts as wrong in accuracy",
        "random": round(sum(_chance(item) for item in items) / n, 4),
    }
    subsets: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        subsets.setdefault(item.subset, []).append(index)
    results["subsets"] = {
        name: {
            "accuracy": round(sum(correct[i] for i in idx) / len(idx), 4),
            "n": len(idx),
            "ci": _ci([correct[i] for i in idx], settings),
            "ties": round(sum(outcomes[i] == "tie" for i in idx) / len(idx), 4),
        }
        for name, idx in sorted(subsets.items())
    }
    sections = rb1_sections({k: v["accuracy"] for k, v in results["subsets"].items()})
    if sections:
        results["rewardbench_sections"] = {k: round(v, 4) for k, v in sections.items()}
    ties_rows = [
        (item.group, vote_totals(j.draws, len(item.good)), item.good)
        for item, j in zip(items, judged, strict=True)
        if item.group and j.draws
    ]
    complete = [
        (g, [float(s) for s in t if s is not None], good)
        for g, t, good in ties_rows
        if all(s is not None for s in t)
    ]
    if complete:
        results["rewardbench2_ties_score"] = rb2_ties_score(complete)
    results["curve"] = _curve(items, judged, judge, settings, seconds)
    meter = getattr(judge, "meter", None)
    results["cost"] = {
        **(meter.totals() if meter is not None else {}),
        "wall_seconds": round(seconds, 3),
    }
    if loaded is not None:
        results["skipped"] = loaded.skipped_counts()
        results["formats"] = dict(loaded.formats)
    errors: dict[str, int] = {}
    for j in judged:
        if j.error:
            code = j.error.split(":", 1)[0]
            errors[code] = errors.get(code, 0) + 1
    results["errors"] = errors
    results["settings"] = asdict(settings)
    return results


def _curve(
    items: Sequence[EvalItem],
    judged: Sequence[Judged],
    judge: EvalJudge,
    settings: EvalSettings,
    seconds: float,
) -> list[dict[str, Any]]:
    meter = getattr(judge, "meter", None)
    totals = meter.totals() if meter is not None else {}
    strata = max((len({d.stratum for d in j.draws}) for j in judged), default=1) or 1
    samples_max = max(1, judge.k_max * strata * len(items))
    requests_max = max(1, sum(judge.requests_at(item, judge.k_max) for item in items))
    points = []
    for k in ks_for(judge.k_max):
        voting = [_estimate(i, j, k, settings, None) for i, j in zip(items, judged, strict=True)]
        point: dict[str, Any] = {
            "k": k,
            "voting": round(sum(e.correct for e in voting) / len(voting), 4),
            "voting_ci": _ci([e.correct for e in voting], settings),
            "ties": round(sum(e.tie for e in voting) / len(voting), 4),
            "exact": all(e.exact for e in voting),
        }
        if judge.has_meta:
            keep = max(1, round(k * settings.meta_keep))
            meta = [_estimate(i, j, k, settings, keep) for i, j in zip(items, judged, strict=True)]
            point["meta_rm"] = round(sum(e.correct for e in meta) / len(meta), 4)
            point["meta_rm_ci"] = _ci([e.correct for e in meta], settings)
            point["meta_keep"] = keep
        requests = sum(judge.requests_at(item, k) for item in items)
        share = k * strata * len(items) / samples_max
        prompt_tokens = round(totals.get("prompt_tokens", 0) * requests / requests_max)
        completion_tokens = round(totals.get("completion_tokens", 0) * share)
        point.update(
            requests=requests,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            tokens=prompt_tokens + completion_tokens,
            seconds=round(seconds * share, 3),
        )
        points.append(point)
    return points


def write_eval(
    outdir: Path, results: dict[str, Any], items: Sequence[EvalItem], judged: Sequence[Judged]
) -> list[Path]:
    """results.json, items.jsonl, curve.csv, the PNGs and report.html; returns the paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    with (outdir / "items.jsonl").open("w", encoding="utf-8") as handle:
        for item, j in zip(items, judged, strict=True):
            totals = vote_totals(j.draws, len(item.good)) if j.draws else (None,) * len(item.good)
            handle.write(
                json.dumps(
                    {
                        "id": item.id,
                        "subset": item.subset,
                        "good": list(item.good),
                        "outcome": outcome(totals, item.good, item.rule) if j.draws else "invalid",
                        "totals": list(totals),
                        "draws": [list(d.scores) for d in j.draws],
                        "meta": [d.meta for d in j.draws]
                        if any(d.meta is not None for d in j.draws)
                        else None,
                        "error": j.error,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    written.append(outdir / "items.jsonl")
    columns = [
        "k",
        "voting",
        "voting_lo",
        "voting_hi",
        "meta_rm",
        "meta_rm_lo",
        "meta_rm_hi",
        "ties",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "tokens",
        "seconds",
    ]
    with (outdir / "curve.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for p in results["curve"]:
            meta_ci = p.get("meta_rm_ci", [None, None])
            writer.writerow(
                [
                    p["k"],
                    p["voting"],
                    *p["voting_ci"],
                    p.get("meta_rm"),
                    *meta_ci,
                    p["ties"],
                    p["requests"],
                    p["prompt_tokens"],
                    p["completion_tokens"],
                    p["tokens"],
                    p["seconds"],
                ]
            )
    written.append(outdir / "curve.csv")
    if results["settings"].get("plot", True):
        from rewardkit.pipelines.eval.plots import plot_eval

        results["plots"] = [p.name for p in plot_eval(outdir, results)]
        written.extend(outdir / name for name in results["plots"])
    (outdir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    written.append(outdir / "results.json")
    from rewardkit.pipelines.eval.report import write_report

    written.append(write_report([outdir], outdir / "report.html"))
    return written


async def run_eval(
    items: Sequence[EvalItem],
    judge: EvalJudge,
    outdir: Path,
    settings: EvalSettings | None = None,
    *,
    concurrency: int = 16,
    progress: bool = True,
    loaded: Loaded | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Judge, summarize, write. The judge is closed at the end."""
    settings = settings or EvalSettings()
    started = time.perf_counter()
    try:
        judged = await judge_items(items, judge, concurrency=concurrency, progress=progress)
    finally:
        await judge.aclose()
    seconds = time.perf_counter() - started
    results = summarize(items, judged, judge, settings, seconds=seconds, loaded=loaded)
    results.update(extra or {})
    write_eval(outdir, results, items, judged)
    return results
