"""HTTPBackend end to end over real loopback connections (the fake OpenAI server).

The backend's own logic is tested on scripted responses in test_http.py; these few check
what only real sockets show: the wire format, keep-alive sessions per event loop,
refused and dropped connections, aiohttp's timeout, pickling to workers.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import threading
import time

import pytest

from rewardkit.backends.base import GenerateRequest
from rewardkit.backends.http import HTTPBackend
from rewardkit.backends.scripted import FAST_RETRIES as FAST
from rewardkit.errors import BackendConnectionError, BackendError, BackendTimeoutError
from rewardkit.testing.fake_openai import FakeOpenAI, Fault


def judge_request(n: int = 1, **kwargs: object) -> GenerateRequest:
    content = "Question: 1+1?\nResponse 1: 2\nResponse 2: 3"
    return GenerateRequest(messages=({"role": "user", "content": content},), n=n, **kwargs)  # type: ignore[arg-type]


def backend(server: FakeOpenAI, **kw: object) -> HTTPBackend:
    return HTTPBackend(server.base_url, model="judge", **{**FAST, **kw})  # type: ignore[arg-type]


async def test_fields_and_logprobs_over_the_wire(fake: FakeOpenAI) -> None:
    b = backend(fake)
    out = await b.generate(judge_request(n=2, temperature=0.7, seed=11, top_logprobs=3))
    await b.aclose()
    assert fake.requests == 1
    body = fake.bodies[0]
    assert body["model"] == "judge" and body["n"] == 2 and body["seed"] == 11
    assert body["logprobs"] is True and body["top_logprobs"] == 3
    for completion in out:
        assert "Scores: \\boxed{" in completion.text and completion.logprobs is not None
        assert "".join(t.token for t in completion.logprobs) == completion.text
        assert all(len(t.top) == 3 and t.token in t.top for t in completion.logprobs)


async def test_keep_alive_spreads_over_two_servers(fake: FakeOpenAI, fake2: FakeOpenAI) -> None:
    b = HTTPBackend([fake.base_url, fake2.base_url], **FAST)  # type: ignore[arg-type]
    await asyncio.gather(*(b.generate(judge_request()) for _ in range(10)))
    await b.aclose()
    assert (fake.requests, fake2.requests) == (5, 5)


async def test_refused_connection_raises_connection_error() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    b = HTTPBackend(f"http://127.0.0.1:{port}/v1", max_retries=1, **FAST)  # type: ignore[arg-type]
    with pytest.raises(BackendConnectionError, match="cannot reach"):
        await b.generate(judge_request())
    await b.aclose()
    assert b.attempts == 2


async def test_dropped_connections_retry_then_raise_connection_error(fake: FakeOpenAI) -> None:
    fake.always = Fault("disconnect")
    b = backend(fake, max_retries=2)
    with pytest.raises(BackendConnectionError):
        await b.generate(judge_request())
    await b.aclose()
    assert fake.requests == 3


async def test_hang_times_out_then_the_next_attempt_succeeds(fake: FakeOpenAI) -> None:
    fake.script(Fault.hang())
    b = backend(fake, timeout=0.2)
    start = time.monotonic()
    assert len(await b.generate(judge_request())) == 1
    await b.aclose()
    assert fake.requests == 2 and b.retries == 1
    assert 0.19 <= time.monotonic() - start < 5.0


async def test_hang_past_every_retry_raises_timeout(fake: FakeOpenAI) -> None:
    fake.always = Fault.hang()
    b = backend(fake, timeout=0.1, max_retries=1)
    with pytest.raises(BackendTimeoutError, match=r"0\.1 s"):
        await b.generate(judge_request())
    await b.aclose()
    assert fake.requests == 2


async def test_oversized_answer_over_the_wire_is_refused(fake: FakeOpenAI) -> None:
    fake.reply = "y" * 50_000
    b = backend(fake, max_response_bytes=10_000)
    with pytest.raises(BackendError, match="max_response_bytes=10000"):
        await b.generate(judge_request())
    await b.aclose()
    assert fake.requests == 1


async def test_pickle_drops_session_and_clone_works(fake: FakeOpenAI) -> None:
    b = backend(fake)
    await b.generate(judge_request())
    clone = pickle.loads(pickle.dumps(b))
    assert len(clone._states) == 0 and len(clone._transport._loops) == 0  # type: ignore[attr-defined]
    assert len(await clone.generate(judge_request(n=2))) == 2
    await b.aclose()
    await clone.aclose()
    assert fake.requests == 2


def test_one_session_per_event_loop() -> None:
    # Trainers call asyncio.run per batch: each new loop must get its own session.
    server = FakeOpenAI()
    with server.run_in_thread():
        b = HTTPBackend(server.base_url, **FAST)  # type: ignore[arg-type]

        async def twice() -> int:
            await b.generate(judge_request())
            first = b._transport._loop().session  # type: ignore[attr-defined]
            await b.generate(judge_request())
            same = b._transport._loop().session is first  # type: ignore[attr-defined]
            await b.aclose()
            return int(same and first.closed)

        assert asyncio.run(twice()) == 1
        assert asyncio.run(twice()) == 1
        results: list[int] = []
        thread = threading.Thread(target=lambda: results.append(asyncio.run(twice())))
        thread.start()
        thread.join()
        assert results == [1]
    assert server.requests == 6


async def test_concurrency_bound_is_honoured_on_the_wire() -> None:
    async with FakeOpenAI(delay=0.05) as server:
        b = backend(server, concurrency=4)
        await asyncio.gather(*(b.generate(judge_request()) for _ in range(16)))
        await b.aclose()
    assert server.requests == 16
    assert server.max_in_flight == 4
