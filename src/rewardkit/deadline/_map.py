"""`DeadlinePool.map`'s engine: chunks of items over many workers, one deadline per item."""

from __future__ import annotations

import math
import pickle
import select
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from rewardkit.deadline._errors import DeadlineExceeded, PoolClosed, WorkerCrashed, crashed, fn_name
from rewardkit.deadline._handles import Worker
from rewardkit.deadline._outcome import Outcome
from rewardkit.deadline._protocol import ACK, LOAD_TIMEOUT

if TYPE_CHECKING:
    from rewardkit.deadline._pool import DeadlinePool


@dataclass(slots=True)
class _Task:
    """A chunk on a busy worker."""

    worker: Worker
    #: Indices into `items` (and `results`), run in this order.
    chunk: list[int]
    #: Position in `chunk` of the running item; -1 until the worker acks the request.
    position: int
    #: When the running item (or the ack) is overdue; None: no deadline.
    deadline: float | None


class MapRun:
    """One `map` call: drives up to `pool.workers` workers from the calling thread with
    `multiprocessing.connection.wait`, tracking one deadline per busy worker."""

    def __init__(
        self,
        pool: DeadlinePool,
        fn: Callable[[Any], Any],
        items: list[Any],
        results: list[Any],
        pending: deque[list[int]],
        timeout: float | None,
    ) -> None:
        self.pool, self.fn, self.items, self.results = pool, fn, items, results
        self.pending, self.timeout = pending, timeout
        self.busy: dict[Connection, _Task] = {}
        self.booting: dict[Connection, tuple[Worker, float]] = {}
        # One poller for the whole run: `connection.wait` (and `Connection.poll`) build a
        # new selector per call, which was most of the parent's cost per streamed result.
        self.poller = select.poll() if hasattr(select, "poll") else None
        self.polled: set[int] = set()

    def drive(self) -> None:
        try:
            self._fill()
            while self.busy or self.booting:
                self._step()
                self._fill()
        finally:
            for task in self.busy.values():  # interrupted (KeyboardInterrupt): no leaks
                self.pool._discard(task.worker)
                self.pool._release(None)
            for worker, _ in self.booting.values():
                self.pool._discard(worker)
                self.pool._release(None)

    def _fill(self) -> None:
        """Take more workers while chunks wait; block for one only when we hold none."""
        while self.pending:
            holding = bool(self.busy or self.booting)
            try:
                worker = self.pool._try_acquire(block=not holding)
            except PoolClosed as exc:
                self._fail_pending(exc)
                return
            if worker is None:
                return
            self._start(worker)

    def _start(self, worker: Worker) -> None:
        if worker.ready:
            self._send(worker)
        else:
            self.booting[worker.conn] = (worker, time.monotonic() + LOAD_TIMEOUT)

    def _send(self, worker: Worker) -> None:
        """Give `worker` the next chunk, or the slot back to the pool when none is left."""
        while self.pending:
            chunk = self.pending.popleft()
            try:
                request = self.pool._request(self.fn, {}, [(self.items[i],) for i in chunk])
            except Exception as exc:
                if len(chunk) > 1:  # find the unpicklable item: resend the chunk one by one
                    self.pending.extendleft([i] for i in reversed(chunk))
                else:
                    self.results[chunk[0]] = Outcome(error=exc)
                continue
            try:
                worker.conn.send_bytes(request)
            except OSError as exc:  # died while idle: nothing of ours ran, requeue and replace
                self.pending.appendleft(chunk)
                self._replace(worker, exc)
                return
            self.busy[worker.conn] = _Task(worker, chunk, -1, time.monotonic() + LOAD_TIMEOUT)
            return
        self.pool._release(worker)

    def _step(self) -> None:
        now = time.monotonic()
        deadlines = [task.deadline for task in self.busy.values() if task.deadline is not None]
        deadlines += [d for _, d in self.booting.values()]
        wait_for = max(0.0, min(deadlines) - now) if deadlines else None
        for conn in self._readable(wait_for):
            if conn in self.booting:
                self._on_boot(conn)
            elif conn in self.busy:
                self._on_message(conn)
        now = time.monotonic()
        for conn, task in list(self.busy.items()):
            if task.deadline is not None and now >= task.deadline and not conn.poll(0):
                worker, chunk, pos = task.worker, task.chunk, task.position
                del self.busy[conn]
                if pos < 0:
                    error: BaseException = WorkerCrashed(
                        f"worker did not load the request within {LOAD_TIMEOUT:g} s"
                    )
                else:
                    error = DeadlineExceeded(
                        f"{fn_name(self.fn)} ran past its {self.timeout:g} s deadline; "
                        "its worker was killed",
                        self.timeout,
                    )
                self._fail_running(chunk, max(pos, 0), error)
                self._replace(worker, error)
        for conn, (worker, deadline) in list(self.booting.items()):
            if now >= deadline:
                del self.booting[conn]
                self._replace(worker, WorkerCrashed("worker did not start"), restart=False)

    def _readable(self, timeout: float | None) -> list[Connection]:
        """The watched connections with a message (or EOF) waiting, after up to `timeout` s."""
        conns = {conn.fileno(): conn for conn in (*self.busy, *self.booting)}
        if self.poller is None:
            return [c for c in wait(list(conns.values()), timeout) if isinstance(c, Connection)]
        for fd in self.polled - conns.keys():
            self.poller.unregister(fd)
        for fd in conns.keys() - self.polled:
            self.poller.register(fd, select.POLLIN)
        self.polled = set(conns)
        events = self.poller.poll(None if timeout is None else math.ceil(timeout * 1000))
        return [conns[fd] for fd, _ in events]

    def _on_boot(self, conn: Connection) -> None:
        worker, _ = self.booting.pop(conn)
        try:
            worker.on_ready(conn.recv_bytes())
        except (EOFError, OSError, WorkerCrashed) as exc:
            self._replace(worker, exc, restart=False)
            return
        self._send(worker)

    def _on_message(self, conn: Connection) -> None:
        """One message from a busy worker: its ack, or the result of its running item."""
        task = self.busy[conn]
        worker, chunk = task.worker, task.chunk
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError) as exc:
            del self.busy[conn]
            if task.position < 0:  # died before acking: nothing of ours ran
                self.pending.appendleft(chunk)
            else:
                self._fail_running(chunk, task.position, crashed(self.fn, exc, self.pool.closed))
            self._replace(worker, exc)
            return
        if data == ACK:
            task.position = 0
        else:
            status, value = pickle.loads(data)
            if status is None:  # the request did not load: no item of it can run
                for index in chunk[task.position :]:
                    self.results[index] = Outcome(error=value)
                task.position = len(chunk)
            else:
                outcome = Outcome(value=value) if status else Outcome(error=value)
                self.results[chunk[task.position]] = outcome
                task.position += 1
        # The next item's deadline starts now.
        task.deadline = None if self.timeout is None else time.monotonic() + self.timeout
        if task.position >= len(chunk):
            del self.busy[conn]
            self._send(worker)

    def _fail_running(self, chunk: list[int], pos: int, error: BaseException) -> None:
        """The item at `pos` failed with its worker; the rest of its chunk goes back in line,
        one item per request: bad inputs cluster (a batch of one prompt's completions), and
        as one chunk they would time out one after another on a single worker."""
        self.results[chunk[pos]] = Outcome(error=error)
        self.pending.extendleft([i] for i in reversed(chunk[pos + 1 :]))

    def _replace(self, worker: Worker, exc: BaseException, restart: bool = True) -> None:
        """Kill a worker; start a fresh one in its slot if work remains."""
        self.pool._discard(worker)
        if not self.pending or not restart or self.pool.closed:
            self.pool._release(None)
            if self.pool.closed:
                self._fail_pending(PoolClosed("the deadline pool was closed"))
            elif not restart and self.pending and not (self.busy or self.booting):
                self._fail_pending(crashed(self.fn, exc, False))
            return
        try:
            fresh = self.pool._new_worker()
        except PoolClosed as closed:
            self.pool._release(None)
            self._fail_pending(closed)
            return
        except BaseException:
            self.pool._release(None)
            raise
        self._start(fresh)

    def _fail_pending(self, error: BaseException) -> None:
        while self.pending:
            for i in self.pending.popleft():
                self.results[i] = Outcome(error=error)
