"""Crash-safe, resumable JSONL results: one line per id, appended and flushed as it goes.

Reopening the same file skips ids already written, and trims a half-written last line left
by a crash; `retry_errors=True` rewrites it without its error lines so those ids run again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from rewardkit.errors import ConfigError
from rewardkit.io import load_json_line

# Dataclasses and dates go through `_default` (str), as they would with json's default=str.
_ORJSON_OPTIONS = (
    orjson.OPT_NON_STR_KEYS
    | orjson.OPT_APPEND_NEWLINE
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)

__all__ = ["ResultWriter", "check_output_path"]


def check_output_path(path: Path) -> None:
    """Raise `ConfigError` when `path` cannot be a results file: a directory, or under a file."""
    if path.is_dir():
        raise ConfigError(f"output {path} is a directory; give a file path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(
                    f"output {path} is under {parent}, which is a file, not a directory"
                )
            return


class ResultWriter:
    """Append-only JSONL results keyed by `id`; reopening resumes where a run stopped.

    `retry_errors=True`: lines whose `error` is set do not count as done. On open, the file
    is rewritten without them (atomically: a temporary file then `os.replace`), so the
    rerun judges those ids again and each id still appears once.
    """

    def __init__(self, path: str | Path, *, retry_errors: bool = False) -> None:
        self.path = Path(path)
        check_output_path(self.path)
        self.done: set[str] = set()
        #: Lines dropped on open because they held an error (retry_errors=True).
        self.dropped = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                self._trim_partial_line()
                if retry_errors:
                    self._drop_error_lines()
                else:
                    with self.path.open("rb") as handle:
                        for line in handle:
                            rid = _line_id(line)
                            if rid is not None:
                                self.done.add(rid)
            self._handle: BinaryIO = self.path.open("ab")
        except OSError as exc:
            raise ConfigError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def _trim_partial_line(self) -> None:
        with self.path.open("rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)

    def _drop_error_lines(self) -> None:
        kept: list[bytes] = []
        with self.path.open("rb") as handle:
            for line in handle:
                record = load_json_line(line)
                if isinstance(record, dict) and record.get("error") is not None:
                    self.dropped += 1
                    continue
                kept.append(line)
                rid = _record_id(record)
                if rid is not None:
                    self.done.add(rid)
        if not self.dropped:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as out:
                out.writelines(kept)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)

    def write(self, results: Iterable[dict[str, Any]]) -> None:
        """Write results (each with an `id`) and flush them to disk."""
        self.append(results)
        self.sync()

    def append(self, results: Iterable[dict[str, Any]]) -> None:
        """Write results (each with an `id`) to the file, not yet to disk (`sync` does).

        An event loop calls this itself and only `sync` in a thread: serialising on a worker
        thread made it trade the GIL with the loop for every batch, which cost the judge
        pipeline more CPU than the serialising (`benchmarks/bench_judge_parts.py`)."""
        lines = []
        for result in results:
            lines.append(_dump_line(result))
            self.done.add(str(result["id"]))
        self._handle.write(b"".join(lines))
        self._handle.flush()

    def sync(self) -> None:
        """Make everything appended so far durable (fsync; holds no GIL while it waits)."""
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _record_id(record: Any) -> str | None:
    if isinstance(record, dict) and "id" in record:
        return str(record["id"])
    return None


def _line_id(line: bytes) -> str | None:
    return _record_id(load_json_line(line))


def _dump_line(result: dict[str, Any]) -> bytes:
    # Odd values become strings, as json's default=str would: a reward's details may hold a
    # set or a Path, and one odd value must not stop a long run after hours of scoring.
    # orjson writes NaN and infinities as null (valid JSON); what it cannot write goes to
    # json below.
    try:
        return orjson.dumps(result, default=_default, option=_ORJSON_OPTIONS)
    except TypeError:  # e.g. a lone surrogate, an integer over 64 bits, a tuple key
        pass
    text = json.dumps(result, ensure_ascii=False, default=str) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escaped, it round-trips
        return (json.dumps(result, default=str) + "\n").encode("ascii")


def _default(value: Any) -> Any:
    if isinstance(value, float):  # float subclasses orjson leaves out, e.g. numpy.float64
        return float(value)
    return str(value)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (not possible on every platform; best effort there)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
