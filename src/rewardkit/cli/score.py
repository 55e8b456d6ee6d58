"""`rewardkit score INPUT -o OUTPUT (--reward NAME [--arg k=v ...] | --spec FILE)`.

Reads samples (JSONL, Parquet or a `datasets` folder), scores them in chunks through
`Scorer.score`, and appends one JSON line per input row to OUTPUT:

    {"id": "7", "reward": 1.0, "details": {"math": {"score": 1.0, "reason": "correct", ...}}}
    {"id": "8", "reward": null, "details": {...}, "reason": "math: no_answer"}
    {"id": "9", "line": 9, "reward": null, "details": {}, "error": "line 9: invalid JSON ..."}

Every input row gets exactly one line, keyed by a unique `id`:

* a scored or unscored sample: its own id (the line number when it has none);
* a malformed row: the line number as id, with `line` and `error`;
* a row whose id was already used by an earlier row: id `"<id>@line<N>"`, with `line`
  and `error` naming the first line — the earlier row wins and is the one scored.

Ids are kept exactly as given (integers past 64 bits too). A key rewardkit makes up (a
repeated id's `"<id>@line<N>"`, or `"@line<N>"` for a row without an id whose line number
another row has as its id) never equals an id of the input: the input's ids are read in a
first pass, and a taken key gets "~" appended until it is free.

Exit status (the same rule as `rewardkit judge`, see `rewardkit.cli._exit`): 0 when every
line this run wrote is clean (scored or unscored), 1 when some hold an `error`, 2 when the
run could not proceed.

Rerunning the same command resumes: ids already in OUTPUT are skipped, and a half-written
last line from a crash is trimmed first (`ResultWriter`). Rewards that need many cores
(math, code) bring their own worker pools; this loop only batches.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardkit.cli._exit import EXIT_STATUS_HELP, exit_status
from rewardkit.cli._spec_args import add_spec_arguments, spec_from_args
from rewardkit.errors import ConfigError, InputError
from rewardkit.io import InputRow, RowKeys, iter_rows, sample_from_record
from rewardkit.scoring import RewardReport, Scorer
from rewardkit.spec import RewardSpec
from rewardkit.store.results import ResultWriter, check_output_path
from rewardkit.types import Sample

DEFAULT_CHUNK_SIZE = 256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXIT_STATUS_HELP
    parser.add_argument(
        "input", metavar="INPUT", help="JSONL file, Parquet file or `datasets` folder"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTPUT",
        help="JSONL results (appended; rerun to resume)",
    )
    add_spec_arguments(parser)
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        metavar="N",
        help=f"samples scored per batch and flushed together (default {DEFAULT_CHUNK_SIZE})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--ray",
        action="store_true",
        help="score on Ray actors (the cluster in $RAY_ADDRESS, else a local one); same output",
    )


@dataclass
class _Counts:
    scored: int = 0
    unscored: int = 0
    errors: int = 0
    skipped: int = 0

    def summary(self, seconds: float, output: Path) -> str:
        return (
            f"rewardkit score: {self.scored} scored, {self.unscored} unscored, "
            f"{self.errors} errors, {self.skipped} already done; {seconds:.1f} s -> {output}"
        )


def _error_line(key: str, line: int, message: str) -> dict[str, Any]:
    return {"id": key, "line": line, "reward": None, "details": {}, "error": message}


def _report_line(sample_id: str, report: RewardReport) -> dict[str, Any]:
    out: dict[str, Any] = {"id": sample_id, "reward": report.reward, "details": report.details()}
    if report.reward is None:
        out["reason"] = report.reason
    return out


def _progress(total: int | None, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, unit="sample", file=sys.stderr, disable=not enabled, dynamic_ncols=True
    )


def _chunks(
    rows: Iterator[InputRow], keys: RowKeys, done: set[str], counts: _Counts, bar: Any, size: int
) -> Iterator[list[Sample | dict[str, Any]]]:
    """Rows still to do, in input order and in chunks: a `Sample`, or the error line of a bad row."""
    chunk: list[Sample | dict[str, Any]] = []
    for row in rows:
        key, repeated = keys.assign(row)
        problem = f"{repeated}; not scored" if repeated else row.error
        if key in done:
            counts.skipped += 1
            bar.update(1)
            continue
        item: Sample | dict[str, Any] | None = None
        if problem is None and row.record is not None:
            try:
                item = sample_from_record(row.record, row.line, id=key)
            except InputError as exc:
                problem = str(exc)
        if item is None:
            item = _error_line(key, row.line, problem or f"line {row.line}: unreadable row")
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def checked_args(args: argparse.Namespace) -> tuple[Path, Path, RewardSpec]:
    """INPUT, OUTPUT and the reward spec of a score run, checked (`score` and `score --ray`)."""
    input_path, output_path = Path(args.input), Path(args.output)
    if args.chunk_size < 1:
        raise ConfigError("--chunk-size must be at least 1")
    if not input_path.exists():
        raise InputError(f"input not found: {input_path}")
    if output_path.exists() and output_path.resolve() == input_path.resolve():
        raise ConfigError("OUTPUT is the INPUT file; choose another -o path")
    spec = spec_from_args(args)
    if spec is None:  # argparse requires --spec or --reward
        raise ConfigError("give --reward NAME or --spec FILE")
    return input_path, output_path, spec


def run(args: argparse.Namespace) -> int:
    if getattr(args, "ray", False):
        from rewardkit.integrations.ray import run_score

        return run_score(args)
    started = time.perf_counter()
    input_path, output_path, spec = checked_args(args)
    check_output_path(output_path)
    keys = RowKeys.of(input_path)
    rows = iter_rows(input_path)  # a generator: reading starts below
    counts = _Counts()
    # Build the rewards before touching OUTPUT, so a bad spec leaves no empty file behind.
    with Scorer(spec) as scorer, ResultWriter(output_path) as writer:
        show = not args.no_progress and sys.stderr.isatty()
        with _progress(keys.rows if show else None, show) as bar:
            for chunk in _chunks(rows, keys, writer.done, counts, bar, args.chunk_size):
                samples = [item for item in chunk if isinstance(item, Sample)]
                reports = iter(scorer.score(samples) if samples else [])
                lines = []
                for item in chunk:
                    if not isinstance(item, Sample):
                        lines.append(item)
                        counts.errors += 1
                        continue
                    report = next(reports)
                    lines.append(_report_line(str(item.id), report))
                    if report.scored:
                        counts.scored += 1
                    else:
                        counts.unscored += 1
                writer.write(lines)
                bar.update(len(chunk))
    print(counts.summary(time.perf_counter() - started, output_path), file=sys.stderr)
    return exit_status(counts.errors)
