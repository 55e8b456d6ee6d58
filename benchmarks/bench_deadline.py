"""rewardkit's DeadlinePool against pebble's ProcessPool and the stdlib, all warmed the same way.

    python benchmarks/bench_deadline.py            # 400 calls, 300-item hostile batch
    python benchmarks/bench_deadline.py --quick    # 100 calls, 60 items

Three pools of the same size, every one preloading the same module before its workers
exist (`_deadline_work`: Math-Verify imported and its parser caches built), so a worker that
replaces a killed one starts as warm as the first:

- rewardkit `DeadlinePool` (its own fork server, preload=("_deadline_work",));
- pebble `ProcessPool` on a multiprocessing "forkserver" context;
- `concurrent.futures.ProcessPoolExecutor` on the same context.
The two multiprocessing pools share `set_forkserver_preload(["__main__", "_deadline_work"])`
(with the module on PYTHONPATH: 3.11's forkserver ignores sys.path and skips a preload it
cannot import without a word, which left earlier comparisons against cold workers). An
executor cannot kill one call, so its deadline is the hand-written version: on a timeout,
SIGKILL the workers and build a new executor (calls in flight on it are retried).

Rows: one math verification per call, one call at a time (the per-call overhead over
scoring in process); the next call after a deadline killed a worker (the replacement's
cost: hanging call + next call - deadline); and a hostile batch, where every 10th item hangs past a 0.5 s deadline, driven by
one thread per worker calling the pool (rewardkit's own `map` too). Only ratios measured
side by side in one run mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = str(Path(__file__).resolve().parent)
sys.path.insert(0, HERE)
# multiprocessing's forkserver (3.11) ignores the parent's sys.path when it preloads, and an
# ImportError there is silent: the preload would be skipped and every worker start cold.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")]))

import _deadline_work as work  # noqa: E402  (after the path; importing it warms this process too)

from rewardkit.deadline import DeadlineExceeded, DeadlinePool  # noqa: E402

PRELOAD = "_deadline_work"
DEADLINE = 0.5


class Timeout(Exception):
    pass


class RewardkitPool:
    name = "rewardkit DeadlinePool"

    def __init__(self, workers: int) -> None:
        self.pool = DeadlinePool(workers, preload=(PRELOAD,))

    def call(self, fn: Callable[[Any], Any], item: Any, timeout: float) -> Any:
        try:
            return self.pool.run(fn, item, timeout=timeout)
        except DeadlineExceeded:
            raise Timeout from None

    def close(self) -> None:
        self.pool.close()


class PebblePool:
    name = "pebble ProcessPool"

    def __init__(self, workers: int) -> None:
        import pebble

        self.pool = pebble.ProcessPool(workers, context=multiprocessing.get_context("forkserver"))

    def call(self, fn: Callable[[Any], Any], item: Any, timeout: float) -> Any:
        future = self.pool.schedule(fn, args=(item,), timeout=timeout)
        try:
            return future.result()
        except cf.TimeoutError:
            raise Timeout from None

    def close(self) -> None:
        self.pool.stop()
        self.pool.join()


class ExecutorPool:
    name = "ProcessPoolExecutor"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.context = multiprocessing.get_context("forkserver")
        self.lock = threading.Lock()
        self.executor = self._new()

    def _new(self) -> cf.ProcessPoolExecutor:
        executor = cf.ProcessPoolExecutor(self.workers, mp_context=self.context)
        list(executor.map(work.pid, range(self.workers)))  # start the workers now
        return executor

    def call(self, fn: Callable[[Any], Any], item: Any, timeout: float) -> Any:
        while True:
            executor = self.executor
            try:
                return executor.submit(fn, item).result(timeout=timeout)
            except cf.process.BrokenProcessPool:
                continue  # another call's timeout killed this executor: retry on the new one
            except cf.TimeoutError:
                with self.lock:  # kill every worker (no way to kill just one), then rebuild
                    if self.executor is executor:
                        for process in list(executor._processes.values()):
                            os.kill(process.pid, signal.SIGKILL)
                        executor.shutdown(wait=True, cancel_futures=True)
                        self.executor = self._new()
                raise Timeout from None

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


POOLS = (RewardkitPool, PebblePool, ExecutorPool)


def items(n: int, offset: int = 0) -> list[tuple[str, str]]:
    out = []
    for i in range(offset, offset + n):
        answer = (
            f"The answer is \\boxed{{{i * 7 % 1000}}}"
            if i % 2
            else f"So $x = {i}/4$, i.e. \\boxed{{{i / 4}}}."
        )
        out.append((answer, str(i * 7 % 1000) if i % 2 else f"\\frac{{{i}}}{{4}}"))
    return out


def warm(pool: Any, workers: int) -> None:
    """Every worker started and past one real call; each must have inherited the warm-up."""
    if not pool.call(work.inherited, None, 60):
        raise SystemExit(f"{pool.name}: a worker imported the preload itself (started cold)")
    threads = [
        threading.Thread(
            target=lambda: [pool.call(work.score, ("\\boxed{1}", "1"), 60) for _ in range(3)]
        )
        for _ in range(workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def per_call(pool: Any, batch: list[tuple[str, str]]) -> float:
    start = time.perf_counter()
    for item in batch:
        pool.call(work.score, item, 60)
    return (time.perf_counter() - start) / len(batch)


def after_kill(pool: Any, repeats: int) -> float:
    """What a kill costs: a call that hangs past a 0.1 s deadline plus the next call, less the
    deadline (detection, kill and a warm replacement, wherever the pool spends them)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        try:
            pool.call(work.score_or_hang, work.HANG, 0.1)
            raise SystemExit("a hanging call returned")
        except Timeout:
            pass
        pool.call(work.score, ("\\boxed{18}", "18"), 60)
        times.append(time.perf_counter() - start - 0.1)
    return statistics.median(times)


def hostile(pool: Any, batch: list[Any], workers: int) -> tuple[float, int, int]:
    feed: Iterator[Any] = iter(batch)
    lock = threading.Lock()
    done = [0, 0]  # scored, timed out

    def driver() -> None:
        while True:
            with lock:
                item = next(feed, None)
            if item is None:
                return
            try:
                pool.call(work.score_or_hang, item, DEADLINE)
                outcome = 0
            except Timeout:
                outcome = 1
            with lock:
                done[outcome] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=driver) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, done[0], done[1]


def rewardkit_map(pool: RewardkitPool, batch: list[Any]) -> tuple[float, int, int]:
    start = time.perf_counter()
    outcomes = pool.pool.map(work.score_or_hang, batch, timeout=DEADLINE)
    elapsed = time.perf_counter() - start
    timed_out = sum(isinstance(o.error, DeadlineExceeded) for o in outcomes)
    return elapsed, len(outcomes) - timed_out, timed_out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls and a smaller batch")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    calls, size = (100, 60) if args.quick else (400, 300)
    workers = args.workers
    # "__main__" too: else every forkserver child re-runs this script's imports.
    multiprocessing.set_forkserver_preload(["__main__", PRELOAD])

    sequential = items(calls)
    # The work alone, in a worker forked from the same warm state as every pool's workers
    # (this process has scored other things and has math_verify's signal timeouts on).
    with DeadlinePool(1, preload=(PRELOAD,)) as probe:
        probe.run(work.seconds_per_item, items(calls, offset=calls), timeout=None)  # first calls
        in_process = probe.run(work.seconds_per_item, sequential, timeout=None)
    batch: list[Any] = [work.HANG if i % 10 == 9 else item for i, item in enumerate(items(size))]
    hangs = batch.count(work.HANG)

    rows: list[tuple[str, float, float, float, int, int]] = []
    extra: tuple[float, int, int] | None = None
    for cls in POOLS:
        print(f"running: {cls.name} ...", file=sys.stderr, flush=True)
        pool = cls(workers)
        try:
            warm(pool, workers)
            call_s = per_call(pool, sequential)
            kill_s = after_kill(pool, 5)
            seconds, scored, timed_out = hostile(pool, batch, workers)
            if isinstance(pool, RewardkitPool):
                extra = rewardkit_map(pool, batch)
        finally:
            pool.close()
        rows.append((cls.name, call_s, kill_s, seconds, scored, timed_out))

    print(
        f"\ndeadline pools: {workers} workers each, all preloading Math-Verify warm; "
        f"{os.cpu_count()} cores shared"
    )
    print(f"math verification alone, in a warm worker: {in_process * 1e3:.2f} ms per call")
    print(
        f"{'pool':<24} {'ms/call':>8} {'overhead ms':>12} {'vs rewardkit':>13}"
        f" {'after kill ms':>14} {'vs rewardkit':>13} {'hostile s':>10} {'vs rewardkit':>13} {'ok/timed out':>13}"
    )
    base = rows[0]
    for name, call_s, kill_s, seconds, scored, timed_out in rows:
        print(
            f"{name:<24} {call_s * 1e3:>8.2f} {(call_s - in_process) * 1e3:>12.2f}"
            f" {call_s / base[1]:>12.2f}x {kill_s * 1e3:>14.1f} {kill_s / base[2]:>12.2f}x"
            f" {seconds:>10.2f} {seconds / base[3]:>12.2f}x {scored:>6}/{timed_out:<6}"
        )
    if extra is not None:
        seconds, scored, timed_out = extra
        print(
            f"{'rewardkit map (1 call)':<24} {'':>8} {'':>12} {'':>13} {'':>14} {'':>13}"
            f" {seconds:>10.2f} {seconds / base[3]:>12.2f}x {scored:>6}/{timed_out:<6}"
        )
    print(
        f"hostile batch: {size} items, {hangs} hang past a {DEADLINE} s deadline "
        f"(expected {size - hangs} ok / {hangs} timed out); times are wall seconds, lower is better"
    )


if __name__ == "__main__":
    main()
