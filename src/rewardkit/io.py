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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rewardkit.errors import InputError, MissingDependencyError
from rewardkit.types import Sample

__all__ = [
    "InputRow",
    "ResultWriter",
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


def _jsonl_rows(path: Path) -> Iterator[InputRow]:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield InputRow(number, None, f"line {number}: invalid JSON ({exc.msg})")
                continue
            if not isinstance(record, dict):
                yield InputRow(number, None, f"line {number}: expected a JSON object, got {type(record).__name__}")
                continue
            yield InputRow(number, record)


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
    """A `Sample` from an input record; every other column is kept in `fields`."""
    prompt = record.get("prompt", "")
    response = record.get("response")
    if response is None:
        raise InputError(f"line {line}: missing field 'response'")
    if not isinstance(response, str):
        raise InputError(f"line {line}: 'response' must be a string, got {type(response).__name__}")
    if isinstance(prompt, list):  # chat messages: keep the last user turn as the prompt text
        prompt = _prompt_text(prompt)
    if not isinstance(prompt, str):
        raise InputError(f"line {line}: 'prompt' must be a string or chat messages")
    fields = {k: v for k, v in record.items() if k not in _SAMPLE_KEYS}
    return Sample(
        prompt=prompt,
        response=response,
        reference=record.get("reference"),
        id=row_id(record, line),
        fields=fields,
    )


def _prompt_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


class ResultWriter:
    """Append-only JSONL results keyed by `id`; reopening resumes where a run stopped."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done: set[str] = set()
        if self.path.exists():
            self._trim_partial_line()
            with self.path.open("r", encoding="utf-8") as handle:
                for line in handle:
                    try:
                        self.done.add(str(json.loads(line)["id"]))
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue
        self._handle: TextIO = self.path.open("a", encoding="utf-8")

    def _trim_partial_line(self) -> None:
        with self.path.open("rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)

    def write(self, results: Iterable[dict[str, Any]]) -> None:
        """Write results (each with an `id`) and flush them to disk."""
        for result in results:
            # default=str: a reward's details may hold a set or a Path; one odd value must
            # not stop a long run after hours of scoring.
            self._handle.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
            self.done.add(str(result["id"]))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
