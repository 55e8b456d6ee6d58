"""An append-only JSONL of sampled trajectories, keyed by (item id, sample index, hinted).

A rerun reads what is there and samples only what is missing; a half-written last line
left by a crash is cut off first. Every line carries its item's fingerprint, so resuming
into a folder made from other data is refused instead of mixing the two.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rewardkit.errors import ConfigError

__all__ = ["SampleStore", "TrajectoryKey", "write_jsonl_atomic"]

TrajectoryKey = tuple[str, int, bool]  # (item id, sample index, hinted)


class SampleStore:
    """Trajectory records on disk; `records` holds every one read or written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[TrajectoryKey, dict[str, Any]] = {}
        self.fingerprints: dict[str, str] = {}
        if path.exists():
            self._load()
        self._handle = path.open("a", encoding="utf-8")

    def _load(self) -> None:
        raw = self.path.read_bytes()
        keep = len(raw) if raw.endswith(b"\n") or not raw else raw.rfind(b"\n") + 1
        if keep != len(raw):  # a crash mid-write: drop the partial line
            with self.path.open("r+b") as handle:
                handle.truncate(keep)
        for number, line in enumerate(raw[:keep].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = (str(record["id"]), int(record["sample"]), bool(record["hinted"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f"{self.path}:{number}: not a trajectory line ({exc}); "
                    "choose another output folder"
                ) from None
            self.records[key] = record
            self.fingerprints.setdefault(key[0], record.get("item", ""))

    def check(self, item_id: str, fingerprint: str) -> None:
        """Refuse to resume an item whose content changed since it was sampled."""
        seen = self.fingerprints.get(item_id)
        if seen is not None and seen != fingerprint:
            raise ConfigError(
                f"{self.path} holds samples of a different item with id {item_id!r}; "
                "the data changed since that run: use a new output folder"
            )

    def __contains__(self, key: TrajectoryKey) -> bool:
        return key in self.records

    def add(self, record: dict[str, Any]) -> None:
        key = (str(record["id"]), int(record["sample"]), bool(record["hinted"]))
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.records[key] = record
        self.fingerprints.setdefault(key[0], record.get("item", ""))

    def close(self) -> None:
        self._handle.close()


def write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows to a temporary file and rename it over `path`: readers never see half."""
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count
