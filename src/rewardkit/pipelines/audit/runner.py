"""The offline audit: a finished (or running) GRPO run's saved samples, step by step.

`rewardkit train grpo` appends the latest batch's prompts, completions and rewards to
RUN_DIR/samples.jsonl every `samples.every` steps. `audit_run` groups those rows by step,
scores each completion by the gold reward, takes the proxy from the recorded `reward`
(or rescores with another proxy spec), computes the hacking features, applies the
divergence rule, and writes OUTDIR/results.json (`kind: audit`), OUTDIR/audit.csv and
OUTDIR/audit.png.

Rows the gold cannot score are counted per step and reason (`unscored`), never dropped
silently; a malformed line stops the audit with its line number.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardkit.errors import InputError
from rewardkit.pipelines.audit.divergence import DivergenceConfig, DivergenceReport
from rewardkit.pipelines.audit.record import (
    AuditPoint,
    ScoreFn,
    audit_json,
    detect,
    score_point,
    write_csv,
    write_json,
)
from rewardkit.text import completion_text, prompt_text
from rewardkit.types import Sample

__all__ = ["OfflineAudit", "audit_run", "find_samples", "read_samples"]

RESULTS = "results.json"
CSV = "audit.csv"
PLOT = "audit.png"


@dataclass(frozen=True)
class OfflineAudit:
    """What `audit_run` found and wrote."""

    points: list[AuditPoint]
    divergence: DivergenceReport
    document: dict[str, Any]
    results_path: Path
    csv_path: Path
    plot_path: Path | None


def find_samples(run: Path) -> Path:
    """RUN_DIR/samples.jsonl (or RUN itself when it is the file)."""
    if run.is_file():
        return run
    if not run.is_dir():
        raise InputError(f"run not found: {run}")
    candidates = sorted(run.glob("samples*.jsonl"))
    if not candidates:
        raise InputError(
            f"{run} has no samples*.jsonl; train with `samples: {{every: N}}` to write them"
        )
    if len(candidates) > 1:
        names = ", ".join(c.name for c in candidates)
        raise InputError(f"{run} has several sample files ({names}); give the one to audit")
    return candidates[0]


def read_samples(path: Path) -> dict[int, list[tuple[Sample, float | None]]]:
    """Rows grouped by step: each a Sample and the proxy reward recorded with it."""
    by_step: dict[int, list[tuple[Sample, float | None]]] = defaultdict(list)
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not valid JSON: {exc.msg}") from exc
            if not isinstance(row, dict):
                raise InputError(f"{path}:{number}: expected a JSON object")
            missing = [k for k in ("step", "completion") if k not in row]
            if missing:
                raise InputError(f"{path}:{number}: missing {', '.join(missing)}")
            if isinstance(row["step"], bool) or not isinstance(row["step"], int):
                raise InputError(f"{path}:{number}: step must be an integer, got {row['step']!r}")
            reward = row.get("reward")
            if reward is not None and (
                isinstance(reward, bool) or not isinstance(reward, int | float)
            ):
                raise InputError(f"{path}:{number}: reward must be a number or null")
            sample = Sample(
                prompt=prompt_text(row.get("prompt")),
                response=completion_text(row["completion"]),
                reference=row.get("reference"),
                id=f"{row['step']}:{number}",
            )
            by_step[row["step"]].append((sample, None if reward is None else float(reward)))
    if not by_step:
        raise InputError(f"{path}: no sample rows")
    return dict(sorted(by_step.items()))


def audit_run(
    run: str | Path,
    gold: ScoreFn,
    out_dir: str | Path,
    *,
    proxy: ScoreFn | None = None,
    divergence: DivergenceConfig | None = None,
    plot: bool = True,
    meta: dict[str, Any] | None = None,
) -> OfflineAudit:
    """Audit RUN's samples (module docstring) and write the results into OUT_DIR."""
    path = find_samples(Path(run))
    out = Path(out_dir)
    points = []
    for step, rows in read_samples(path).items():
        samples = [s for s, _ in rows]
        if proxy is not None:
            points.append(score_point(step, samples, gold, proxy=proxy))
        else:
            points.append(score_point(step, samples, gold, proxy_rewards=[r for _, r in rows]))
    report = detect(points, divergence)
    document = audit_json(
        points,
        report,
        source="samples",
        run=str(path),
        proxy_source="rescored" if proxy is not None else "recorded",
        **(meta or {}),
    )
    results = out / RESULTS
    write_json(results, document)
    write_csv(out / CSV, points)
    plot_path = None
    if plot:
        from rewardkit.pipelines.audit.plot import plot_audit

        plot_path = plot_audit(document, out / PLOT)
    return OfflineAudit(points, report, document, results, out / CSV, plot_path)
