"""A pool of persistent, killable worker processes with a hard per-call deadline.

Rule rewards run untrusted model output through parsers (SymPy, regexes, ANTLR) that can
stall for minutes on a power tower or a megabyte of digits. `signal.alarm` cannot bound
that off the main thread, and a thread cannot be killed, so the only hard deadline is a
process we may SIGKILL. `DeadlinePool` keeps N such processes warm:

    pool = DeadlinePool(workers=4, preload=("math_verify",))
    pool.run(fn, *args, timeout=1.0)             # value, or raises DeadlineExceeded
    pool.map(fn, items, timeout=1.0)             # list[Outcome], never raises per item

A call is pickled to an idle worker over a pipe. The worker first runs any `preload`
entries it has not run yet and unpickles the call (imports of `fn`'s module), then
acknowledges; only then does the deadline start, and the parent waits for the result with
`Connection.poll(timeout)`. On expiry the worker is SIGKILLed, the call raises
`DeadlineExceeded` at once, and a fresh worker takes the slot on next use. `map` sends a
chunk of items per message and streams back one result per item, so every item keeps its
own deadline; an item that times out or crashes its worker costs only itself, and the rest
of its chunk goes to a fresh worker.

Start methods (`benchmarks/bench_math.py` measures them):

- "forkserver" (default): rewardkit's own fork server (one per process, shared by all
  pools), a fresh single-threaded interpreter that imports and runs `preload` once, then
  forks every worker from that warm state. A replacement after a kill costs a fork
  (milliseconds), not a re-import and a re-warm (~1 s for Math-Verify's parser caches).
  Forking a single-threaded process is safe, and the server never re-imports the caller's
  `__main__`. `fn` must be importable (a module function or a picklable class instance),
  as for any process pool.
- "fork": workers forked straight from the caller. Fastest to start and sees `__main__`,
  but a caller with threads (servers, trainers) may be holding a lock at fork time, which
  can deadlock the child.
- "spawn": multiprocessing spawn; every worker is a fresh interpreter that imports and
  warms up on its own (seconds per replacement).

The pool is safe to call from many threads, closes at interpreter exit without leaving
zombies (killed workers are reaped; orphaned workers exit within a second), and pickles
as its configuration: an unpickled pool starts its own workers lazily in the new process.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import math
import multiprocessing
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, Literal, TypeVar, get_args

from rewardkit.errors import ConfigError, RewardkitError

__all__ = [
    "DeadlineExceeded",
    "DeadlinePool",
    "Outcome",
    "PoolClosed",
    "StartMethod",
    "WorkerCrashed",
    "shared_pool",
]

T = TypeVar("T")
StartMethod = Literal["forkserver", "fork", "spawn"]

# Single-byte control messages; results are pickles, whose first byte is b"\x80".
_READY = b"R"  # worker booted
_ACK = b"A"  # worker loaded a request; the deadline of its first item starts now
_PROTOCOL = pickle.HIGHEST_PROTOCOL
# Booting a worker or loading a request may import modules and warm caches (seconds):
# bounded, but never charged to a call's deadline.
_LOAD_TIMEOUT = 120.0


class DeadlineExceeded(RewardkitError, TimeoutError):
    """A call ran past its deadline; its worker was killed and will be replaced."""

    def __init__(self, message: str, timeout: float | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout


class WorkerCrashed(RewardkitError, RuntimeError):
    """A worker process died while running a call (segfault, OOM kill, os._exit)."""


class PoolClosed(RewardkitError, RuntimeError):
    """The pool was closed; build a new one or use `shared_pool()`."""


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """The result of one `map` item: a value, or the exception it raised or timed out with."""

    value: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def get(self) -> T:
        """The value, or raise the item's error."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


# ---------------------------------------------------------------------------- worker side


def _run_preload(entries: Sequence[str], done: set[str]) -> None:
    """Import each "module" / import and call each "module:function" once per process."""
    for entry in entries:
        if entry in done:
            continue
        module_name, _, function = entry.partition(":")
        module = importlib.import_module(module_name)
        if function:
            getattr(module, function)()
        done.add(entry)


def _exit_when_orphaned(parent: int) -> None:
    """A worker busy on a power tower never reads the pipe EOF; this thread notices the
    parent is gone and exits. (PR_SET_PDEATHSIG would fire when the parent's *thread*
    exits, which kills workers started from a short-lived server thread.)"""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _encode_error(exc: BaseException, status: bool | None = False) -> bytes:
    """Pickle `(status, exception)` with the worker's traceback attached as a note; fall
    back to a RuntimeError when the exception cannot make the trip. Status False: one item
    failed; None: the whole request failed to load (the parent fails every item of it)."""
    note = "in deadline worker pid {}:\n{}".format(
        os.getpid(), "".join(traceback.format_exception(exc)).rstrip()
    )
    with contextlib.suppress(Exception):
        exc.add_note(note)
        data = pickle.dumps((status, exc), _PROTOCOL)
        pickle.loads(data)  # an exception whose __init__ rejects its own args fails here
        return data
    return pickle.dumps((status, RuntimeError(f"{type(exc).__name__}: {exc}\n{note}")), _PROTOCOL)


def _worker_main(conn: Connection, preload: Sequence[str], done: set[str]) -> None:
    """Loop: receive `(preload, fn, kwargs, [args, ...])`, ack, send one result per args."""
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    # Ctrl-C goes to the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _run_preload(preload, done)
    conn.send_bytes(_READY)
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent closed the pipe or died
        try:
            entries, fn, kwargs, batch = pickle.loads(request)
            _run_preload(entries, done)
        except BaseException as exc:
            conn.send_bytes(_ACK)
            conn.send_bytes(_encode_error(exc, status=None))
            continue
        conn.send_bytes(_ACK)
        for args in batch:
            try:
                data = pickle.dumps((True, fn(*args, **kwargs)), _PROTOCOL)
            except BaseException as exc:
                data = _encode_error(exc)
            conn.send_bytes(data)


def _process_worker_main(conn: Connection, preload: Sequence[str]) -> None:
    """Entry point of a "fork" or "spawn" worker."""
    _worker_main(conn, preload, set())


def _fork_server_main(fd: int) -> None:
    """The pool's fork server: import and warm `preload`, then fork one worker per request.

    Request: a pickled preload tuple (entries added since the last fork are run first),
    then the worker's end of a socket pair passed as a file descriptor. Reply: the pid.
    """
    from multiprocessing.reduction import recv_handle

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps workers: no zombies
    conn = Connection(fd)
    done: set[str] = set()
    while True:
        try:
            entries = pickle.loads(conn.recv_bytes())
            child_fd = recv_handle(conn)
        except (EOFError, OSError):
            return  # the pool closed or its process died
        with contextlib.suppress(Exception):  # a failing entry is reported by the worker
            _run_preload(entries, done)
        pid = os.fork()
        if pid == 0:
            conn.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # fn may run subprocesses
            try:
                _worker_main(Connection(child_fd), entries, done)
            finally:
                os._exit(0)
        os.close(child_fd)
        conn.send_bytes(str(pid).encode())


# ---------------------------------------------------------------------------- parent side


class _Worker:
    """One worker process and the parent's end of its pipe."""

    conn: Connection
    ready: bool = False

    def wait_ready(self) -> None:
        """Block until the worker has booted (outside any call's deadline)."""
        if self.ready:
            return
        if not self.conn.poll(_LOAD_TIMEOUT):
            raise WorkerCrashed(f"deadline worker did not start within {_LOAD_TIMEOUT:g} s")
        try:
            message = self.conn.recv_bytes()
        except EOFError as exc:
            raise WorkerCrashed("a deadline worker died while starting (its error is on stderr)") from exc
        self.on_ready(message)

    def on_ready(self, message: bytes) -> None:
        if message != _READY:
            raise WorkerCrashed(f"worker sent {message[:20]!r} instead of its ready signal")
        self.ready = True

    @property
    def pid(self) -> int:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError


class _ProcessWorker(_Worker):
    """A "fork" or "spawn" worker: a multiprocessing child of this process."""

    def __init__(self, ctx: Any, preload: tuple[str, ...]) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_process_worker_main,
            args=(child, preload),
            name="rewardkit-deadline-worker",
            daemon=True,  # multiprocessing's exit hook reaps daemonic children too
        )
        self.process.start()
        child.close()

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def kill(self) -> None:
        """SIGKILL and reap: a killed worker never lingers as a zombie."""
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.join(5)
        with contextlib.suppress(Exception):
            self.conn.close()


class _ForkedWorker(_Worker):
    """A worker forked by the fork server (which reaps it)."""

    def __init__(self, conn: Connection, pid: int) -> None:
        self.conn, self._pid = conn, pid
        self.pidfd: int | None = None
        # A pidfd names this process and no other, even if the pid is reused after death.
        with contextlib.suppress(AttributeError, OSError):
            self.pidfd = os.pidfd_open(pid)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                os.kill(self._pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            if self.pidfd is not None:
                os.close(self.pidfd)
        self.pidfd = None
        with contextlib.suppress(Exception):
            self.conn.close()

    @property
    def pid(self) -> int:
        return self._pid


class _ForkServer:
    """The parent's handle on a fork server (see `_fork_server_main`)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        code = (
            f"import sys; sys.path[:] = {sys.path!r}; "
            f"from rewardkit.deadline import _fork_server_main; _fork_server_main({theirs.fileno()})"
        )
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL
            )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.lock = threading.Lock()
        self.pid_of_owner = os.getpid()  # a forked child must start its own

    def fork(self, preload: tuple[str, ...]) -> _ForkedWorker:
        from multiprocessing.reduction import send_handle

        ours, theirs = socket.socketpair()
        try:
            with self.lock:
                self.conn.send_bytes(pickle.dumps(preload, _PROTOCOL))
                send_handle(self.conn, theirs.fileno(), self.process.pid)
                # The first fork waits for the server to import and warm `preload`.
                if not self.conn.poll(_LOAD_TIMEOUT):
                    raise WorkerCrashed(f"fork server did not answer within {_LOAD_TIMEOUT:g} s")
                pid = int(self.conn.recv_bytes())
        except (EOFError, OSError, ValueError) as exc:
            ours.close()
            raise WorkerCrashed(f"the deadline pool's fork server failed ({type(exc).__name__})") from exc
        finally:
            theirs.close()
        return _ForkedWorker(Connection(ours.detach()), pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()  # the server exits on EOF
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_server: _ForkServer | None = None
_server_lock = threading.Lock()


def _fork_server() -> _ForkServer:
    """The process's fork server, shared by every "forkserver" pool: a second pool (the
    server's, a reward with its own `workers`) forks from an already warm template."""
    global _server
    with _server_lock:
        if _server is None or _server.pid_of_owner != os.getpid() or not _server.alive():
            _server = _ForkServer()
        return _server


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _fn_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


_POOLS: weakref.WeakSet[DeadlinePool] = weakref.WeakSet()


@atexit.register
def _close_all_pools() -> None:
    for pool in list(_POOLS):
        pool.close()
    with _server_lock:
        if _server is not None and _server.pid_of_owner == os.getpid():
            _server.close()


class DeadlinePool:
    """Persistent, killable worker processes; every call has a hard deadline.

    `workers`: number of processes (default: the CPUs this process may use); they start
    lazily, on first use. `start_method`: see the module docstring; None means
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
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ConfigError(f"workers must be a positive integer or None, got {workers!r}")
        if start_method not in get_args(StartMethod):
            raise ConfigError(
                f"start_method must be one of {', '.join(get_args(StartMethod))}, got {start_method!r}"
            )
        if start_method != "forkserver" and start_method not in multiprocessing.get_all_start_methods():
            raise ConfigError(f"start method {start_method!r} is not available on this platform")
        if start_method == "forkserver" and not hasattr(os, "fork"):
            raise ConfigError("start method 'forkserver' needs os.fork; use 'spawn' on this platform")
        self.workers = workers or _default_workers()
        self.start_method: StartMethod = start_method
        self.preload: tuple[str, ...] = tuple(dict.fromkeys(preload))
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []  # warm workers, used LIFO so hot ones stay hot
        self._empty = self.workers  # slots with no process yet (lazy start, or killed)
        self._live: set[_Worker] = set()  # every started worker, idle or busy, for close()
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

    def _new_worker(self) -> _Worker:
        """Start a process; it may still be booting. Runs outside the pool lock."""
        worker: _Worker
        if self.start_method == "forkserver":
            worker = _fork_server().fork(self.preload)
        else:
            worker = _ProcessWorker(multiprocessing.get_context(self.start_method), self.preload)
        with self._cond:
            closed = self._closed
            if not closed:
                self._live.add(worker)
        if closed:
            worker.kill()
            raise PoolClosed("the deadline pool was closed")
        return worker

    def _acquire(self) -> _Worker:
        """An idle worker (maybe still booting); waits for a free slot."""
        worker = self._try_acquire(block=True)
        assert worker is not None
        return worker

    def _try_acquire(self, block: bool) -> _Worker | None:
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

    def _release(self, worker: _Worker | None) -> None:
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

    def _discard(self, worker: _Worker) -> None:
        """Kill a worker (deadline, crash, protocol error); its slot stays with the caller."""
        worker.kill()
        with self._cond:
            self._live.discard(worker)

    def _request(self, fn: Callable[..., Any], kwargs: dict[str, Any], batch: list[tuple[Any, ...]]) -> bytes:
        return pickle.dumps((self.preload, fn, kwargs, batch), _PROTOCOL)

    # -- run --------------------------------------------------------------------------------

    def run(self, fn: Callable[..., T], /, *args: Any, timeout: float | None = 1.0, **kwargs: Any) -> T:
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
            raise _crashed(fn, exc, self._closed) from exc
        except BaseException:  # the caller's thread was interrupted mid-call
            self._discard(worker)
            self._release(None)
            raise
        if data is None:
            self._discard(worker)
            self._release(None)
            raise DeadlineExceeded(
                f"{_fn_name(fn)} ran past its {timeout:g} s deadline; its worker was killed",
                timeout,
            )
        self._release(worker)
        ok, value = pickle.loads(data)
        if not ok:
            raise value
        return value

    def _dispatch(self, fn: Callable[..., Any], request: bytes) -> _Worker:
        """Send a request to a worker and return the worker once it has acknowledged."""
        for attempt in (1, 2):
            worker = self._acquire()
            try:
                worker.wait_ready()
                worker.conn.send_bytes(request)
                _expect_ack(worker)
                return worker
            except (EOFError, OSError, WorkerCrashed) as exc:
                # The worker died before it began our call (killed while idle, OOM):
                # nothing of ours ran, so one retry on a fresh worker is safe.
                self._discard(worker)
                self._release(None)
                if attempt == 2 or self._closed:
                    raise _crashed(fn, exc, self._closed) from exc
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
        pending = deque(list(range(i, min(i + chunksize, len(items)))) for i in range(0, len(items), chunksize))
        _MapRun(self, fn, items, results, pending, timeout).drive()
        return [r if r is not None else Outcome(error=RuntimeError("item was not run")) for r in results]

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


class _MapRun:
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
        # conn -> [worker, chunk indices, position of the running item, deadline or None]
        self.busy: dict[Connection, list[Any]] = {}
        self.booting: dict[Connection, tuple[_Worker, float]] = {}
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
            for worker, *_ in self.busy.values():  # interrupted (KeyboardInterrupt): no leaks
                self.pool._discard(worker)
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

    def _start(self, worker: _Worker) -> None:
        if worker.ready:
            self._send(worker)
        else:
            self.booting[worker.conn] = (worker, time.monotonic() + _LOAD_TIMEOUT)

    def _send(self, worker: _Worker) -> None:
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
            self.busy[worker.conn] = [worker, chunk, -1, time.monotonic() + _LOAD_TIMEOUT]
            return
        self.pool._release(worker)

    def _step(self) -> None:
        now = time.monotonic()
        deadlines = [task[3] for task in self.busy.values() if task[3] is not None]
        deadlines += [d for _, d in self.booting.values()]
        wait_for = max(0.0, min(deadlines) - now) if deadlines else None
        for conn in self._readable(wait_for):
            if conn in self.booting:
                self._on_boot(conn)
            elif conn in self.busy:
                self._on_message(conn)
        now = time.monotonic()
        for conn, task in list(self.busy.items()):
            if task[3] is not None and now >= task[3] and not conn.poll(0):
                worker, chunk, pos = task[0], task[1], task[2]
                del self.busy[conn]
                if pos < 0:
                    error: BaseException = WorkerCrashed(
                        f"worker did not load the request within {_LOAD_TIMEOUT:g} s"
                    )
                else:
                    error = DeadlineExceeded(
                        f"{_fn_name(self.fn)} ran past its {self.timeout:g} s deadline; "
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
        worker, chunk = task[0], task[1]
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError) as exc:
            del self.busy[conn]
            if task[2] < 0:  # died before acking: nothing of ours ran
                self.pending.appendleft(chunk)
            else:
                self._fail_running(chunk, task[2], _crashed(self.fn, exc, self.pool.closed))
            self._replace(worker, exc)
            return
        if data == _ACK:
            task[2] = 0
        else:
            status, value = pickle.loads(data)
            if status is None:  # the request did not load: no item of it can run
                for index in chunk[task[2] :]:
                    self.results[index] = Outcome(error=value)
                task[2] = len(chunk)
            else:
                self.results[chunk[task[2]]] = Outcome(value=value) if status else Outcome(error=value)
                task[2] += 1
        # The next item's deadline starts now.
        task[3] = None if self.timeout is None else time.monotonic() + self.timeout
        if task[2] >= len(chunk):
            del self.busy[conn]
            self._send(worker)

    def _fail_running(self, chunk: list[int], pos: int, error: BaseException) -> None:
        """The item at `pos` failed with its worker; the rest of its chunk goes back in line,
        one item per request: bad inputs cluster (a batch of one prompt's completions), and
        as one chunk they would time out one after another on a single worker."""
        self.results[chunk[pos]] = Outcome(error=error)
        self.pending.extendleft([i] for i in reversed(chunk[pos + 1 :]))

    def _replace(self, worker: _Worker, exc: BaseException, restart: bool = True) -> None:
        """Kill a worker; start a fresh one in its slot if work remains."""
        self.pool._discard(worker)
        if not self.pending or not restart or self.pool.closed:
            self.pool._release(None)
            if self.pool.closed:
                self._fail_pending(PoolClosed("the deadline pool was closed"))
            elif not restart and self.pending and not (self.busy or self.booting):
                self._fail_pending(_crashed(self.fn, exc, False))
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


def _expect_ack(worker: _Worker) -> None:
    if not worker.conn.poll(_LOAD_TIMEOUT):
        raise WorkerCrashed(f"worker did not load the call within {_LOAD_TIMEOUT:g} s")
    message = worker.conn.recv_bytes()
    if message != _ACK:
        raise WorkerCrashed(f"worker sent {message[:20]!r} instead of an acknowledgement")


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ConfigError(f"timeout must be a positive number of seconds or None, got {timeout!r}")


def _crashed(fn: Callable[..., Any], exc: BaseException, closed: bool) -> RewardkitError:
    if closed:
        return PoolClosed("the deadline pool was closed while the call ran")
    return WorkerCrashed(f"the worker running {_fn_name(fn)} died ({type(exc).__name__})")


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
