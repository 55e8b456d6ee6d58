"""The one loop-thread helper behind `JudgeReward.score_batch` and the trainer adapters."""

from __future__ import annotations

import asyncio
import threading

from rewardkit._loop import LoopThread, in_running_loop, shared_loop


async def _where() -> tuple[int, asyncio.AbstractEventLoop]:
    return threading.get_ident(), asyncio.get_running_loop()


def test_shared_loop_is_one_loop_on_another_thread() -> None:
    first, second = shared_loop(), shared_loop()
    assert first is second
    ident, loop = first.run(_where())
    assert ident != threading.get_ident() and loop is first.loop
    assert first.run(_where())[1] is loop  # sessions bound to it stay usable


def test_a_stopped_shared_loop_is_replaced() -> None:
    old = shared_loop()
    old.stop()
    assert not old.usable
    fresh = shared_loop()
    assert fresh is not old and fresh.run(_where())[1] is fresh.loop


async def test_run_works_from_inside_a_running_loop() -> None:
    assert in_running_loop()
    private = LoopThread("test")
    try:
        # A blocking call from a loop's thread into *another* loop does not deadlock.
        assert private.run(_where())[1] is private.loop
    finally:
        private.stop()
    assert not private.usable


def test_in_running_loop_outside_a_loop() -> None:
    assert not in_running_loop()
