"""Reading input rows: JSONL, Parquet or a `datasets` folder, each row numbered.

Input: JSONL (one object per line), Parquet, or a Hugging Face `datasets` folder saved with
`save_to_disk`. Each row becomes a numbered `InputRow`; a malformed line is an `InputRow`
with an error, so callers report it and go on.

Results are written by `rewardkit.store.results.ResultWriter`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from rewardkit.errors import InputError, MissingDependencyError
from rewardkit.text import completion_text, prompt_text
from rewardkit.types import Sample

__all__ = [
    "InputRow",
    "RowKeys",
    "given_id",
    "iter_rows",
    "load_json_line",
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


def given_id(row: InputRow) -> str | None:
    """The id the row itself gives, as a string; None when it has none (or is unreadable)."""
    if row.record is None or row.record.get("id") is None:
        return None
    return str(row.record["id"])


class RowKeys:
    """The output key of every row: unique, deterministic, and a given id is kept as given.

    A row's key is its own id; a row without one (or unreadable) is keyed by its line
    number. Keys made up by rewardkit — `<id>@line<N>` for a repeated id, `@line<N>` for a
    line number that some row uses as its id — must never equal an id of the input, not
    even one further down: `given` holds every id of the input (one pass ahead of the
    work, `RowKeys.of(path)`), and a made-up key is lengthened with "~" until it is free.
    The same input gives the same keys on every run, which resuming relies on.
    """

    def __init__(self, given: set[str], rows: int | None = None) -> None:
        self.given = given
        #: How many rows the input has (unreadable ones included), when known: `of` counts
        #: them, so a progress bar gets its total without reading the input once more.
        self.rows = rows
        self.first_line: dict[str, int] = {}

    @classmethod
    def of(cls, path: str | Path) -> RowKeys:
        """Keys for the rows of `path` (reads it once for its ids: cheap next to the work)."""
        given: set[str] = set()
        rows = 0
        for row in iter_rows(path):
            rows += 1
            rid = given_id(row)
            if rid is not None:
                given.add(rid)
        return cls(given, rows)

    def _free(self, key: str) -> str:
        while key in self.given or key in self.first_line:
            key += "~"
        return key

    def assign(self, row: InputRow) -> tuple[str, str | None]:
        """The row's key, and the problem when it repeats an earlier row's id."""
        given = given_id(row)
        problem: str | None = None
        if given is None:
            key = str(row.line)
            if key in self.given or key in self.first_line:
                key = self._free(f"@line{row.line}")
        elif given in self.first_line:
            problem = (
                f"line {row.line}: duplicate id {given!r} (first on line {self.first_line[given]})"
            )
            key = self._free(f"{given}@line{row.line}")
        else:
            key = given
        self.first_line[key] = row.line
        return key, problem


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
#: keeps integers exact (a false alarm, e.g. digits in a string, only costs speed). The test
#: is "19 digits in a row", found by turning every digit into a 9 and looking for nineteen
#: of them: a C translate and a substring search, several times cheaper than a regex search
#: (it runs on every input line, twice when the input is read ahead for its ids).
_DIGITS_TO_NINES = bytes.maketrans(b"012345678", b"999999999")
_NINETEEN_DIGITS = b"9" * 19


def _may_hold_big_int(raw: bytes) -> bool:
    return _NINETEEN_DIGITS in raw.translate(_DIGITS_TO_NINES)


def _jsonl_rows(path: Path) -> Iterator[InputRow]:
    if _has_lone_cr(path):
        yield from _jsonl_text_rows(path)
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                if _may_hold_big_int(raw):
                    raise ValueError("may hold an integer orjson cannot keep exact")
                record = orjson.loads(raw)
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
        return InputRow(
            number, None, f"line {number}: expected a JSON object, got {type(record).__name__}"
        )
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


def sample_from_record(record: dict[str, Any], line: int, *, id: str | None = None) -> Sample:
    """A `Sample` from an input record; every other column is kept in `fields`. Its id is
    `id` when given (the run's key for the row, see `RowKeys`), else the record's own.

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
        id=row_id(record, line) if id is None else id,
        fields=fields,
    )


def load_json_line(line: bytes) -> Any:
    """One JSON line (orjson when it keeps the value exact, else the stdlib); None if invalid."""
    try:
        if _may_hold_big_int(line):
            return json.loads(line)
        return orjson.loads(line)
    except ValueError:
        try:
            return json.loads(line)  # NaN, huge integers, invalid UTF-8: json decides
        except ValueError:
            return None
