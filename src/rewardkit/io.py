"""Reading input rows and writing crash-safe, resumable JSONL results.

Input: JSONL (one object per line), Parquet, or a Hugging Face `datasets` folder saved with
`save_to_disk`. Each row becomes a numbered `InputRow`; a malformed line is an `InputRow`
with an error, so callers report it and go on.

Output: `ResultWriter` appends one JSON line per id and flushes as it goes. Reopening the
same file skips ids already written, and trims a half-written last line left by a crash.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from rewardkit.errors import ConfigError, InputError, MissingDependencyError
from rewardkit.text import completion_text, prompt_text
from rewardkit.types import Sample

try:  # orjson when installed: several times faster on result lines and input rows
    import orjson

    _orjson_loads: Callable[[bytes | str], Any] | None = orjson.loads
    _orjson_dumps: Callable[..., bytes] | None = orjson.dumps
    # Dataclasses and dates go through `_default` (str), as they did with json.
    _ORJSON_OPTIONS = (
        orjson.OPT_NON_STR_KEYS
        | orjson.OPT_APPEND_NEWLINE
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
    )
except ImportError:  # pragma: no cover - depends on the environment
    _orjson_loads = _orjson_dumps = None
    _ORJSON_OPTIONS = 0

__all__ = [
    "InputRow",
    "ResultWriter",
    "check_output_path",
    "iter_rows",
    "row_id",
    "sample_from_record",
]


@dataclass(frozen=True, slots=True)
class InputRow:
    """One input row: its 1-based line (or row) number, the record, or why it is unreadable."""

    line: int
    record: dict[str, Any] | None
    error: str | None = None

    @property
    def id(self) -> str:
        return row_id(self.record, self.line)


def row_id(record: dict[str, Any] | None, line: int) -> str:
    """The row's `id` as a string, or its line number when it has none."""
    if record is not None and record.get("id") is not None:
        return str(record["id"])
    return str(line)


def iter_rows(path: str | Path) -> Iterator[InputRow]:
    """Rows of a JSONL file, a Parquet file or a `datasets` folder."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        yield from _dataset_rows(path)
    elif path.suffix == ".parquet":
        yield from _parquet_rows(path)
    else:
        yield from _jsonl_rows(path)


#: Maybe an integer outside [-2**63, 2**64) (20 digits, or "-" and 19), which orjson turns
#: into a float: two distinct ids would then collide. Such a line goes to the stdlib, which
#: keeps integers exact (a false alarm, e.g. digits in a string, only costs speed).
_BIG_INT = re.compile(rb"\d{20}|-\d{19}")


def _jsonl_rows(path: Path) -> Iterator[InputRow]:
    if _orjson_loads is None or _has_lone_cr(path):
        yield from _jsonl_text_rows(path)
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                if _BIG_INT.search(raw):
                    raise ValueError("may hold an integer orjson cannot keep exact")
                record = _orjson_loads(raw)
            except ValueError:
                # Blank, not JSON, or not UTF-8: the stdlib decides, with its messages.
                row = _row_from_text(number, raw.decode("utf-8", errors="replace"))
                if row is not None:
                    yield row
                continue
            yield _row_from_record(number, record)


def _has_lone_cr(path: Path) -> bool:
    """A bare carriage return ends a line in text mode but not in bytes mode."""
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            if b"\r" in block.replace(b"\r\n", b""):
                return True
    return False


def _jsonl_text_rows(path: Path) -> Iterator[InputRow]:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            row = _row_from_text(number, line)
            if row is not None:
                yield row


def _row_from_text(number: int, line: str) -> InputRow | None:
    """One JSONL line parsed by the stdlib (for its error messages); None when blank."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return InputRow(number, None, f"line {number}: invalid JSON ({exc.msg})")
    return _row_from_record(number, record)


def _row_from_record(number: int, record: Any) -> InputRow:
    if not isinstance(record, dict):
        return InputRow(number, None, f"line {number}: expected a JSON object, got {type(record).__name__}")
    return InputRow(number, record)


def _parquet_rows(path: Path) -> Iterator[InputRow]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("pyarrow", "data", "Parquet input") from exc
    table = pq.read_table(path)
    for number, record in enumerate(table.to_pylist(), start=1):
        yield InputRow(number, record)


def _dataset_rows(path: Path) -> Iterator[InputRow]:
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError("datasets", "data", "Hugging Face dataset folders") from exc
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1:
            raise InputError(f"{path} holds splits {list(loaded)}; point at one split's folder")
        loaded = next(iter(loaded.values()))
    for number, record in enumerate(loaded, start=1):
        yield InputRow(number, dict(record))


_SAMPLE_KEYS = ("id", "prompt", "response", "reference")


def sample_from_record(record: dict[str, Any], line: int) -> Sample:
    """A `Sample` from an input record; every other column is kept in `fields`.

    The prompt and response become text by `rewardkit.text`'s rules (chat messages,
    multimodal content parts), the same rules every trainer adapter and endpoint uses.
    """
    response = record.get("response")
    if response is None:
        raise InputError(f"line {line}: missing field 'response'")
    try:
        prompt = prompt_text(record.get("prompt"))
        response = completion_text(response)
    except InputError as exc:
        raise InputError(f"line {line}: {exc}") from None
    fields = {k: v for k, v in record.items() if k not in _SAMPLE_KEYS}
    return Sample(
        prompt=prompt,
        response=response,
        reference=record.get("reference"),
        id=row_id(record, line),
        fields=fields,
    )


def check_output_path(path: Path) -> None:
    """Raise `ConfigError` when `path` cannot be a results file: a directory, or under a file."""
    if path.is_dir():
        raise ConfigError(f"output {path} is a directory; give a file path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"output {path} is under {parent}, which is a file, not a directory")
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
                record = _load_line(line)
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
        lines = []
        for result in results:
            lines.append(_dump_line(result))
            self.done.add(str(result["id"]))
        self._handle.write(b"".join(lines))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _load_line(line: bytes) -> Any:
    try:
        if _orjson_loads is None or _BIG_INT.search(line):
            return json.loads(line)
        return _orjson_loads(line)
    except ValueError:
        try:
            return json.loads(line)  # NaN, huge integers, invalid UTF-8: json decides
        except ValueError:
            return None


def _record_id(record: Any) -> str | None:
    if isinstance(record, dict) and "id" in record:
        return str(record["id"])
    return None


def _line_id(line: bytes) -> str | None:
    return _record_id(_load_line(line))


def _dump_line(result: dict[str, Any]) -> bytes:
    # Odd values become strings, as json's default=str would: a reward's details may hold a
    # set or a Path, and one odd value must not stop a long run after hours of scoring.
    # orjson writes NaN and infinities as null (valid JSON); json, the fallback, writes NaN.
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(result, default=_default, option=_ORJSON_OPTIONS)
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
