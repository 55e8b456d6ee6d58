"""`rewardkit judge`: score responses with an SPCT-style LLM judge, resumably.

    rewardkit judge in.jsonl -o out.jsonl --base-url http://127.0.0.1:8000/v1 --model qwen

Input lines are `{"id", "prompt", "responses": [...], "reference"?}` (or one `"response"`);
other fields are copied to the output line. Each finished query is appended to OUTPUT and
every judge call goes through a SQLite cache (OUTPUT + ".cache.sqlite" by default), so a
rerun after a crash or `kill -9` skips ids already written and answers half-done queries
from the cache: the judge is never asked twice for the same sample. Lines with an `error`
count as done too, unless `--retry-errors` is given: then they are removed from OUTPUT and
those ids judged again (samples already cached are not asked again).

Throughput: `--concurrency` workers pull queries from one input iterator (no task per
query), the backend bounds requests in flight, and results are written and the progress bar
updated in small timed batches rather than per query.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rewardkit.backends.dialects import SERVER_KIND_HELP, SERVER_KINDS, ServerKind
from rewardkit.errors import ConfigError, InputError
from rewardkit.io import InputRow, ResultWriter, iter_rows, row_id

if TYPE_CHECKING:
    from rewardkit.backends.base import Backend
    from rewardkit.judges import JudgeQuery, PointwiseJudge
    from rewardkit.store import JudgeCache

__all__ = ["JudgeOptions", "add_arguments", "query_from_record", "run"]

_QUERY_KEYS = frozenset({"id", "prompt", "responses", "response", "reference"})
_FLUSH_SECONDS = 0.25  # results are written (and fsynced) this often...
_FLUSH_ROWS = 1024  # ...or as soon as this many are waiting


class JudgeOptions(BaseModel):
    """The validated options of one `rewardkit judge` run (the CLI boundary)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Path = Field(description="JSONL, Parquet or datasets folder of queries")
    output: Path = Field(description="JSONL results, one line per input id")
    backend: Literal["http", "transformers", "llama_cpp"] = Field(
        "http", description="where judge text comes from"
    )
    base_url: tuple[str, ...] = Field((), description="OpenAI-compatible base URLs (http backend)")
    model: str = Field(description="served model name, transformers path or GGUF")
    samples: int = Field(1, ge=1, description="judgments sampled per query (votes)")
    concurrency: int = Field(64, ge=1, description="queries and requests in flight")
    timeout: float = Field(120.0, gt=0, description="seconds per request attempt")
    retries: int = Field(5, ge=0, description="retries per request on 429/5xx/timeouts")
    meta_rm: str | None = Field(None, description="meta reward model: local path or http(s) URL")
    keep: int | None = Field(None, ge=1, description="judgments kept by the meta RM to vote")
    mode: Literal["helpfulness", "harmlessness", "reference", "rubric"] = "helpfulness"
    principles: str | None = Field(None, description="principles or rubric text")
    template: str | None = Field(None, description="judge template text")
    temperature: float = Field(0.5, ge=0, description="judge sampling temperature")
    max_tokens: int = Field(1024, ge=1, description="judge output budget per sample")
    api_key: str | None = Field(None, description="API key (default: $OPENAI_API_KEY)")
    transport: Literal["auto", "aiohttp", "lean"] = Field(
        "auto", description="HTTP client: auto (lean for http://, aiohttp for https://), aiohttp or lean"
    )
    server_kind: ServerKind = Field("auto", description=SERVER_KIND_HELP)
    cache: Path | None = Field(None, description="SQLite cache path; None disables the cache")
    progress: bool = Field(True, description="tqdm progress bar on stderr")
    retry_errors: bool = Field(
        False, description="judge again the ids whose output line holds an error"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    def one_line_error(message: str) -> NoReturn:
        # argparse prints the whole usage block first; one line that says what to fix is kinder.
        parser.exit(2, f"rewardkit judge: error: {message} (see rewardkit judge --help)\n")

    parser.error = one_line_error  # type: ignore[method-assign]
    parser.add_argument("input", help="queries: JSONL (or Parquet / datasets folder)")
    parser.add_argument("-o", "--output", required=True, help="results JSONL (appended; resumable)")
    parser.add_argument(
        "--backend", choices=["http", "transformers", "llama_cpp"], default="http",
        help="http: an OpenAI-compatible server; transformers: --model is a local path; "
        "llama_cpp: --model is a GGUF path or packaged name",
    )
    parser.add_argument(
        "--base-url", action="append", default=[], metavar="URL",
        help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (repeat to balance load)",
    )
    parser.add_argument("--model", help="model name (http), path (transformers) or GGUF (llama_cpp)")
    parser.add_argument("--samples", type=int, default=1, metavar="K", help="judgments per query (default 1)")
    parser.add_argument("--concurrency", type=int, default=64, metavar="C", help="in flight (default 64)")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="S", help="seconds per attempt")
    parser.add_argument("--retries", type=int, default=5, metavar="R", help="retries per request (default 5)")
    parser.add_argument("--meta-rm", metavar="PATH_OR_URL", help="meta RM that picks the judgments to vote")
    parser.add_argument("--keep", type=int, metavar="K", help="judgments the meta RM keeps")
    parser.add_argument(
        "--mode", choices=["helpfulness", "harmlessness", "reference", "rubric"], default="helpfulness"
    )
    parser.add_argument("--principles", metavar="TEXT_OR_FILE", help="principles or rubric (text or a file)")
    parser.add_argument("--template", metavar="FILE", help="judge template file")
    parser.add_argument("--temperature", type=float, default=0.5, metavar="T")
    parser.add_argument("--max-tokens", type=int, default=1024, metavar="N")
    parser.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY)")
    parser.add_argument(
        "--transport", choices=["auto", "aiohttp", "lean"], default="auto",
        help="HTTP client (http backend): auto = the lean HTTP/1.1 client for http://, "
        "aiohttp for https:// (default); aiohttp or lean forces one",
    )
    parser.add_argument(
        "--server-kind", choices=SERVER_KINDS, default="auto", help=f"http backend: {SERVER_KIND_HELP}"
    )
    parser.add_argument("--cache", metavar="PATH", help="cache file (default OUTPUT.cache.sqlite)")
    parser.add_argument("--no-cache", action="store_true", help="do not cache judge calls")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--retry-errors", action="store_true",
        help="judge again the ids whose output line has an error (e.g. the server was down); "
        "their lines are removed from OUTPUT first",
    )


def options_from_args(args: argparse.Namespace) -> JudgeOptions:
    """Turn parsed arguments into `JudgeOptions`, with one-line errors for user mistakes."""
    if not args.model and args.backend == "llama_cpp":
        from rewardkit.backends.models import require_default_judge_model

        args.model = require_default_judge_model()  # the best packaged GGUF installed
    if not args.model:
        raise ConfigError("--model is required (the served model name, a local path or a GGUF)")
    if args.backend == "http" and not args.base_url:
        raise ConfigError("--base-url is required with --backend http (e.g. http://127.0.0.1:8000/v1)")
    if args.backend != "http" and args.base_url:
        raise ConfigError(f"--base-url applies to --backend http only, not {args.backend}")
    transport: Any = getattr(args, "transport", "auto")  # JudgeOptions validates it
    if args.backend != "http" and transport != "auto":
        raise ConfigError(f"--transport applies to --backend http only, not {args.backend}")
    server_kind: Any = getattr(args, "server_kind", "auto")
    if args.backend != "http" and server_kind != "auto":
        raise ConfigError(f"--server-kind applies to --backend http only, not {args.backend}")
    if args.keep is not None and not args.meta_rm:
        raise ConfigError("--keep needs --meta-rm (the model that ranks the judgments)")
    if args.no_cache and args.cache:
        raise ConfigError("--cache and --no-cache contradict each other; give one")
    output = Path(args.output)
    cache = None if args.no_cache else Path(args.cache or f"{output}.cache.sqlite")
    try:
        return JudgeOptions(
            input=Path(args.input),
            output=output,
            backend=args.backend,
            base_url=tuple(args.base_url),
            model=args.model,
            samples=args.samples,
            concurrency=args.concurrency,
            timeout=args.timeout,
            retries=args.retries,
            meta_rm=args.meta_rm,
            keep=args.keep,
            mode=args.mode,
            principles=_text_or_file(args.principles),
            template=_read_file(args.template, "--template") if args.template else None,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            api_key=args.api_key,
            transport=transport,
            server_kind=server_kind,
            cache=cache,
            progress=not args.no_progress,
            retry_errors=getattr(args, "retry_errors", False),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "option"
        raise ConfigError(f"{name}: {error['msg']}") from None


def _text_or_file(value: str | None) -> str | None:
    if value is None:
        return None
    path = Path(value)
    if len(value) < 4096 and "\n" not in value and path.is_file():
        return _read_file(value, "--principles")
    return value


def _read_file(value: str, option: str) -> str:
    try:
        return Path(value).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {value}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    return asyncio.run(judge_file(options))


# -- input records -----------------------------------------------------------------------


def query_from_record(record: dict[str, Any], line: int) -> JudgeQuery:
    """A `JudgeQuery` from an input record; raises `InputError` naming the line."""
    from rewardkit.judges import JudgeQuery

    prompt = record.get("prompt")
    if isinstance(prompt, list):
        prompt = _dialogue_text(prompt, line)
    if not isinstance(prompt, str):
        got = "missing" if prompt is None else f"a {type(prompt).__name__}"
        raise InputError(f"line {line}: 'prompt' must be a string or chat messages, got {got}")
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
        prompt=prompt, responses=tuple(responses), reference=reference, id=row_id(record, line)
    )


def _dialogue_text(messages: list[Any], line: int) -> str:
    """Chat messages as the judge sees them: one user turn as is, a dialogue with roles."""
    turns = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise InputError(f"line {line}: 'prompt' messages need string 'content'")
        turns.append((str(message.get("role", "user")), message["content"]))
    if len(turns) == 1:
        return turns[0][1]
    return "\n\n".join(f"{role.capitalize()}: {content}" for role, content in turns)


# -- the run -----------------------------------------------------------------------------


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


async def judge_file(options: JudgeOptions) -> int:
    """Judge every query of `options.input` not yet in `options.output`. Returns the exit code."""
    if not options.input.exists():
        raise InputError(f"input not found: {options.input}")
    if options.output.is_dir():
        raise ConfigError(f"-o {options.output} is a directory; give a file path")
    if options.cache is not None and options.cache.resolve() == options.output.resolve():
        raise ConfigError("--cache must not be the output file")
    parts = _build(options)
    cache = parts.cache
    try:
        writer = ResultWriter(options.output, retry_errors=options.retry_errors)
    except OSError as exc:
        await parts.aclose()
        raise ConfigError(f"cannot write {options.output}: {exc.strerror or exc}") from None
    started = time.perf_counter()
    tally = _Tally()
    bar = _progress_bar(options, writer)
    try:
        await _judge_rows(
            parts.judge, iter_rows(options.input), writer, tally, options.concurrency, bar
        )
    finally:
        if bar is not None:
            bar.close()
        writer.close()
        await parts.aclose()
    elapsed = time.perf_counter() - started
    done = tally.judged + tally.bad_lines
    summary = [f"{tally.judged} judged", f"{tally.errors} with errors"]
    if tally.bad_lines:
        summary.append(f"{tally.bad_lines} bad input lines")
    if tally.skipped:
        summary.append(f"{tally.skipped} already done")
    if writer.dropped:
        summary.append(f"{writer.dropped} error lines retried")
    if tally.duplicates:
        summary.append(f"{tally.duplicates} duplicate ids skipped")
    if cache is not None:
        summary.append(f"cache {cache.hits} hits / {cache.misses} misses")
    rate = done / elapsed if elapsed > 0 else 0.0
    print(
        f"rewardkit judge: {', '.join(summary)} in {elapsed:.1f}s ({rate:.0f} queries/s) -> {options.output}",
        file=sys.stderr,
    )
    return 1 if tally.errors or tally.bad_lines else 0


@dataclass
class _Parts:
    """What one run builds, and closes at the end."""

    judge: PointwiseJudge
    backend: Backend
    cache: JudgeCache | None
    meta_rm: Any

    async def aclose(self) -> None:
        try:
            await self.backend.aclose()
            if hasattr(self.meta_rm, "aclose"):
                await self.meta_rm.aclose()
        finally:
            if self.cache is not None:
                self.cache.close()


def _build(options: JudgeOptions) -> _Parts:
    """Judge config and template first (cheap checks), then the models, then the cache."""
    from rewardkit.backends import build_backend
    from rewardkit.judges import JudgeConfig, PointwiseJudge, PromptBuilder

    config = JudgeConfig(
        mode=options.mode,
        samples=options.samples,
        temperature=options.temperature,
        max_tokens=options.max_tokens,
        keep=options.keep,
        principles=options.principles,
        template=options.template,
    )
    PromptBuilder.create(config.mode, template=config.template, principles=config.principles)
    meta_rm = _meta_rm(options.meta_rm) if options.meta_rm else None
    backend: Backend
    if options.backend == "http":
        backend = build_backend(
            "http",
            base_url=list(options.base_url),
            model=options.model,
            concurrency=options.concurrency,
            timeout=options.timeout,
            max_retries=options.retries,
            api_key=options.api_key,
            transport=options.transport,
            server_kind=options.server_kind,
        )
    else:
        backend = build_backend(options.backend, model=options.model)
    cache = None
    if options.cache is not None:
        from rewardkit.store import CachedBackend, JudgeCache

        cache = JudgeCache(options.cache)
        backend = CachedBackend(backend, cache)
    return _Parts(PointwiseJudge(backend, config, meta_rm=meta_rm), backend, cache, meta_rm)


def _meta_rm(where: str) -> Any:
    from rewardkit.judges.meta_rm import RemoteMetaRM, TransformersMetaRM

    if where.startswith(("http://", "https://")):
        return RemoteMetaRM(where)
    if not Path(where).exists():
        raise ConfigError(f"--meta-rm {where}: no such model folder (or give an http(s) URL)")
    return TransformersMetaRM(where)


def _progress_bar(options: JudgeOptions, writer: ResultWriter) -> Any:
    if not options.progress:
        return None
    from tqdm import tqdm

    total = _count_lines(options.input)
    return tqdm(
        total=total,
        initial=min(len(writer.done), total) if total else 0,
        unit="q",
        desc="judge",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
    )


def _count_lines(path: Path) -> int | None:
    """Non-empty lines of a JSONL file (a cheap total for the bar); None for other inputs."""
    if path.is_dir() or path.suffix == ".parquet":
        return None
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            count += bool(line.strip())
    return count


async def _judge_rows(
    judge: PointwiseJudge,
    rows: Iterator[InputRow],
    writer: ResultWriter,
    tally: _Tally,
    concurrency: int,
    bar: Any,
) -> None:
    seen: set[str] = set()

    def next_query() -> tuple[JudgeQuery, dict[str, Any]] | None:
        """The next query to judge; bad lines are answered on the spot."""
        for row in rows:
            rid = row.id
            if rid in writer.done:
                tally.skipped += 1
                continue
            if rid in seen:
                tally.duplicates += 1
                continue
            seen.add(rid)
            if row.error is not None or row.record is None:
                _bad_line(tally, rid, row.line, row.error or f"line {row.line}: unreadable")
                continue
            try:
                query = query_from_record(row.record, row.line)
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
                    # In a thread: the fsync must not stall the requests in flight.
                    await asyncio.to_thread(writer.write, batch)
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
