"""Merge samples from concurrent requests into one scoring call, then split the results back.

A trainer's rollout workers each post a few samples at a time (OpenRLHF sends one query per
request); scoring each request on its own pays the per-call cost (thread hops, pool IPC)
once per request. `MicroBatcher` holds arriving requests for at most `window_s` (or until
`max_samples` are waiting), scores them with one call and hands every request its own
slice of the results, in order.

When nothing is being scored, a request is dispatched at once: waiting would only add
latency, since no other request is known to be coming. The window applies while a batch is
in flight, which is exactly when requests arrive together. At most `max_inflight` calls
run at once; while they are all busy, new requests keep gathering, so batches grow under
load instead of queueing one request per call. A request is never split: one larger than
`max_samples` is scored alone.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["MicroBatcher"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class _Pending(Generic[T, R]):
    items: Sequence[T]
    future: asyncio.Future[list[R]]


class MicroBatcher(Generic[T, R]):
    """Batches `submit(items)` calls into `score(all_items)` calls.

    `score` must return one result per item, in order. If it raises or returns the wrong
    number of results, `on_error(items, exc)` supplies the results instead (the server turns
    them into unscored samples), so one broken call never leaves a request hanging.
    """

    def __init__(
        self,
        score: Callable[[list[T]], Awaitable[list[R]]],
        on_error: Callable[[Sequence[T], BaseException], list[R]],
        *,
        max_samples: int = 512,
        window_s: float = 0.005,
        max_inflight: int = 4,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_samples < 1 or max_inflight < 1 or window_s < 0:
            raise ValueError("max_samples and max_inflight must be >= 1, window_s >= 0")
        self._score = score
        self._on_error = on_error
        self._on_batch = on_batch
        self.max_samples = max_samples
        self.window_s = window_s
        self._slots = asyncio.Semaphore(max_inflight)
        self._pending: deque[_Pending[T, R]] = deque()
        self._pending_count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting = 0  # dispatch tasks created but not yet holding a slot
        self._inflight = 0  # dispatch tasks holding a slot

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Score `items` together with whatever else arrives within the window."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[R]] = loop.create_future()
        self._pending.append(_Pending(items, future))
        self._pending_count += len(items)
        self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # Dispatch tasks already waiting for a slot will take what is pending; add one only
        # when they cannot take it all, so a burst does not spawn a task per request.
        needed = -(-self._pending_count // self.max_samples)
        idle = self._inflight == 0 and self._waiting == 0
        if self._pending_count >= self.max_samples or self.window_s == 0 or idle:
            if self._waiting < needed:
                self._dispatch_now(loop)
        elif self._timer is None and self._waiting == 0:
            self._timer = loop.call_later(self.window_s, self._dispatch_now, loop)

    def _dispatch_now(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting += 1
        task = loop.create_task(self._dispatch())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Pending[T, R]]:
        """Whole requests, oldest first, up to `max_samples` items (at least one request)."""
        taken: list[_Pending[T, R]] = []
        count = 0
        while self._pending:
            size = len(self._pending[0].items)
            if taken and count + size > self.max_samples:
                break
            taken.append(self._pending.popleft())
            count += size
        self._pending_count -= count
        return taken

    async def _dispatch(self) -> None:
        async with self._slots:
            self._waiting -= 1
            self._inflight += 1
            try:
                await self._dispatch_batch()
            finally:
                self._inflight -= 1

    async def _dispatch_batch(self) -> None:
        # Taken only once a slot is free: requests that arrived meanwhile join this batch.
        batch = [p for p in self._take() if not p.future.cancelled()]
        if self._pending:
            self._schedule(asyncio.get_running_loop())
        if not batch:
            return
        items = [item for p in batch for item in p.items]
        start = time.perf_counter()
        try:
            results = await self._score(items)
            if len(results) != len(items):
                raise RuntimeError(
                    f"scorer returned {len(results)} results for {len(items)} samples"
                )
        except Exception as exc:
            results = self._on_error(items, exc)
        if self._on_batch is not None:
            self._on_batch(len(items), time.perf_counter() - start)
        offset = 0
        for pending in batch:
            size = len(pending.items)
            if not pending.future.done():
                pending.future.set_result(results[offset : offset + size])
            offset += size

    async def aclose(self) -> None:
        """Wait for batches in flight; fail requests still waiting for a batch."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for pending in self._pending:
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("server is shutting down"))
        self._pending.clear()
        self._pending_count = 0
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
