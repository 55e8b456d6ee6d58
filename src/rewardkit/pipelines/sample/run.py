"""`rewardkit sample`: rejection sampling, distillation data and policy metrics in one pass.

    result = run_sample(config)          # draw, score, filter, dedup, keep, write

The output folder holds:

* `samples.jsonl` — every sample drawn, scored (append-only; what a rerun resumes from);
* `sft.jsonl` / `sft.parquet` / `sft/` — the kept completions as chat `messages`;
* `summary.json` — how many samples each stage rejected, and why;
* `metrics.json` — pass@1, pass@k and cons@n per dataset, with bootstrap intervals;
* `run.json` — the settings the samples were drawn with (a rerun must match them).

Everything after drawing is recomputed from `samples.jsonl` on every run, so changing the
keep policy or a filter and rerunning re-selects without asking the policy again.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewardkit.errors import ConfigError, InputError
from rewardkit.pipelines.sample.config import SampleRunConfig
from rewardkit.pipelines.sample.filters import FILTERS
from rewardkit.pipelines.sample.metrics import outcome, policy_metrics
from rewardkit.pipelines.sample.policy import PromptRow, build_policy, draw_all, read_prompts
from rewardkit.pipelines.sample.records import Candidate
from rewardkit.pipelines.sample.select import Decision, decide
from rewardkit.pipelines.sample.writer import sft_row, write_json, write_sft
from rewardkit.scoring import Scorer
from rewardkit.store.results import ResultWriter

if TYPE_CHECKING:
    from rewardkit.backends.base import Backend

__all__ = ["SampleResult", "run_sample", "run_sample_sync", "select_from_raw"]

RAW_FILE = "samples.jsonl"
#: Stage order in the summary (see `rewardkit.pipelines.sample.select`).
_STAGES = (
    "error",
    "unscored",
    "not_correct",
    "below_min_reward",
    *FILTERS,
    "duplicate",
    "near_duplicate",
    "not_best",
    "not_top_k",
)


@dataclass
class SampleResult:
    """What a run did and where it wrote it."""

    output: Path
    sft_path: Path
    summary: dict[str, Any]
    metrics: dict[str, Any]
    drawn: int = 0  # samples drawn by this run (not those resumed)
    failed: int = 0  # samples whose generation failed in this run
    input_errors: list[dict[str, Any]] = field(default_factory=list)


def _settings(config: SampleRunConfig) -> dict[str, Any]:
    """What changes the samples: a rerun into the same folder must match (n may grow)."""
    sampling = config.sampling.model_dump(exclude={"n"})
    return {
        "policy": config.policy.label,
        "sampling": sampling,
        "prompt_column": config.input.prompt_column,
        "reference_column": config.input.reference_column,
        "spec": config.spec.model_dump(mode="json"),
    }


def _check_settings(folder: Path, settings: dict[str, Any]) -> None:
    path = folder / "run.json"
    if path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            before = None
        if before is not None and before != settings:
            changed = sorted(k for k in settings if before.get(k) != settings[k])
            raise ConfigError(
                f"{folder} holds samples drawn with other settings (changed: {', '.join(changed)}); "
                "rerun with the same policy, sampling options and spec, or choose another -o folder"
            )
    write_json(path, settings)


async def run_sample(
    config: SampleRunConfig, *, backend: Backend | None = None, scorer: Scorer | None = None
) -> SampleResult:
    """Draw what is missing, then select and write everything. `backend` overrides the
    configured policy (tests pass a scripted one); `scorer` the spec's local Scorer (e.g.
    `rewardkit.integrations.ray.RayScorer`). Both are closed at the end either way."""
    folder = config.output
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"-o {folder} is a file; give a folder for the run's outputs")
    if not config.prompts.exists():
        raise InputError(f"prompts not found: {config.prompts}")
    prompts, problems = read_prompts(config.prompts, config.input, config.sampling.system_prompt)
    # Cheap checks first: the spec's rewards, then the folder, then the (maybe heavy) policy.
    scorer = scorer if scorer is not None else Scorer(config.spec)
    drawn = failed = 0
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _check_settings(folder, _settings(config))
        policy = backend if backend is not None else build_policy(config.policy)
        try:
            with ResultWriter(folder / RAW_FILE, retry_errors=True) as writer:
                todo = [p for p in prompts if _missing(p, config, writer.done)]
                bar = _bar(config, len(prompts), len(prompts) - len(todo))
                try:
                    drawn, failed = await draw_all(
                        todo, policy, scorer, writer, config.policy, config.sampling, bar
                    )
                finally:
                    if bar is not None:
                        bar.close()
        finally:
            await policy.aclose()
    finally:
        scorer.close()
    result = select_from_raw(config, prompts, problems)
    result.drawn, result.failed = drawn, failed
    return result


def _missing(prompt: PromptRow, config: SampleRunConfig, done: set[str]) -> bool:
    return any(f"{prompt.id}#{i}" not in done for i in range(config.sampling.n))


def _bar(config: SampleRunConfig, total: int, initial: int) -> Any:
    if not config.out.progress:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="prompt",
        desc="sample",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
    )


def _read_raw(path: Path, n: int) -> dict[str, dict[int, Candidate]]:
    by_prompt: dict[str, dict[int, Candidate]] = {}
    if not path.is_file():
        return by_prompt
    with path.open("rb") as handle:
        for line in handle:
            try:
                record = json.loads(line)
                candidate = Candidate.from_line(record)
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line is trimmed by the next ResultWriter open
            if candidate.index < n:
                by_prompt.setdefault(candidate.prompt_id, {})[candidate.index] = candidate
    return by_prompt


def select_from_raw(
    config: SampleRunConfig, prompts: list[PromptRow], problems: list[dict[str, Any]]
) -> SampleResult:
    """Decide, write the SFT dataset, summary.json and metrics.json from samples.jsonl."""
    folder = config.output
    raw = _read_raw(folder / RAW_FILE, config.sampling.n)
    decisions: list[Decision] = []
    outcomes = []
    for prompt in prompts:
        group = [raw[prompt.id][i] for i in sorted(raw.get(prompt.id, {}))]
        if not group:
            continue
        decisions.extend(decide(group, config.keep, config.filters, config.dedup))
        outcomes.append(outcome(group, config.keep.threshold))
    kept = [d.candidate for d in decisions if d.kept]
    sft_path = write_sft([sft_row(c) for c in kept], folder, config.out.format)
    summary = _summary(config, prompts, decisions, problems)
    metrics = policy_metrics(outcomes, config.pass_k, config.out.bootstrap)
    write_json(folder / "summary.json", summary)
    write_json(folder / "metrics.json", metrics)
    return SampleResult(folder, sft_path, summary, metrics, input_errors=problems)


def _summary(
    config: SampleRunConfig,
    prompts: list[PromptRow],
    decisions: list[Decision],
    problems: list[dict[str, Any]],
) -> dict[str, Any]:
    reasons = Counter(d.reason for d in decisions if d.reason is not None)
    failures = Counter(f for d in decisions for f in d.failed_filters)
    unscored = Counter(
        (d.candidate.unscored or "").split(":")[0] for d in decisions if d.reason == "unscored"
    )
    errors = Counter(d.candidate.error for d in decisions if d.reason == "error")
    sampled = {d.candidate.prompt_id for d in decisions}
    missing = sum(1 for p in prompts if p.id not in sampled)
    return {
        "prompts": len(prompts),
        "prompts_without_samples": missing,
        "input_errors": problems,
        "samples": len(decisions),
        "rejected": {stage: reasons.get(stage, 0) for stage in _STAGES if _shown(stage, config)},
        "kept": sum(d.kept for d in decisions),
        "kept_prompts": len({d.candidate.prompt_id for d in decisions if d.kept}),
        "filter_failures": {name: failures.get(name, 0) for name in FILTERS},
        "unscored_reasons": dict(unscored),
        "generation_errors": dict(errors.most_common(5)),
        "keep": config.keep.model_dump(),
        "filters": config.filters.model_dump(),
        "dedup": config.dedup.model_dump(),
        "policy": config.policy.label,
        "sampling": config.sampling.model_dump(),
    }


def _shown(stage: str, config: SampleRunConfig) -> bool:
    """Stages that cannot happen under this keep policy stay out of the table."""
    policy = config.keep.policy
    return {
        "not_correct": policy == "correct",
        "below_min_reward": policy != "correct" and config.keep.min_reward is not None,
        "not_best": policy == "best",
        "not_top_k": policy == "top_k",
    }.get(stage, True)


def run_sample_sync(config: SampleRunConfig, *, backend: Backend | None = None) -> SampleResult:
    return asyncio.run(run_sample(config, backend=backend))
