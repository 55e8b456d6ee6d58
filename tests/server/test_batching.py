"""MicroBatcher on its own: merging, splitting back in order, bounds, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from rewardkit.server.batching import MicroBatcher


class Recorder:
    """A scoring function that doubles numbers and records each call's items."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None, short: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.active = 0
        self.max_active = 0
        self.delay, self.fail_on, self.short = delay, fail_on, short

    async def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(self.delay)
            if self.fail_on is not None and self.fail_on in items:
                raise RuntimeError("scorer broke")
            out = [2 * x for x in items]
            return out[:-1] if self.short else out
        finally:
            self.active -= 1


def fallback(items: Sequence[int], exc: BaseException) -> list[int]:
    return [-1] * len(items)


async def test_merges_concurrent_submits_and_splits_in_order() -> None:
    score = Recorder()
    batcher = MicroBatcher(score, fallback, window_s=0.05, max_samples=100)
    requests = [[i, i + 100] for i in range(10)]
    results = await asyncio.gather(*(batcher.submit(r) for r in requests))
    assert results == [[2 * a, 2 * b] for a, b in requests]
    assert len(score.calls) == 1
    assert score.calls[0] == [x for r in requests for x in r]  # arrival order kept


async def test_window_zero_scores_each_request_when_idle() -> None:
    score = Recorder()
    batcher = MicroBatcher(score, fallback, window_s=0.0)
    assert await batcher.submit([1]) == [2]
    assert await batcher.submit([2, 3]) == [4, 6]
    assert score.calls == [[1], [2, 3]]


async def test_max_samples_and_inflight_bounds() -> None:
    score = Recorder(delay=0.02)
    batcher = MicroBatcher(score, fallback, window_s=0.01, max_samples=5, max_inflight=2)
    requests = [[i] * 2 for i in range(12)]
    results = await asyncio.gather(*(batcher.submit(r) for r in requests))
    assert results == [[2 * i] * 2 for i in range(12)]
    assert all(len(c) <= 5 for c in score.calls)
    assert sum(len(c) for c in score.calls) == 24
    assert score.max_active <= 2


async def test_oversized_request_is_scored_alone_not_split() -> None:
    score = Recorder()
    batcher = MicroBatcher(score, fallback, window_s=0.01, max_samples=3)
    big, small = list(range(7)), [50]
    results = await asyncio.gather(batcher.submit(big), batcher.submit(small))
    assert results == [[2 * x for x in big], [100]]
    assert [len(c) for c in score.calls if 0 in c] == [7]


@pytest.mark.parametrize("broken", [Recorder(fail_on=3), Recorder(short=True)])
async def test_failed_or_short_batch_uses_fallback(broken: Recorder) -> None:
    batcher = MicroBatcher(broken, fallback, window_s=0.01)
    results = await asyncio.gather(batcher.submit([1, 2]), batcher.submit([3]))
    assert results == [[-1, -1], [-1]]


async def test_empty_submit_and_on_batch_hook() -> None:
    seen: list[int] = []
    batcher = MicroBatcher(Recorder(), fallback, window_s=0.0, on_batch=lambda n, s: seen.append(n))
    assert await batcher.submit([]) == []
    await batcher.submit([1, 2, 3])
    assert seen == [3]


async def test_aclose_finishes_inflight_and_fails_waiting() -> None:
    batcher = MicroBatcher(Recorder(delay=0.05), fallback, window_s=5.0)
    inflight = asyncio.ensure_future(batcher.submit([1]))  # idle: dispatched at once
    await asyncio.sleep(0.01)
    waiting = asyncio.ensure_future(batcher.submit([2]))  # busy: waits for the 5 s window
    await asyncio.sleep(0.01)
    await batcher.aclose()
    assert await inflight == [2]
    with pytest.raises(RuntimeError, match="shutting down"):
        await waiting


async def test_idle_request_does_not_wait_for_window() -> None:
    score = Recorder()
    batcher = MicroBatcher(score, fallback, window_s=5.0)
    start = asyncio.get_running_loop().time()
    assert await batcher.submit([4]) == [8]
    assert asyncio.get_running_loop().time() - start < 1.0


def test_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), fallback, max_samples=0)
