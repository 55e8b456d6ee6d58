"""The lean HTTP/1.1 transport against small scripted asyncio servers on 127.0.0.1.

Each server answers the n-th request it reads (counted over all connections) with the
n-th script step: raw bytes to write, then whether to close the connection. That covers
what real servers do that the fake OpenAI server does not: chunked bodies, bodies framed
by the connection closing, `Connection: close`, idle keep-alive connections closed under
the client, answers cut off half way, and headers that never come.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from rewardkit.backends._http1 import Http1Client, Http1Endpoint, Http1Error
from rewardkit.backends.base import GenerateRequest
from rewardkit.backends.factory import build_backend
from rewardkit.backends.http import HTTPBackend
from rewardkit.errors import BackendConnectionError, BackendTimeoutError, ConfigError

Step = Callable[[asyncio.StreamWriter], Awaitable[bool]]  # returns: keep the connection?

CHOICE = json.dumps(
    {"choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}]}
).encode()


def reply(raw: bytes, close: bool = False, pause: float = 0.0) -> Step:
    async def step(writer: asyncio.StreamWriter) -> bool:
        if pause:
            await asyncio.sleep(pause)
        writer.write(raw)
        await writer.drain()
        return not close

    return step


def ok(body: bytes = CHOICE, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class Server:
    def __init__(self, script: list[Step]) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                step = self.script[len(self.requests) - 1]
                if not await step(writer):
                    return
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"


@asynccontextmanager
async def serve(*script: Step) -> AsyncIterator[Server]:
    server = Server(list(script))
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


def endpoint(server: Server) -> Http1Endpoint:
    return Http1Endpoint.parse(server.url, {"Content-Type": "application/json"})


async def test_keep_alive_reuses_one_connection_and_sends_content_length() -> None:
    async with serve(*[reply(ok())] * 3) as server:
        client = Http1Client(limit=4, timeout=5)
        for _ in range(3):
            assert await client.post(endpoint(server), b'{"a":1}') == (200, CHOICE, None)
        await client.close()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in first
    assert b"Content-Length: 7\r\n\r\n" in first and first.endswith(b'{"a":1}')


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            id="chunked",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"b\r\nhello world\r\n0\r\nX-Trailer: 1\r\n\r\n",
            id="chunked-with-trailer",
        ),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
            id="interim-100-first",
        ),
    ],
)
async def test_framed_bodies_and_the_connection_is_reused(raw: bytes) -> None:
    async with serve(reply(raw), reply(ok())) as server:
        client = Http1Client(limit=4, timeout=5)
        assert await client.post(endpoint(server), b"{}") == (200, b"hello world", None)
        assert (await client.post(endpoint(server), b"{}"))[1] == CHOICE
        await client.close()
    assert server.connections == 1


async def test_body_framed_by_close_is_read_to_the_end() -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
    async with serve(reply(raw, close=True), reply(ok())) as server:
        client = Http1Client(limit=4, timeout=5)
        assert await client.post(endpoint(server), b"{}") == (200, b"until the end", None)
        assert (await client.post(endpoint(server), b"{}"))[1] == CHOICE
        await client.close()
    assert server.connections == 2


async def test_connection_close_header_opens_a_new_connection() -> None:
    async with serve(reply(ok(extra="Connection: close\r\n"), close=True), reply(ok())) as server:
        client = Http1Client(limit=4, timeout=5)
        assert (await client.post(endpoint(server), b"{}"))[0] == 200
        assert (await client.post(endpoint(server), b"{}"))[0] == 200
        await client.close()
    assert server.connections == 2 and len(server.requests) == 2


async def test_server_closing_an_idle_keep_alive_connection_between_requests() -> None:
    # Answers keep-alive, then closes: the client sees the close before its next request.
    async with serve(reply(ok(), close=True), reply(ok())) as server:
        client = Http1Client(limit=4, timeout=5)
        assert (await client.post(endpoint(server), b"{}"))[0] == 200
        await asyncio.sleep(0.05)
        assert (await client.post(endpoint(server), b"{}"))[0] == 200
        await client.close()
    assert server.connections == 2 and len(server.requests) == 2


async def test_stale_connection_dropped_before_any_byte_is_retried_once_on_a_fresh_one() -> None:
    # The race a pool cannot see: the server reads the next request on a kept-alive
    # connection and closes it without a byte. Retried once, on a new connection.
    async def drop(writer: asyncio.StreamWriter) -> bool:
        return False

    async with serve(reply(ok()), drop, reply(ok())) as server:
        client = Http1Client(limit=4, timeout=5)
        assert (await client.post(endpoint(server), b"{}"))[0] == 200
        assert (await client.post(endpoint(server), b"{}"))[1] == CHOICE
        await client.close()
    assert server.connections == 2 and len(server.requests) == 3


async def test_fresh_connection_dropped_is_an_error_not_retried() -> None:
    async def drop(writer: asyncio.StreamWriter) -> bool:
        return False

    async with serve(drop, reply(ok())) as server:
        client = Http1Client(limit=4, timeout=5)
        with pytest.raises(Http1Error, match="before answering"):
            await client.post(endpoint(server), b"{}")
        await client.close()
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"choi', id="short-body"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Le", id="half-headers"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", id="half-chunk"
        ),
    ],
)
async def test_partial_response_then_close_is_a_connection_error(raw: bytes) -> None:
    async with serve(reply(raw, close=True)) as server:
        client = Http1Client(limit=4, timeout=5)
        with pytest.raises(Http1Error, match="mid-response"):
            await client.post(endpoint(server), b"{}")
        await client.close()


async def test_not_http_is_a_connection_error() -> None:
    async with serve(reply(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", close=True)) as server:
        client = Http1Client(limit=4, timeout=5)
        with pytest.raises(Http1Error, match="invalid HTTP response"):
            await client.post(endpoint(server), b"{}")
        await client.close()


async def test_slow_headers_time_out_and_the_connection_is_not_reused() -> None:
    async with serve(reply(ok(), pause=1.0), reply(ok())) as server:
        client = Http1Client(limit=4, timeout=0.2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            await client.post(endpoint(server), b"{}")
        assert loop.time() - start < 0.9
        assert (await client.post(endpoint(server), b"{}"))[1] == CHOICE
        await client.close()
    assert server.connections == 2


async def test_retry_after_and_error_status_are_exposed() -> None:
    raw = ok(b'{"error":{"message":"slow down"}}', extra="Retry-After: 3\r\n")
    raw = raw.replace(b"200 OK", b"429 Too Many Requests")
    async with serve(reply(raw)) as server:
        client = Http1Client(limit=4, timeout=5)
        status, body, retry_after = await client.post(endpoint(server), b"{}")
        await client.close()
    assert (status, retry_after) == (429, "3") and b"slow down" in body


async def test_refused_connection_is_a_connection_error() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    client = Http1Client(limit=4, timeout=5)
    with pytest.raises(Http1Error, match="cannot connect"):
        await client.post(Http1Endpoint.parse(f"http://127.0.0.1:{port}/v1", {}), b"{}")


def test_endpoint_head_holds_path_host_and_headers_but_not_our_own() -> None:
    e = Http1Endpoint.parse(
        "http://judge.local:8000/v1/chat/completions?x=1",
        {"Authorization": "Bearer k", "Content-Length": "9", "Connection": "close"},
    )
    assert (e.host, e.port) == ("judge.local", 8000)
    assert e.head == (
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: judge.local:8000\r\n"
        b"Authorization: Bearer k\r\nContent-Length: "
    )
    assert Http1Endpoint.parse("http://h/v1", {}).port == 80
    with pytest.raises(ValueError, match="line break"):
        Http1Endpoint.parse("http://h/v1", {"X": "a\r\nInjected: 1"})
    with pytest.raises(ValueError, match="http://"):
        Http1Endpoint.parse("https://h/v1", {})


# -- through HTTPBackend: the same errors, and retries, as with aiohttp -----------------


def judge_request() -> GenerateRequest:
    return GenerateRequest(messages=({"role": "user", "content": "1+1?"},))


async def test_backend_retries_a_partial_response_as_a_connection_error() -> None:
    cut = reply(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", close=True)
    async with serve(cut, reply(ok())) as server:
        b = HTTPBackend(server.url, backoff_base=0.01, transport="lean")
        out = await b.generate(judge_request())
        await b.aclose()
    assert out[0].text == "ok" and b.retries == 1

    async with serve(cut, cut) as server:
        b = HTTPBackend(server.url, backoff_base=0.01, max_retries=1, transport="lean")
        with pytest.raises(BackendConnectionError, match=r"cannot reach .*mid-response"):
            await b.generate(judge_request())
        await b.aclose()


async def test_backend_slow_headers_are_a_timeout() -> None:
    async with serve(reply(ok(), pause=1.0)) as server:
        b = HTTPBackend(server.url, timeout=0.2, max_retries=0, transport="lean")
        with pytest.raises(BackendTimeoutError, match=r"within 0\.2 s"):
            await b.generate(judge_request())
        await b.aclose()


async def test_backend_chunked_answer_parses() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
        len(CHOICE),
        CHOICE,
    )
    async with serve(reply(raw)) as server:
        b = HTTPBackend(server.url, transport="lean")
        assert (await b.generate(judge_request()))[0].text == "ok"
        await b.aclose()


@pytest.mark.parametrize(
    ("urls", "transport", "lean"),
    [
        (["http://127.0.0.1:9/v1"], "auto", [True]),
        (["https://api.example.com/v1"], "auto", [False]),
        (["http://127.0.0.1:9/v1", "https://api.example.com/v1"], "auto", [True, False]),
        (["http://127.0.0.1:9/v1"], "aiohttp", [False]),
        (["http://127.0.0.1:9/v1"], "lean", [True]),
    ],
)
async def test_transport_choice_per_endpoint(
    urls: list[str], transport: str, lean: list[bool]
) -> None:
    b = build_backend("http", base_url=urls, transport=transport)
    assert isinstance(b, HTTPBackend)
    state = b._state()
    assert [e is not None for e in state.lean_endpoints] == lean
    assert (state.lean is not None) == any(lean)
    assert (state.session is not None) == (not all(lean))
    await b.aclose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"transport": "httpx"}, "transport must be"),
        ({"transport": "lean", "base_url": "https://h/v1"}, "plain http:// only"),
        ({"transport": "lean", "trust_env": True}, "trust_env"),
    ],
)
def test_bad_transport_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_backend("http", **options)


async def test_idle_connections_to_other_hosts_are_closed_at_the_limit() -> None:
    async with (
        serve(*[reply(ok())] * 3) as a,
        serve(*[reply(ok())] * 3) as b,
        serve(*[reply(ok())] * 3) as c,
    ):
        client = Http1Client(limit=2, timeout=5)
        for server in (a, b, c, a, b, c):
            assert (await client.post(endpoint(server), b"{}"))[0] == 200
            assert len(client._open) <= 2
        await client.close()
    # each new host beyond the limit evicted the longest-idle connection
    assert (a.connections, b.connections, c.connections) == (2, 2, 2)


async def test_a_cancelled_request_does_not_leave_its_connection_in_the_pool() -> None:
    async with serve(reply(ok(), pause=1.0), reply(ok())) as server:
        client = Http1Client(limit=4, timeout=5)
        task = asyncio.create_task(client.post(endpoint(server), b"{}"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await client.post(endpoint(server), b"{}"))[1] == CHOICE
        await client.close()
    assert server.connections == 2


def test_lean_only_backend_never_imports_aiohttp() -> None:
    # aiohttp's import is ~150 ms of CPU, paid by every `rewardkit judge` run otherwise.
    code = (
        "import asyncio, sys\n"
        "from rewardkit.backends.http import HTTPBackend\n"
        "async def main():\n"
        "    b = HTTPBackend('http://127.0.0.1:9/v1')\n"
        "    assert b._state().lean is not None\n"
        "    await b.aclose()\n"
        "asyncio.run(main())\n"
        "print('aiohttp' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
