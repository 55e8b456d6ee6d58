"""DeadlinePool: hard deadlines, crash recovery, threads, pickling, clean shutdown.

Workers can only run importable callables, and test modules are not importable there
(pytest's importlib mode), so the calls below are stdlib functions: `time.sleep` is a
slow call, `os._exit` a crash, `operator.call(os.getpid)` names the worker.
"""

from __future__ import annotations

import functools
import operator
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from rewardkit.deadline import (
    DeadlineExceeded,
    DeadlinePool,
    Outcome,
    PoolClosed,
    WorkerCrashed,
    shared_pool,
)
from rewardkit.errors import ConfigError, RewardkitError

SLACK = 3.0  # generous: the CI box is shared, but a stalled call would take 30 s


@pytest.fixture(scope="module")
def pool() -> Iterator[DeadlinePool]:
    with DeadlinePool(workers=2) as p:
        yield p


def _pid(pool: DeadlinePool) -> int:
    return pool.run(operator.call, os.getpid)


def _gone(pid: int, within: float = 5.0) -> bool:
    """True once `pid` has exited and been reaped: not even a zombie is left."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False


def _zombie_children() -> list[int]:
    zombies = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            zombies.append(int(stat.parent.name))
    return zombies


# ---------------------------------------------------------------------------- run


@pytest.mark.parametrize(
    ("fn", "args", "kwargs", "expected"),
    [
        (operator.add, (2, 3), {}, 5),
        (int, ("ff",), {"base": 16}, 255),
        (sorted, ([3, 1, 2],), {"reverse": True}, [3, 2, 1]),
        (str.upper, ("abc",), {}, "ABC"),
    ],
)
def test_run_returns_the_value(pool: DeadlinePool, fn, args, kwargs, expected) -> None:
    assert pool.run(fn, *args, **kwargs) == expected


def test_run_executes_in_another_process(pool: DeadlinePool) -> None:
    assert _pid(pool) != os.getpid()


def test_exceptions_come_back_with_the_worker_traceback(pool: DeadlinePool) -> None:
    with pytest.raises(ZeroDivisionError) as info:
        pool.run(operator.truediv, 1, 0)
    assert any("in deadline worker pid" in note for note in info.value.__notes__)
    assert pool.run(operator.add, 1, 1) == 2


def test_an_unpicklable_result_is_an_error_not_a_hang(pool: DeadlinePool) -> None:
    with pytest.raises(TypeError):
        pool.run(threading.Lock)


def test_deadline_kills_the_call_and_the_pool_recovers() -> None:
    with DeadlinePool(workers=1) as pool:
        before = _pid(pool)
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded) as info:
            pool.run(time.sleep, 30, timeout=0.5)
        assert time.monotonic() - start < 0.5 + SLACK
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, RewardkitError)
        assert info.value.timeout == 0.5
        assert _gone(before), "the timed-out worker is still running"
        after = _pid(pool)
        assert after != before
        assert pool.run(operator.mul, 6, 7) == 42


def test_a_crashing_call_raises_and_the_next_call_works() -> None:
    with DeadlinePool(workers=1) as pool:
        with pytest.raises(WorkerCrashed):
            pool.run(os._exit, 3)
        assert pool.run(operator.add, 2, 2) == 4


def test_a_worker_killed_from_outside_is_replaced() -> None:
    with DeadlinePool(workers=1) as pool:
        victim = _pid(pool)
        os.kill(victim, signal.SIGKILL)
        assert _gone(victim)
        # Killed while idle: nothing of the next call had run, so it is retried, not lost.
        replacement = _pid(pool)
        assert replacement != victim
        assert pool.run(operator.add, 1, 2) == 3


def test_deadlines_work_from_many_threads_at_once(pool: DeadlinePool) -> None:
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            if i % 4 == 0:
                results[i] = pool.run(time.sleep, 30, timeout=0.3)
            else:
                results[i] = pool.run(operator.mul, i, 10, timeout=5)
        except DeadlineExceeded as exc:
            results[i] = exc

    start = time.monotonic()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # 3 timed-out calls share 2 workers: at most two deadlines in a row, plus replacements.
    assert time.monotonic() - start < 2 * 0.3 + 2 * SLACK
    for i in range(12):
        if i % 4 == 0:
            assert isinstance(results[i], DeadlineExceeded)
        else:
            assert results[i] == i * 10


# ---------------------------------------------------------------------------- map


def test_map_keeps_order_and_reports_errors_per_item(pool: DeadlinePool) -> None:
    outcomes = pool.map(abs, [-3, 2, "x", -1, None], timeout=5, chunksize=2)
    assert [o.ok for o in outcomes] == [True, True, False, True, False]
    assert [o.value for o in outcomes if o.ok] == [3, 2, 1]
    assert all(isinstance(o.error, TypeError) for o in outcomes if not o.ok)


def test_map_a_timeout_costs_only_its_item(pool: DeadlinePool) -> None:
    start = time.monotonic()
    outcomes = pool.map(time.sleep, [0, 30, 0, 0, 30, 0], timeout=0.5, chunksize=3)
    assert time.monotonic() - start < 2 * 0.5 + SLACK
    assert [type(o.error).__name__ if o.error else "ok" for o in outcomes] == [
        "ok",
        "DeadlineExceeded",
        "ok",
        "ok",
        "DeadlineExceeded",
        "ok",
    ]


def test_after_a_timeout_the_rest_of_its_chunk_is_shared_by_all_workers(pool: DeadlinePool) -> None:
    # Bad inputs cluster (one prompt's completions). After the first item of a chunk
    # times out, the rest must not run one by one on a single worker. Each item here
    # reports its worker's pid through a shell (workers may run subprocesses).
    slow = functools.partial(time.sleep, 30)
    worker_pid = functools.partial(subprocess.getoutput, "sleep 0.2; echo $PPID")
    outcomes = pool.map(operator.call, [slow] + [worker_pid] * 10, timeout=0.5, chunksize=11)
    assert isinstance(outcomes[0].error, DeadlineExceeded)
    assert len({o.get() for o in outcomes[1:]}) == 2


def test_map_a_crash_costs_only_its_item(pool: DeadlinePool) -> None:
    outcomes = pool.map(
        operator.call, [os.getpid, os.abort, os.getpid, os.getpid], timeout=5, chunksize=4
    )
    assert isinstance(outcomes[1].error, WorkerCrashed)
    assert all(o.ok and isinstance(o.value, int) for i, o in enumerate(outcomes) if i != 1)


def test_map_spreads_a_batch_over_all_workers(pool: DeadlinePool) -> None:
    pool.map(time.sleep, [0.2, 0.2], timeout=5, chunksize=1)  # both workers started
    outcomes = pool.map(operator.call, [os.getpid] * 1000, timeout=5)
    pids = {o.get() for o in outcomes}
    assert len(pids) == 2 and os.getpid() not in pids
    assert sorted(pids) == pool.worker_pids()


def test_map_isolates_an_unpicklable_item(pool: DeadlinePool) -> None:
    outcomes = pool.map(abs, [1, -2, lambda: 0, 4], timeout=5, chunksize=4)
    assert [o.value for o in outcomes] == [1, 2, None, 4]
    assert outcomes[2].error is not None


def test_a_call_the_worker_cannot_load_fails_every_item_at_once(pool: DeadlinePool) -> None:
    # A function of a module that exists only in this process: it pickles here, but the
    # worker cannot import it. Every item fails with that error, none waits for a deadline.
    module = types.ModuleType("rewardkit_test_parent_only")
    exec("def double(x):\n    return 2 * x\n", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        start = time.monotonic()
        outcomes = pool.map(module.double, range(6), timeout=5, chunksize=3)
        assert time.monotonic() - start < SLACK
        assert all(isinstance(o.error, ModuleNotFoundError) for o in outcomes)
        with pytest.raises(ModuleNotFoundError):
            pool.run(module.double, 1)
        assert pool.map(abs, [-1], timeout=5) == [Outcome(value=1)]
    finally:
        del sys.modules[module.__name__]


def test_map_of_nothing_is_empty(pool: DeadlinePool) -> None:
    assert pool.map(abs, [], timeout=1) == []


def test_outcome_get() -> None:
    assert Outcome(value=3).get() == 3
    with pytest.raises(KeyError):
        Outcome(error=KeyError("k")).get()


# ---------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "make",
    [
        lambda: DeadlinePool(workers=0),
        lambda: DeadlinePool(workers=True),
        lambda: DeadlinePool(start_method="thread"),  # type: ignore[arg-type]
        lambda: DeadlinePool(workers=1).run(abs, 1, timeout=0),
        lambda: DeadlinePool(workers=1).map(abs, [1], timeout=-1),
        lambda: DeadlinePool(workers=1).map(abs, [1], chunksize=0),
    ],
)
def test_bad_configuration_is_a_config_error(make) -> None:
    with pytest.raises(ConfigError):
        make()


def test_a_broken_preload_fails_loudly() -> None:
    with (
        DeadlinePool(workers=1, preload=("rewardkit_no_such_module",)) as pool,
        pytest.raises(WorkerCrashed),
    ):
        pool.run(abs, -1)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_other_start_methods_keep_deadlines_without_zombies(method) -> None:
    with DeadlinePool(workers=1, start_method=method) as pool:
        assert pool.run(operator.add, 1, 1) == 2
        with pytest.raises(DeadlineExceeded):
            pool.run(time.sleep, 30, timeout=0.3)
        assert pool.map(abs, [-1, -2], timeout=30) == [Outcome(value=1), Outcome(value=2)]
        assert _zombie_children() == []


# ---------------------------------------------------------------------------- lifecycle


def test_close_kills_workers_and_refuses_calls() -> None:
    pool = DeadlinePool(workers=2)
    pids = {o.get() for o in pool.map(operator.call, [os.getpid] * 8, timeout=5, chunksize=1)}
    pool.close()
    pool.close()  # idempotent
    assert all(_gone(pid) for pid in pids)
    with pytest.raises(PoolClosed):
        pool.run(abs, 1)
    assert all(isinstance(o.error, PoolClosed) for o in pool.map(abs, [1, 2]))


def test_a_pickled_pool_is_its_configuration_with_fresh_workers() -> None:
    with DeadlinePool(workers=1, start_method="forkserver", preload=("fractions",)) as pool:
        original = _pid(pool)
        copy = pickle.loads(pickle.dumps(pool))
        assert (copy.workers, copy.start_method, copy.preload) == (1, "forkserver", ("fractions",))
        try:
            assert _pid(copy) != original
        finally:
            copy.close()
        assert _pid(pool) == original  # closing the copy left the original alone


def test_shared_pool_is_one_per_process_and_rebuilt_after_close() -> None:
    first = shared_pool()
    assert shared_pool() is first
    assert shared_pool(preload=("fractions",)) is first and "fractions" in first.preload
    first.close()
    second = shared_pool()
    assert second is not first and not second.closed
