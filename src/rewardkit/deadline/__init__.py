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

Layout (the parent side reads top to bottom, the worker side is `_worker` alone):

    _errors      DeadlineExceeded, WorkerCrashed, PoolClosed and their messages
    _outcome     Outcome, one per `map` item
    _protocol    control bytes and the load bound shared by parent and worker
    _worker      the worker process: preload, then a loop of requests
    _handles     the parent's handles on worker processes (boot, ack, kill)
    _forkserver  the fork server, one per process, and the parent's handle on it
    _map         `map`'s engine: chunks over many workers, one deadline per item
    _pool        DeadlinePool (slots, `run`, lifecycle) and `shared_pool`
"""

from __future__ import annotations

from rewardkit.deadline._errors import DeadlineExceeded, PoolClosed, WorkerCrashed
from rewardkit.deadline._outcome import Outcome
from rewardkit.deadline._pool import DeadlinePool, StartMethod, shared_pool

__all__ = [
    "DeadlineExceeded",
    "DeadlinePool",
    "Outcome",
    "PoolClosed",
    "StartMethod",
    "WorkerCrashed",
    "shared_pool",
]

# Public names keep the module they had before the split: pickles (a pool, an error sent
# back from a worker) and tracebacks name them `rewardkit.deadline.<name>`, not a private
# submodule that may move again.
for _public in (DeadlineExceeded, DeadlinePool, Outcome, PoolClosed, WorkerCrashed, shared_pool):
    _public.__module__ = __name__
del _public
