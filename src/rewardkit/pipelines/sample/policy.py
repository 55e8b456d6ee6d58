"""Draw n completions per prompt from the policy, score them, append them to the raw file.

The raw file (`samples.jsonl`) is append-only, one line per (prompt id, sample index),
written through `rewardkit.store.results.ResultWriter`: a rerun skips the samples already there,
trims a half-written last line left by a kill, and draws again the samples whose line
holds a generation error. A prompt asks the backend for the samples it still lacks in
one request (`n` > 1; the HTTP backend tops up servers that ignore `n`). Scoring uses the
spec's `Scorer`, so routing (`when:`), judges and rules are exactly those of
`rewardkit score`.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rewardkit.errors import BackendError, InputError
from rewardkit.io import RowKeys, iter_rows
from rewardkit.pipelines.sample.config import InputConfig, PolicyConfig, SamplingConfig
from rewardkit.pipelines.sample.records import Candidate, sample_key
from rewardkit.scoring import RewardReport, Scorer
from rewardkit.store.results import ResultWriter
from rewardkit.text import prompt_text
from rewardkit.types import Sample, Score

if TYPE_CHECKING:
    from rewardkit.backends.base import Backend

__all__ = ["PromptRow", "build_policy", "draw_all", "read_prompts"]

#: Reward names whose samples are code tasks (where code blocks are the answer).
CODE_REWARDS = frozenset({"code"})


def build_policy(config: PolicyConfig) -> Backend:
    """The policy backend, built by the same factory `rewardkit judge` uses."""
    from rewardkit.backends import build_backend

    options = dict(config.options)
    if config.model is not None:
        options.setdefault("model", config.model)
    if config.backend == "http":
        options.setdefault("base_url", list(config.base_url))
        options.setdefault("concurrency", config.concurrency)
        options.setdefault("timeout", config.timeout)
        options.setdefault("max_retries", config.retries)
        if config.api_key is not None:
            options.setdefault("api_key", config.api_key)
    return build_backend(config.backend, **options)


@dataclass(frozen=True, slots=True)
class PromptRow:
    """One prompt to sample: its id, chat messages, reference and other columns."""

    id: str
    messages: tuple[dict[str, str], ...]
    reference: Any
    fields: dict[str, Any]


def _messages(prompt: Any, system: str | None, line: int) -> tuple[dict[str, str], ...]:
    if isinstance(prompt, str):
        turns = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list) and prompt:
        turns = []
        for i, message in enumerate(prompt):
            if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                raise InputError(f"line {line}: prompt message {i} needs a string 'content'")
            turns.append(
                {"role": str(message.get("role") or "user"), "content": message["content"]}
            )
    else:
        raise InputError(f"line {line}: the prompt must be a string or chat messages")
    if system is not None and turns[0]["role"] != "system":
        turns.insert(0, {"role": "system", "content": system})
    return tuple(turns)


def read_prompts(
    path: Any, config: InputConfig, system_prompt: str | None
) -> tuple[list[PromptRow], list[dict[str, Any]]]:
    """Prompts to sample, and one problem line per unusable row (`id`, `line`, `error`)."""
    prompts: list[PromptRow] = []
    problems: list[dict[str, Any]] = []
    keys = RowKeys.of(path)  # an id-less row's made-up key never equals an input id
    taken = {config.prompt_column, config.reference_column, "id"}
    for row in iter_rows(path):
        if config.limit is not None and len(prompts) + len(problems) >= config.limit:
            break
        rid, repeated = keys.assign(row)
        if row.record is None or repeated is not None:
            problems.append({"id": rid, "line": row.line, "error": repeated or row.error})
            continue
        if config.prompt_column not in row.record:
            problems.append(
                {
                    "id": rid,
                    "line": row.line,
                    "error": f"line {row.line}: no {config.prompt_column!r} column",
                }
            )
            continue
        try:
            messages = _messages(row.record[config.prompt_column], system_prompt, row.line)
        except InputError as exc:
            problems.append({"id": rid, "line": row.line, "error": str(exc)})
            continue
        fields = {k: v for k, v in row.record.items() if k not in taken}
        prompts.append(PromptRow(rid, messages, row.record.get(config.reference_column), fields))
    return prompts, problems


def _seed(base: int | None, prompt_id: str, first_index: int) -> int | None:
    """A seed per prompt and first missing sample: reruns draw what the first run would."""
    if base is None:
        return None
    return (base + zlib.crc32(prompt_id.encode()) * 1009 + first_index) % 2**31


def _answer(report: RewardReport) -> str | None:
    for result in report.components.values():
        if isinstance(result, Score) and isinstance(result.details.get("answer"), str):
            return str(result.details["answer"])
    return None


class _Drawer:
    def __init__(
        self,
        backend: Backend,
        scorer: Scorer,
        writer: ResultWriter,
        policy: PolicyConfig,
        sampling: SamplingConfig,
        bar: Any,
    ) -> None:
        self.backend = backend
        self.scorer = scorer
        self.writer = writer
        self.sampling = sampling
        self.policy_label = policy.label if policy.backend != "mock" else f"mock:{backend.model}"
        self.settings = {
            "n": sampling.n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": sampling.seed,
            "backend": policy.backend,
        }
        self.code_labels = {e.label for e in scorer.spec.rewards if e.reward in CODE_REWARDS}
        self.bar = bar
        self.lock = asyncio.Lock()
        self.drawn = 0
        self.failed = 0

    async def prompt(self, row: PromptRow) -> None:
        from rewardkit.backends.base import GenerateRequest

        missing = [
            i for i in range(self.sampling.n) if sample_key(row.id, i) not in self.writer.done
        ]
        if not missing:
            return
        request = GenerateRequest(
            messages=row.messages,
            n=len(missing),
            temperature=self.sampling.temperature,
            top_p=self.sampling.top_p,
            max_tokens=self.sampling.max_tokens,
            seed=_seed(self.sampling.seed, row.id, missing[0]),
        )
        try:
            completions = await self.backend.generate(request)
        except BackendError as exc:
            message = f"{type(exc).__name__}: {exc}"
            await self._write([Candidate(row.id, i, error=message) for i in missing])
            self.failed += len(missing)
            return
        text = prompt_text(list(row.messages))
        samples = [
            Sample(
                prompt=text,
                response=c.text,
                reference=row.reference,
                id=sample_key(row.id, i),
                fields=row.fields,
            )
            for i, c in zip(missing, completions, strict=True)
        ]
        reports = await self.scorer.ascore(samples)
        candidates = [
            Candidate(
                prompt_id=row.id,
                index=i,
                completion=c.text,
                prompt=[dict(m) for m in row.messages],
                prompt_text=text,
                finish_reason=c.finish_reason,
                reward=report.reward,
                unscored=report.reason,
                details=report.details(),
                answer=_answer(report),
                code_task=bool(self.code_labels & set(report.components)),
                fields=row.fields,
                reference=row.reference,
                policy=self.policy_label,
                sampling=self.settings,
            )
            for i, c, report in zip(missing, completions, reports, strict=True)
        ]
        self.drawn += len(candidates)
        await self._write(candidates)

    async def _write(self, candidates: Sequence[Candidate]) -> None:
        async with self.lock:  # one writer at a time; the fsync runs off the event loop
            self.writer.append([c.to_line() for c in candidates])
            await asyncio.to_thread(self.writer.sync)


async def draw_all(
    prompts: Sequence[PromptRow],
    backend: Backend,
    scorer: Scorer,
    writer: ResultWriter,
    policy: PolicyConfig,
    sampling: SamplingConfig,
    bar: Any = None,
) -> tuple[int, int]:
    """Sample every prompt's missing completions; returns (drawn, failed) sample counts."""
    drawer = _Drawer(backend, scorer, writer, policy, sampling, bar)
    queue = iter(prompts)

    async def worker() -> None:
        for row in queue:  # workers share one iterator: no task per prompt
            await drawer.prompt(row)
            if bar is not None:
                bar.update(1)

    await asyncio.gather(*(worker() for _ in range(min(policy.concurrency, max(1, len(prompts))))))
    return drawer.drawn, drawer.failed
