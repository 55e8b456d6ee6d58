"""`DeadlinePool`: slots of warm workers, `run` with a hard deadline, lifecycle, `shared_pool`."""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import pickle
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar, get_args

from rewardkit._cpus import usable_cpus
from rewardkit.deadline._errors import DeadlineExceeded, PoolClosed, WorkerCrashed, crashed, fn_name
from rewardkit.deadline._forkserver import close_fork_server, fork_server
from rewardkit.deadline._handles import ProcessWorker, Worker, expect_ack
from rewardkit.deadline._map import MapRun
from rewardkit.deadline._outcome import Outcome
from rewardkit.deadline._protocol import PROTOCOL
from rewardkit.errors import ConfigError

T = TypeVar("T")
StartMethod = Literal["forkserver", "fork", "spawn"]


def _default_workers() -> int:
    return usable_cpus()


_POOLS: weakref.WeakSet[DeadlinePool] = weakref.WeakSet()


@atexit.register
def _close_all_pools() -> None:
    for pool in list(_POOLS):
        pool.close()
    close_fork_server()


class DeadlinePool:
    """Persistent, killable worker processes; every call has a hard deadline.

    `workers`: number of processes (default: the CPUs this process may use); they start
    lazily, on first use. `start_method`: see `rewardkit.deadline`'s docstring; None means
    "forkserver" where `os.fork` exists, else "spawn". `preload`: entries
    every worker runs before its first call, never charged to a deadline: "module" imports
    a module, "module:function" also calls `function()` (a warm-up). With "forkserver" they
    run once in the server and every worker inherits the result.
    """

    def __init__(
        self,
        workers: int | None = None,
        start_method: StartMethod | None = None,
        preload: Sequence[str] = (),
    ) -> None:
        self._requested = (workers, start_method)  # pickled: the new process resolves them
        if start_method is None:  # the fork server needs os.fork (not on Windows)
            start_method = "forkserver" if hasattr(os, "fork") else "spawn"
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
        ):
            raise ConfigError(f"workers must be a positive integer or None, got {workers!r}")
        if start_method not in get_args(StartMethod):
            raise ConfigError(
                f"start_method must be one of {', '.join(get_args(StartMethod))}, got {start_method!r}"
            )
        if (
            start_method != "forkserver"
            and start_method not in multiprocessing.get_all_start_methods()
        ):
            raise ConfigError(f"start method {start_method!r} is not available on this platform")
        if start_method == "forkserver" and not hasattr(os, "fork"):
            raise ConfigError(
                "start method 'forkserver' needs os.fork; use 'spawn' on this platform"
            )
        self.workers = workers or _default_workers()
        self.start_method: StartMethod = start_method
        self.preload: tuple[str, ...] = tuple(dict.fromkeys(preload))
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._idle: list[Worker] = []  # warm workers, used LIFO so hot ones stay hot
        self._empty = self.workers  # slots with no process yet (lazy start, or killed)
        self._live: set[Worker] = set()  # every started worker, idle or busy, for close()
        self._closed = False
        self._pid = os.getpid()

    def add_preload(self, entries: Sequence[str]) -> None:
        """Add preload entries; running workers pick them up before their next call."""
        with self._cond:
            self.preload = tuple(dict.fromkeys((*self.preload, *entries)))

    # -- pickling: configuration only, workers are per process ----------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (*self._requested, self.preload))

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._live)} started"
        return f"DeadlinePool(workers={self.workers}, start_method={self.start_method!r}, {state})"

    @property
    def closed(self) -> bool:
        return self._closed

    def worker_pids(self) -> list[int]:
        """Process ids of the workers started and alive now (for monitoring)."""
        with self._cond:
            workers = list(self._live)
        return sorted(w.pid for w in workers)

    # -- slots ------------------------------------------------------------------------------

    def _new_worker(self) -> Worker:
        """Start a process; it may still be booting. Runs outside the pool lock."""
        worker: Worker
        if self.start_method == "forkserver":
            worker = fork_server().fork(self.preload)
        else:
            worker = ProcessWorker(multiprocessing.get_context(self.start_method), self.preload)
        with self._cond:
            closed = self._closed
            if not closed:
                self._live.add(worker)
        if closed:
            worker.kill()
            raise PoolClosed("the deadline pool was closed")
        return worker

    def _acquire(self) -> Worker:
        """An idle worker (maybe still booting); waits for a free slot."""
        worker = self._try_acquire(block=True)
        assert worker is not None
        return worker

    def _try_acquire(self, block: bool) -> Worker | None:
        """An idle worker (maybe still booting), or None when `block` is False and none is free."""
        if os.getpid() != self._pid:
            # Inherited through fork (a DataLoader worker, a trainer rank): the workers
            # belong to the parent. Start over with this process's own.
            self._reset()
        with self._cond:
            while not self._idle and not self._empty and not self._closed:
                if not block:
                    return None
                self._cond.wait()
            if self._closed:
                raise PoolClosed("the deadline pool was closed")
            if self._idle:
                return self._idle.pop()
            self._empty -= 1
        try:
            return self._new_worker()
        except BaseException:
            self._release(None)
            raise

    def _release(self, worker: Worker | None) -> None:
        """Give a slot back: a healthy worker, or None for a slot whose worker was killed."""
        with self._cond:
            closed = self._closed
            if worker is None:
                self._empty += 1
            elif closed:
                self._live.discard(worker)
            else:
                self._idle.append(worker)
            self._cond.notify()
        if worker is not None and closed:
            worker.kill()

    def _discard(self, worker: Worker) -> None:
        """Kill a worker (deadline, crash, protocol error); its slot stays with the caller."""
        worker.kill()
        with self._cond:
            self._live.discard(worker)

    def _request(
        self, fn: Callable[..., Any], kwargs: dict[str, Any], batch: list[tuple[Any, ...]]
    ) -> bytes:
        return pickle.dumps((self.preload, fn, kwargs, batch), PROTOCOL)

    # -- run --------------------------------------------------------------------------------

    def run(
        self, fn: Callable[..., T], /, *args: Any, timeout: float | None = 1.0, **kwargs: Any
    ) -> T:
        """Call `fn(*args, **kwargs)` in a worker and return its value.

        Raises `DeadlineExceeded` when it runs longer than `timeout` seconds (None: no
        deadline), `WorkerCrashed` when the worker dies under it, `PoolClosed` after
        `close()`, and re-raises whatever `fn` raised (with the worker's traceback as a
        note). `fn` and its arguments must be picklable.
        """
        _check_timeout(timeout)
        worker = self._dispatch(fn, self._request(fn, kwargs, [args]))
        try:
            data = worker.conn.recv_bytes() if worker.conn.poll(timeout) else None
        except (EOFError, OSError) as exc:
            self._discard(worker)
            self._release(None)
            raise crashed(fn, exc, self._closed) from exc
        except BaseException:  # the caller's thread was interrupted mid-call
            self._discard(worker)
            self._release(None)
            raise
        if data is None:
            self._discard(worker)
            self._release(None)
            raise DeadlineExceeded(
                f"{fn_name(fn)} ran past its {timeout:g} s deadline; its worker was killed",
                timeout,
            )
        self._release(worker)
        ok, value = pickle.loads(data)
        if not ok:
            raise value
        return value

    def _dispatch(self, fn: Callable[..., Any], request: bytes) -> Worker:
        """Send a request to a worker and return the worker once it has acknowledged."""
        for attempt in (1, 2):
            worker = self._acquire()
            try:
                worker.wait_ready()
                worker.conn.send_bytes(request)
                expect_ack(worker)
                return worker
            except (EOFError, OSError, WorkerCrashed) as exc:
                # The worker died before it began our call (killed while idle, OOM):
                # nothing of ours ran, so one retry on a fresh worker is safe.
                self._discard(worker)
                self._release(None)
                if attempt == 2 or self._closed:
                    raise crashed(fn, exc, self._closed) from exc
            except BaseException:
                self._discard(worker)
                self._release(None)
                raise
        raise AssertionError("unreachable")

    # -- map --------------------------------------------------------------------------------

    def map(
        self,
        fn: Callable[[Any], T],
        items: Iterable[Any],
        *,
        timeout: float | None = 1.0,
        chunksize: int | None = None,
    ) -> list[Outcome[T]]:
        """`fn(item)` for every item, spread over the workers; one `Outcome` per item, in order.

        Never raises for an item: a deadline, a crash or an exception of `fn` becomes
        that item's `Outcome.error`. Items travel in chunks of `chunksize` (default: about
        four chunks per worker, at most 64 items) to keep the per-item IPC cost small;
        each item still has its own `timeout`.
        """
        _check_timeout(timeout)
        items = list(items)
        if not items:
            return []
        if chunksize is None:
            chunksize = max(1, min(64, len(items) // (4 * self.workers)))
        elif isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
            raise ConfigError(f"chunksize must be a positive integer, got {chunksize!r}")
        results: list[Outcome[T] | None] = [None] * len(items)
        pending = deque(
            list(range(i, min(i + chunksize, len(items)))) for i in range(0, len(items), chunksize)
        )
        MapRun(self, fn, items, results, pending, timeout).drive()
        return [
            r if r is not None else Outcome(error=RuntimeError("item was not run")) for r in results
        ]

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every worker and refuse new calls. Idempotent; also runs at exit."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            if os.getpid() != self._pid:
                return  # inherited through fork: the workers are the parent's to close
            workers = list(self._live)
            self._live.clear()
            self._idle.clear()
        for worker in workers:
            worker.kill()

    def __del__(self) -> None:
        # A pool dropped without close(): stop its workers now rather than at exit.
        with contextlib.suppress(Exception):
            self.close()

    def __enter__(self) -> DeadlinePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ConfigError(f"timeout must be a positive number of seconds or None, got {timeout!r}")


_shared: DeadlinePool | None = None
_shared_lock = threading.Lock()


def shared_pool(preload: Sequence[str] = ()) -> DeadlinePool:
    """The process-wide pool that rule rewards and the server share: one per process, all
    CPUs, "forkserver". `preload` entries are added to it (see `DeadlinePool`)."""
    global _shared
    with _shared_lock:
        pool = _shared
        if pool is None or pool.closed or pool._pid != os.getpid():
            pool = _shared = DeadlinePool(preload=preload)
        elif any(entry not in pool.preload for entry in preload):
            pool.add_preload(preload)
        return pool
