"""Judge a file of queries with an SPCT-style LLM judge, resumably: `rewardkit judge` as a function.

    from rewardkit.pipelines.judge_file import JudgeOptions, judge_file

    summary = judge_file(JudgeOptions(input="in.jsonl", output="out.jsonl",
                                      base_url=("http://127.0.0.1:8000/v1",), model="qwen"))
    print(summary.describe(), summary.error_lines)

Input lines are `{"id", "prompt", "responses": [...], "reference"?}` (or one `"response"`);
other fields are copied to the output line. Each finished query is appended to OUTPUT and
every judge call goes through a SQLite cache (`options.cache`), so a rerun after a crash or
`kill -9` skips ids already written and answers half-done queries from the cache: the judge
is never asked twice for the same sample. Lines with an `error` count as done too, unless
`retry_errors` is set: then they are removed from OUTPUT and those ids judged again.

Throughput: `concurrency` workers pull queries from one input iterator (no task per query),
the backend bounds requests in flight, and results are written and the progress bar updated
in small timed batches rather than per query.

`JudgeOptions` is the one definition of the options: `rewardkit judge` and `rewardkit eval`
generate their flags from its fields (see `rewardkit.cli._options`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rewardkit.backends.dialects import SERVER_KIND_HELP, ServerKind
from rewardkit.backends.transport import DEFAULT_MAX_RESPONSE_BYTES
from rewardkit.errors import ConfigError, InputError
from rewardkit.io import InputRow, RowKeys, iter_rows, row_id
from rewardkit.store.results import ResultWriter, check_output_path
from rewardkit.text import prompt_text

if TYPE_CHECKING:
    from rewardkit.backends.base import Backend
    from rewardkit.judges import JudgeConfig, JudgeQuery, PointwiseJudge
    from rewardkit.judges.meta_rm import MetaRM
    from rewardkit.store import JudgeCache

__all__ = [
    "BuiltJudge",
    "JudgeOptions",
    "JudgeSummary",
    "build_judge",
    "judge_file",
    "judge_file_async",
    "query_from_record",
]

_QUERY_KEYS = frozenset({"id", "prompt", "responses", "response", "reference"})
_FLUSH_SECONDS = 0.25  # results are written (and fsynced) this often...
_FLUSH_ROWS = 1024  # ...or as soon as this many are waiting


class JudgeOptions(BaseModel):
    """The validated options of one judge-file run (the CLI flags are generated from these)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Path = Field(
        description="queries: JSONL (or Parquet / datasets folder)",
        json_schema_extra={"positional": True},
    )
    output: Path = Field(
        description="results JSONL (appended; resumable)",
        json_schema_extra={"flags": ["-o", "--output"]},
    )
    backend: Literal["http", "transformers", "llama_cpp"] = Field(
        "http",
        description="http: an OpenAI-compatible server; transformers: --model is a local path; "
        "llama_cpp: --model is a GGUF path or packaged name",
    )
    base_url: tuple[str, ...] = Field(
        (),
        description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 "
        "(repeat to balance load)",
        json_schema_extra={"metavar": "URL"},
    )
    model: str = Field(
        description="model name (http), path (transformers) or GGUF (llama_cpp)",
        json_schema_extra={"cli_required": False},
    )
    samples: int = Field(
        1,
        ge=1,
        description="judgments sampled per query (votes)",
        json_schema_extra={"metavar": "K"},
    )
    concurrency: int = Field(
        64, ge=1, description="queries and requests in flight", json_schema_extra={"metavar": "C"}
    )
    timeout: float = Field(
        120.0, gt=0, description="seconds per request attempt", json_schema_extra={"metavar": "S"}
    )
    retries: int = Field(
        5,
        ge=0,
        description="retries per request on 429/5xx/timeouts",
        json_schema_extra={"metavar": "R"},
    )
    max_response_bytes: int = Field(
        DEFAULT_MAX_RESPONSE_BYTES,
        ge=1,
        description="largest response body accepted from the server (http backend); a "
        "larger one is an error on that query",
        json_schema_extra={"metavar": "N"},
    )
    meta_rm: str | None = Field(
        None,
        description="meta RM that picks the judgments to vote: a local model folder or an "
        "http(s) URL",
        json_schema_extra={"metavar": "PATH_OR_URL"},
    )
    keep: int | None = Field(
        None,
        ge=1,
        description="judgments the meta RM keeps to vote",
        json_schema_extra={"metavar": "K"},
    )
    mode: Literal["helpfulness", "harmlessness", "reference", "rubric"] = Field(
        "helpfulness", description="what the judge is asked to weigh"
    )
    principles: str | None = Field(
        None,
        description="principles or rubric (text; on the command line text or a file)",
        json_schema_extra={"metavar": "TEXT_OR_FILE"},
    )
    template: str | None = Field(
        None,
        description="judge template (text; on the command line a file)",
        json_schema_extra={"metavar": "FILE"},
    )
    temperature: float = Field(
        0.5, ge=0, description="judge sampling temperature", json_schema_extra={"metavar": "T"}
    )
    max_tokens: int = Field(
        1024, ge=1, description="judge output budget per sample", json_schema_extra={"metavar": "N"}
    )
    api_key: str | None = Field(None, description="API key (default: $OPENAI_API_KEY)")
    transport: Literal["auto", "aiohttp"] = Field(
        "auto",
        description="HTTP client (http backend): aiohttp either way; kept for old scripts "
        "(lean was removed)",
    )
    server_kind: ServerKind = Field("auto", description=SERVER_KIND_HELP)
    cache: Path | None = Field(
        None,
        description="SQLite cache of judge calls, None for none (command line: default "
        "OUTPUT.cache.sqlite, --no-cache for none)",
        json_schema_extra={"metavar": "PATH"},
    )
    progress: bool = Field(True, description="progress bar on stderr")
    retry_errors: bool = Field(
        False,
        description="judge again the ids whose output line has an error (e.g. the server was "
        "down); their lines are removed from OUTPUT first",
    )

    def judge_config(self) -> JudgeConfig:
        """The judge's own settings (sampling, voting, prompt) out of these options."""
        from rewardkit.judges import JudgeConfig

        return JudgeConfig(
            mode=self.mode,
            samples=self.samples,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            keep=self.keep,
            principles=self.principles,
            template=self.template,
        )

    def backend_options(self) -> dict[str, Any]:
        """Keyword arguments of `build_backend(self.backend, ...)`."""
        if self.backend != "http":
            return {"model": self.model}
        return {
            "base_url": list(self.base_url),
            "model": self.model,
            "concurrency": self.concurrency,
            "timeout": self.timeout,
            "max_retries": self.retries,
            "api_key": self.api_key,
            "transport": self.transport,
            "server_kind": self.server_kind,
            "max_response_bytes": self.max_response_bytes,
        }


# -- input records -----------------------------------------------------------------------


def query_from_record(record: dict[str, Any], line: int, *, id: str | None = None) -> JudgeQuery:
    """A `JudgeQuery` from an input record; raises `InputError` naming the line. Its id is
    `id` when given (the run's key for the row, see `io.RowKeys`), else the record's own."""
    from rewardkit.judges import JudgeQuery

    prompt = record.get("prompt")
    if prompt is None:
        raise InputError(f"line {line}: 'prompt' must be a string or chat messages, got missing")
    try:  # chat messages and content parts: the same text rule as `rewardkit score`
        prompt = prompt_text(prompt)
    except InputError as exc:
        raise InputError(f"line {line}: {exc}") from None
    if "responses" in record:
        responses = record["responses"]
        if not isinstance(responses, list) or not responses:
            raise InputError(f"line {line}: 'responses' must be a non-empty list of strings")
    elif "response" in record:
        responses = [record["response"]]
    else:
        raise InputError(f"line {line}: missing 'responses' (a list of strings) or 'response'")
    for position, response in enumerate(responses):
        if not isinstance(response, str):
            raise InputError(
                f"line {line}: response {position} must be a string, got {type(response).__name__}"
            )
    reference = record.get("reference")
    if reference is not None and not isinstance(reference, str):
        if isinstance(reference, bool) or not isinstance(reference, int | float):
            raise InputError(f"line {line}: 'reference' must be a string")
        reference = str(reference)
    return JudgeQuery(
        prompt=prompt,
        responses=tuple(responses),
        reference=reference,
        id=row_id(record, line) if id is None else id,
    )


# -- building ----------------------------------------------------------------------------


@dataclass
class BuiltJudge:
    """What one run builds from `JudgeOptions`, and closes at the end."""

    judge: PointwiseJudge
    #: The backend the judge calls (wrapped in the cache when there is one).
    backend: Backend
    cache: JudgeCache | None
    meta_rm: MetaRM | None

    async def aclose(self) -> None:
        try:
            await self.backend.aclose()
            aclose = getattr(self.meta_rm, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            if self.cache is not None:
                self.cache.close()


def build_judge(options: JudgeOptions) -> BuiltJudge:
    """Judge config and template first (cheap checks), then the models, then the cache."""
    from rewardkit.backends import build_backend
    from rewardkit.judges import PointwiseJudge, PromptBuilder

    config = options.judge_config()
    PromptBuilder.create(config.mode, template=config.template, principles=config.principles)
    meta_rm = _meta_rm(options.meta_rm) if options.meta_rm else None
    backend = build_backend(options.backend, **options.backend_options())
    cache = None
    if options.cache is not None:
        from rewardkit.store import CachedBackend, JudgeCache

        cache = JudgeCache(options.cache)
        backend = CachedBackend(backend, cache)
    return BuiltJudge(PointwiseJudge(backend, config, meta_rm=meta_rm), backend, cache, meta_rm)


def _meta_rm(where: str) -> MetaRM:
    from rewardkit.judges.meta_rm import build_meta_rm

    if not where.startswith(("http://", "https://")) and not Path(where).exists():
        raise ConfigError(f"--meta-rm {where}: no such model folder (or give an http(s) URL)")
    meta_rm = build_meta_rm(where)
    assert meta_rm is not None
    return meta_rm


# -- the run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeSummary:
    """What a run did. Every query read produced one output line (or was already done)."""

    output: Path
    judged: int
    #: Judged queries whose output line holds an error (the judge failed on them).
    errors: int
    #: Input lines that could not be read as a query; each got an error line.
    bad_lines: int
    skipped: int
    duplicates: int
    #: Error lines removed from OUTPUT to be judged again (`retry_errors`).
    retried: int
    cache_hits: int | None
    cache_misses: int | None
    seconds: float

    @property
    def error_lines(self) -> int:
        """Lines this run wrote that hold an `error` (failed queries and bad input lines)."""
        return self.errors + self.bad_lines

    def describe(self) -> str:
        parts = [f"{self.judged} judged", f"{self.errors} with errors"]
        if self.bad_lines:
            parts.append(f"{self.bad_lines} bad input lines")
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        if self.retried:
            parts.append(f"{self.retried} error lines retried")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate ids skipped")
        if self.cache_hits is not None:
            parts.append(f"cache {self.cache_hits} hits / {self.cache_misses} misses")
        done = self.judged + self.bad_lines
        rate = done / self.seconds if self.seconds > 0 else 0.0
        return f"{', '.join(parts)} in {self.seconds:.1f}s ({rate:.0f} queries/s) -> {self.output}"


@dataclass
class _Tally:
    judged: int = 0
    errors: int = 0
    bad_lines: int = 0
    skipped: int = 0
    duplicates: int = 0
    out: list[dict[str, Any]] = field(default_factory=list)  # finished, not yet written
    finished: bool = False
    write_error: OSError | None = None


def judge_file(options: JudgeOptions) -> JudgeSummary:
    """Judge every query of `options.input` not yet in `options.output` (blocking)."""
    return asyncio.run(judge_file_async(options))


async def judge_file_async(options: JudgeOptions) -> JudgeSummary:
    """Judge every query of `options.input` not yet in `options.output`."""
    if not options.input.exists():
        raise InputError(f"input not found: {options.input}")
    check_output_path(options.output)  # before the cache next to it is created
    if options.cache is not None and options.cache.resolve() == options.output.resolve():
        raise ConfigError("--cache must not be the output file")
    parts = build_judge(options)
    cache = parts.cache
    try:
        writer = ResultWriter(options.output, retry_errors=options.retry_errors)
    except ConfigError:  # an output it cannot write (it names the path and why)
        await parts.aclose()
        raise
    started = time.perf_counter()
    tally = _Tally()
    bar = None
    try:
        keys = RowKeys.of(options.input)  # one pass for the ids, which also counts the rows
        bar = _progress_bar(options, writer, keys.rows)
        with _long_lived_objects_frozen():
            await _judge_rows(
                parts.judge,
                iter_rows(options.input),
                keys,
                writer,
                tally,
                options.concurrency,
                bar,
            )
    finally:
        if bar is not None:
            bar.close()
        writer.close()
        await parts.aclose()
    return JudgeSummary(
        output=options.output,
        judged=tally.judged,
        errors=tally.errors,
        bad_lines=tally.bad_lines,
        skipped=tally.skipped,
        duplicates=tally.duplicates,
        retried=writer.dropped,
        cache_hits=None if cache is None else cache.hits,
        cache_misses=None if cache is None else cache.misses,
        seconds=time.perf_counter() - started,
    )


@contextlib.contextmanager
def _long_lived_objects_frozen() -> Iterator[None]:
    """Keep the cyclic GC off the objects that live all run, and collect the young less often.

    Measured on 20,000 queries: the collector spent ~1.5 s (~10% of the client's CPU)
    walking the modules, sessions and judge built at start, again and again, over a loop
    whose per-query objects nearly all die young by reference counting. Frozen objects are
    handed back (and thresholds restored) at the end, so a long-lived caller's garbage is
    collected as before.
    """
    thresholds = gc.get_threshold()
    gc.collect()  # what is garbage already goes now, not into the frozen set
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 20_000), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _progress_bar(options: JudgeOptions, writer: ResultWriter, total: int | None) -> Any:
    if not options.progress:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=min(len(writer.done), total) if total else 0,
        unit="q",
        desc="judge",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
    )


async def _judge_rows(
    judge: PointwiseJudge,
    rows: Iterator[InputRow],
    keys: RowKeys,
    writer: ResultWriter,
    tally: _Tally,
    concurrency: int,
    bar: Any,
) -> None:
    def next_query() -> tuple[JudgeQuery, dict[str, Any]] | None:
        """The next query to judge; bad lines are answered on the spot."""
        for row in rows:
            # An id-less row's made-up key never equals an id of the input (RowKeys).
            rid, repeated = keys.assign(row)
            if rid in writer.done:
                tally.skipped += 1
                continue
            if repeated is not None:
                tally.duplicates += 1
                continue
            if row.error is not None or row.record is None:
                _bad_line(tally, rid, row.line, row.error or f"line {row.line}: unreadable")
                continue
            try:
                query = query_from_record(row.record, row.line, id=rid)
            except InputError as exc:
                _bad_line(tally, rid, row.line, str(exc), row.record)
                continue
            extra = {k: v for k, v in row.record.items() if k not in _QUERY_KEYS}
            return query, extra
        return None

    async def worker() -> None:
        while tally.write_error is None and (item := next_query()) is not None:
            query, extra = item
            result = await judge.judge(query)
            line = result.to_dict()
            line["id"] = query.id
            if extra:
                line = {**extra, **line}
            tally.judged += 1
            tally.errors += line.get("error") is not None
            tally.out.append(line)
            if len(tally.out) >= _FLUSH_ROWS:
                wake.set()

    async def flusher() -> None:
        """The only writer: every `_FLUSH_SECONDS` (or when woken), write what is waiting."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), _FLUSH_SECONDS)
            wake.clear()
            last = tally.finished
            if tally.out:
                batch, tally.out = tally.out, []
                try:
                    writer.append(batch)
                    # In a thread: the fsync must not stall the requests in flight.
                    await asyncio.to_thread(writer.sync)
                except OSError as exc:
                    tally.write_error = exc
                    return
                if bar is not None:
                    bar.update(len(batch))
                    bar.set_postfix_str(f"errors={tally.errors + tally.bad_lines}", refresh=False)
            if last:
                return

    wake = asyncio.Event()
    ticker = asyncio.create_task(flusher())
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        tally.finished = True
        wake.set()
        await ticker
    if tally.write_error is not None:
        raise ConfigError(f"cannot write {writer.path}: {tally.write_error}")


def _bad_line(
    tally: _Tally, rid: str, line: int, message: str, record: dict[str, Any] | None = None
) -> None:
    extra = {k: v for k, v in (record or {}).items() if k not in _QUERY_KEYS}
    tally.bad_lines += 1
    tally.out.append({**extra, "id": rid, "line": line, "rewards": None, "error": message})
