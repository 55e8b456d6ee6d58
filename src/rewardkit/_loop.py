"""One event loop on a daemon thread, for synchronous callers of async code.

A persistent loop (rather than `asyncio.run` per call) keeps a judge backend's HTTP
sessions alive between calls: they are bound to the loop that opened them. And it works
whether or not the calling thread already runs a loop of its own (a sync `score_batch`
called from inside a notebook's or a trainer's loop).

`LoopThread()` is a private loop (a `JudgeReward` owns one and stops it on close);
`shared_loop()` is the process's one loop for the trainer adapters, made again in a
forked child (a loop thread does not survive `fork`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["LoopThread", "in_running_loop", "shared_loop"]

T = TypeVar("T")


class LoopThread:
    """An event loop running forever on a daemon thread; `run` blocks for one coroutine."""

    def __init__(self, name: str = "rewardkit-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    @property
    def usable(self) -> bool:
        """False once stopped or closed, and in a forked child (the thread stayed behind)."""
        return os.getpid() == self.pid and not self.loop.is_closed() and self.thread.is_alive()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


_SHARED: LoopThread | None = None
_SHARED_LOCK = threading.Lock()


def shared_loop() -> LoopThread:
    """The process's one shared loop thread, started on first use (again after a fork)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or not _SHARED.usable:
            _SHARED = LoopThread("rewardkit-loop")
        return _SHARED


def in_running_loop() -> bool:
    """Whether the calling thread runs an event loop right now."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
