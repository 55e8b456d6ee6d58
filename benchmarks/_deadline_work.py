"""The work bench_deadline.py sends to every pool, and the warm-up they all preload.

Importing this module is the warm-up: Math-Verify imported and its parser caches built
(rewardkit.rules.math's own `_warm_up`), so every pool under test preloads the same thing:
rewardkit's fork server, and multiprocessing's forkserver via `set_forkserver_preload`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import math_verify  # noqa: F401  (the preload itself)

from rewardkit.rules.math import _score_item, _warm_up

_warm_up()

HANG = "hang"


def score(item: tuple[str, str]) -> Any:
    """One math verification: an answer part against a reference."""
    return _score_item(item).value


def score_or_hang(item: tuple[str, str] | str) -> Any:
    """A hostile item hangs far past any deadline (the worker must be killed)."""
    if item == HANG:
        time.sleep(3600)
    return score(item)  # type: ignore[arg-type]


def pid(_: object = None) -> int:
    return os.getpid()


def seconds_per_item(items: list[tuple[str, str]]) -> float:
    """Score `items` in this (warm) worker: the work itself, with no pool around it."""
    start = time.perf_counter()
    for item in items:
        score(item)
    return (time.perf_counter() - start) / len(items)


_IMPORTED_BY = os.getpid()


def inherited(_: object = None) -> bool:
    """True in a worker that got this module (and its warm-up) from the process it was
    forked from, False in one that had to import it itself (a cold worker)."""
    return os.getpid() != _IMPORTED_BY
