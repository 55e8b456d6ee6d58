"""Rejective fine-tuning data (SPCT stage 1): sample judgments, keep the ones that agree.

For each labelled item the judge writes `n_rft` trajectories (principles, critique,
`Scores: \\boxed{...}`) over shuffled display orders. A trajectory is *correct* when its
scores put the labelled best strictly highest (n >= 2) or equal the rating (n = 1) — the
rule of `rewardkit.rules.judge_agreement`. Then, per item:

- some but not all correct: the correct ones become SFT rows, the others are rejected;
- all correct: the item is too easy and dropped (its trajectories go to `rejected.jsonl`
  with reason `too_easy`), as SPCT does;
- none correct: with `hinted=True`, `n_rft` more are sampled with the best response named
  in the prompt; correct hinted ones are kept, flagged `hinted` (the SFT row holds the plain
  prompt). Off by default: hinted trajectories can shortcut their reasoning.

Output folder:

    samples.jsonl   every trajectory, append-only (the resume log)
    sft.jsonl       {"messages": [user prompt, assistant trajectory], id, sample, hinted}
    rejected.jsonl  the rest, each with its `reason`
    meta_rm.jsonl   `MetaRMRecord`s from every non-hinted trajectory with a valid verdict
    rl.jsonl        one judge prompt per item + its `judge_label`, for `train judge-grpo`
    summary.json    acceptance statistics

A rerun samples only the trajectories missing from samples.jsonl (a backend failure is not
written, so it is retried); the other files are rebuilt from it each time.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rewardkit.backends.base import GenerateRequest
from rewardkit.errors import BackendError, ConfigError, InputError
from rewardkit.judges.constrain import build_constraint
from rewardkit.judges.grm import PointwiseJudge
from rewardkit.judges.meta_rm import MetaRMRecord
from rewardkit.judges.templates import make_nonce
from rewardkit.pipelines.spct.data import (
    ItemError,
    LabelledItem,
    gold_labels,
    read_items,
    with_gold,
)
from rewardkit.pipelines.spct.prompting import hint_text, render_prompt, sample_orders
from rewardkit.pipelines.spct.store import SampleStore, write_jsonl_atomic
from rewardkit.rules.judge_agreement import judgment_agrees

__all__ = ["RFTConfig", "RFTSummary", "load_items", "rft", "run_rft"]

_REQUEST_FAILURES = (BackendError, TimeoutError, ConnectionError, OSError)


@dataclass(frozen=True)
class RFTConfig:
    """How RFT samples."""

    #: Trajectories per item (SPCT's N_RFT).
    n_rft: int = 3
    #: Sample `n_rft` hinted trajectories for items with no correct one.
    hinted: bool = False
    #: Requests in flight.
    concurrency: int = 8
    #: Fixes the display orders and the request seeds (so the cache can answer a rerun).
    seed: int = 0
    #: Use only the first N usable items.
    limit: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("n_rft", "concurrency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"rft: {name} must be a positive integer, got {value!r}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"rft: limit must be a positive integer, got {self.limit!r}")


@dataclass
class RFTSummary:
    """Acceptance statistics of one RFT folder (written as summary.json)."""

    items: int = 0
    #: Rows not used, by reason (bad_line, unlabelled, gold_tie, too_many_responses, ...).
    skipped: dict[str, int] = field(default_factory=dict)
    #: Items by outcome: accepted, too_easy, hinted, no_correct, incomplete.
    item_status: dict[str, int] = field(default_factory=dict)
    trajectories: int = 0  # non-hinted trajectories sampled
    correct: int = 0  # of which correct
    hinted_trajectories: int = 0
    hinted_correct: int = 0
    sft_rows: int = 0
    hinted_sft_rows: int = 0
    #: Rejected trajectories by reason: wrong, no_valid_verdict, too_easy, hinted_wrong, ...
    rejected: dict[str, int] = field(default_factory=dict)
    parse_errors: dict[str, int] = field(default_factory=dict)
    #: Where the labelled best was *shown* (1-based) in the SFT rows: a position-biased
    #: judge's accepted rows pile up on its favourite position, and SFT would teach it.
    sft_best_position: dict[int, int] = field(default_factory=dict)
    meta_rm_records: int = 0
    rl_rows: int = 0
    backend_errors: int = 0  # this run's failed requests (retried by a rerun)
    last_backend_error: str | None = None

    @property
    def correct_rate(self) -> float:
        """Fraction of non-hinted trajectories whose verdict agreed with the label."""
        return self.correct / self.trajectories if self.trajectories else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["correct_rate"] = round(self.correct_rate, 4)
        return data


# --- items ---------------------------------------------------------------------------------


def load_items(
    data: str | Path | Iterable[LabelledItem | ItemError],
    *,
    labels: str | Path | None = None,
    max_responses: int = 8,
    limit: int | None = None,
) -> tuple[list[LabelledItem], Counter[str]]:
    """Usable labelled items, and the count of skipped rows by reason."""
    rows: Iterator[LabelledItem | ItemError]
    rows = read_items(data) if isinstance(data, str | Path) else iter(data)
    if labels is not None:
        rows = with_gold(rows, gold_labels(labels))
    items: list[LabelledItem] = []
    skipped: Counter[str] = Counter()
    seen: set[str] = set()
    for row in rows:
        if limit is not None and len(items) >= limit:
            break
        if isinstance(row, ItemError):
            skipped[row.reason] += 1
        elif not row.labelled:
            skipped["unlabelled"] += 1
        elif len(row.responses) > max_responses:
            skipped["too_many_responses"] += 1
        elif row.id in seen:
            skipped["duplicate_id"] += 1
        else:
            seen.add(row.id)
            items.append(row)
    return items, skipped


# --- sampling ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    item: LabelledItem
    sample: int
    order: tuple[int, ...]
    hinted: bool


class _Sampler:
    def __init__(
        self, judge: PointwiseJudge, store: SampleStore, config: RFTConfig, judge_key: str
    ) -> None:
        self.judge = judge
        self.judge_key = judge_key
        self.store = store
        self.config = config
        self.backend_errors = 0
        self.last_error: str | None = None

    def jobs(self, items: list[LabelledItem], hinted: bool) -> list[_Job]:
        out = []
        for item in items:
            salt = self.config.seed + (1 if hinted else 0)
            for i, order in enumerate(sample_orders(item, self.config.n_rft, salt)):
                if (item.id, i, hinted) not in self.store:
                    out.append(_Job(item, i, order, hinted))
        return out

    async def run(self, jobs: list[_Job], desc: str) -> None:
        if not jobs:
            return
        bar = None
        if self.config.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc=desc, unit="traj", file=sys.stderr, mininterval=0.5)
        queue = iter(jobs)

        async def worker() -> None:
            for job in queue:
                await self._sample(job)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"backend_errors={self.backend_errors}", refresh=False)

        try:
            await asyncio.gather(
                *(worker() for _ in range(min(self.config.concurrency, len(jobs))))
            )
        finally:
            if bar is not None:
                bar.close()

    async def _sample(self, job: _Job) -> None:
        item, config = job.item, self.judge.config
        prompt = render_prompt(self.judge.prompts, item, job.order, salt=(job.sample, job.hinted))
        text = prompt.text + (hint_text(item, job.order) if job.hinted else "")
        n = len(job.order)
        request = GenerateRequest(
            messages=({"role": "user", "content": text},),
            n=1,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            seed=int(make_nonce("spct-seed", self.config.seed, item.id, job.sample, job.hinted), 16)
            % (2**31),
            constraint=build_constraint(n, self.judge.constraint_kind)
            if config.constrain
            else None,
        )
        try:
            [completion] = await self.judge.backend.generate(request)
        except _REQUEST_FAILURES as exc:
            self.backend_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return
        parsed = prompt.parse(completion.text)
        error = parsed.error
        if error in ("no_verdict", "unterminated_think") and completion.finish_reason == "length":
            error = "truncated"
        scores = None if parsed.scores is None else prompt.to_input_order(parsed.scores)
        correct = scores is not None and judgment_agrees(scores, best=item.best, rating=item.rating)
        self.store.add(
            {
                "id": item.id,
                "sample": job.sample,
                "hinted": job.hinted,
                "item": item.fingerprint(),
                "judge": self.judge_key,
                "order": list(job.order),
                "prompt": prompt.text,  # without the hint: what the SFT row trains on
                "hint": text[len(prompt.text) :] or None,
                "text": completion.text,
                "finish_reason": completion.finish_reason,
                "scores": None if scores is None else list(scores),
                "error": error,
                "correct": correct,
            }
        )


# --- the run -------------------------------------------------------------------------------


async def run_rft(
    data: str | Path | Iterable[LabelledItem | ItemError],
    judge: PointwiseJudge,
    out_dir: str | Path,
    config: RFTConfig | None = None,
    *,
    labels: str | Path | None = None,
) -> RFTSummary:
    """Sample, classify and write the RFT folder (module docstring). Resumable."""
    config = config if config is not None else RFTConfig()
    if judge.config.mode == "reference":
        raise ConfigError("rft: judge mode 'reference' is not supported (items carry no reference)")
    items, skipped = load_items(
        data, labels=labels, max_responses=judge.config.max_responses, limit=config.limit
    )
    if not items:
        raise InputError(f"rft: no usable labelled items (skipped: {dict(skipped) or 'none'})")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out} is a file; RFT writes a folder")
    out.mkdir(parents=True, exist_ok=True)
    store = SampleStore(out / "samples.jsonl")
    try:
        judge_key = _judge_key(judge)
        others = {r.get("judge") for r in store.records.values()} - {judge_key, None}
        if others:
            raise ConfigError(
                f"{out} holds trajectories of another judge (model, template, mode or "
                "sampling settings differ); use a new output folder"
            )
        for item in items:
            store.check(item.id, item.fingerprint())
        sampler = _Sampler(judge, store, config, judge_key)
        await sampler.run(sampler.jobs(items, hinted=False), "rft")
        if config.hinted:
            hard = [
                it for it in items if _status(it, store, config, hinted_phase=False) == "no_correct"
            ]
            await sampler.run(sampler.jobs(hard, hinted=True), "rft hinted")
    finally:
        store.close()
    summary = write_outputs(out, items, store, config, judge)
    summary.skipped = dict(skipped)
    summary.backend_errors = sampler.backend_errors
    summary.last_backend_error = sampler.last_error
    (out / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def rft(
    data: str | Path | Iterable[LabelledItem | ItemError],
    judge: PointwiseJudge,
    out_dir: str | Path,
    config: RFTConfig | None = None,
    *,
    labels: str | Path | None = None,
) -> RFTSummary:
    """`run_rft` from synchronous code."""
    return asyncio.run(run_rft(data, judge, out_dir, config, labels=labels))


def _judge_key(judge: PointwiseJudge) -> str:
    """What makes two trajectories comparable: the judge model and what shapes its output."""
    from rewardkit.store.cache import backend_identity

    c = judge.config
    # A cache wrapper names the backend it wraps (`identity`); a bare backend is named here.
    identity = getattr(judge.backend, "identity", None) or backend_identity(judge.backend)
    return make_nonce(
        identity,
        judge.prompts.template,
        judge.prompts.criteria,
        judge.prompts.view,
        c.temperature,
        c.max_tokens,
        c.constrain,
        judge.constraint_kind,
    )


def _records(item: LabelledItem, store: SampleStore, n: int, hinted: bool) -> list[dict[str, Any]]:
    return [r for i in range(n) if (r := store.records.get((item.id, i, hinted))) is not None]


def _status(item: LabelledItem, store: SampleStore, config: RFTConfig, hinted_phase: bool) -> str:
    plain = _records(item, store, config.n_rft, False)
    if len(plain) < config.n_rft:
        return "incomplete"
    correct = sum(r["correct"] for r in plain)
    if correct == len(plain):
        return "too_easy"
    if correct:
        return "accepted"
    if hinted_phase and config.hinted:
        hinted = _records(item, store, config.n_rft, True)
        if len(hinted) < config.n_rft:
            return "incomplete"
        return "hinted" if any(r["correct"] for r in hinted) else "no_correct"
    return "no_correct"


def _messages(record: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": record["prompt"]},
        {"role": "assistant", "content": record["text"]},
    ]


def write_outputs(
    out: Path,
    items: list[LabelledItem],
    store: SampleStore,
    config: RFTConfig,
    judge: PointwiseJudge,
) -> RFTSummary:
    """Rebuild sft / rejected / meta_rm / rl from samples.jsonl; the statistics."""
    summary = RFTSummary(items=len(items))
    status_counts: Counter[str] = Counter()
    rejected_counts: Counter[str] = Counter()
    parse_errors: Counter[str] = Counter()
    best_position: Counter[int] = Counter()
    sft: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    meta: list[dict[str, Any]] = []
    for item in items:
        status = _status(item, store, config, hinted_phase=True)
        status_counts[status] += 1
        for hinted in (False, True):
            for record in _records(item, store, config.n_rft, hinted):
                if record["error"]:
                    parse_errors[record["error"]] += 1
                if hinted:
                    summary.hinted_trajectories += 1
                    summary.hinted_correct += record["correct"]
                else:
                    summary.trajectories += 1
                    summary.correct += record["correct"]
                    if record["scores"] is not None:
                        meta.append(_meta_record(item, record).model_dump())
                reason = _reason(record, status, hinted)
                row = {"id": item.id, "sample": record["sample"], "hinted": hinted}
                if reason is None:
                    sft.append({**row, "messages": _messages(record)})
                    if item.best is not None:
                        best_position[record["order"].index(item.best) + 1] += 1
                    summary.hinted_sft_rows += hinted
                else:
                    rejected_counts[reason] += 1
                    rejected.append(
                        {
                            **row,
                            "reason": reason,
                            "scores": record["scores"],
                            "error": record["error"],
                            "messages": _messages(record),
                        }
                    )
    summary.sft_rows = write_jsonl_atomic(out / "sft.jsonl", sft)
    write_jsonl_atomic(out / "rejected.jsonl", rejected)
    summary.meta_rm_records = write_jsonl_atomic(out / "meta_rm.jsonl", meta)
    summary.rl_rows = write_jsonl_atomic(out / "rl.jsonl", rl_rows(items, judge, config.seed))
    summary.item_status = dict(status_counts)
    summary.rejected = dict(rejected_counts)
    summary.parse_errors = dict(parse_errors)
    summary.sft_best_position = dict(sorted(best_position.items()))
    return summary


def _reason(record: dict[str, Any], status: str, hinted: bool) -> str | None:
    """Why a trajectory is not an SFT row, or None when it is one."""
    if status == "incomplete":
        return "incomplete_item"
    if not record["correct"]:
        if record["scores"] is None:
            return "no_valid_verdict"
        return "hinted_wrong" if hinted else "wrong"
    if status == "too_easy":
        return "too_easy"
    return None


def _meta_record(item: LabelledItem, record: dict[str, Any]) -> MetaRMRecord:
    return MetaRMRecord(
        query=item.prompt,
        responses=[item.responses[i] for i in record["order"]],
        judgment=record["text"],
        label=int(record["correct"]),
        id=item.id,
        source="rft",
    )


def rl_rows(
    items: list[LabelledItem], judge: PointwiseJudge, seed: int = 0
) -> Iterator[dict[str, Any]]:
    """One judge prompt per item in one shuffled order, with its agreement label (shown
    positions): the dataset of `rewardkit train judge-grpo`."""
    for item in items:
        [order] = sample_orders(item, 1, seed + 2)
        prompt = render_prompt(judge.prompts, item, order, salt="rl")
        yield {
            "id": item.id,
            "prompt": [{"role": "user", "content": prompt.text}],
            "judge_label": prompt.label(item).to_json(),
        }
