"""The transport contract, held by both transports: aiohttp on loopback and the mock.

Every status is a response; a timeout, a refused or dropped connection and an oversized
body are the same `BackendError`s on both, so what is tested on the mock holds on aiohttp.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from rewardkit.backends.transport import (
    AiohttpTransport,
    HTTPRequest,
    HTTPResponse,
    MockTransport,
    Transport,
)
from rewardkit.errors import BackendConnectionError, BackendError, BackendTimeoutError, ConfigError

CAP = 10_000


def _echo(method: str, headers: dict[str, str], body: bytes) -> bytes:
    return orjson.dumps(
        {"method": method, "auth": headers.get("Authorization"), "body": body.decode()}
    )


async def _aiohttp_app(request: web.Request) -> web.StreamResponse:
    path = request.path
    if path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        return web.Response(status=status, text=f"said {status}", headers={"Retry-After": "7"})
    if path == "/echo":
        body = _echo(request.method, dict(request.headers), await request.read())
        return web.Response(body=body, content_type="application/json")
    if path == "/slow":
        await asyncio.sleep(0.5)  # short: the server's teardown waits for it
        return web.Response(text="late")
    if path == "/big":
        return web.Response(body=b"z" * (CAP + 1))
    if path == "/stream":  # chunked, no Content-Length, never ends: a hostile server
        response = web.StreamResponse()
        await response.prepare(request)
        while True:
            await response.write(b"z" * 4096)
    if path == "/drop":
        assert request.transport is not None
        request.transport.close()
        raise asyncio.CancelledError
    return web.Response(status=404)


async def _mock_handler(request: HTTPRequest) -> HTTPResponse:
    path = request.url.split("mock.test", 1)[1]
    if path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        return HTTPResponse(status, f"said {status}".encode(), {"retry-after": "7"})
    if path == "/echo":
        return HTTPResponse(200, _echo(request.method, dict(request.headers), request.content))
    if path == "/slow":
        await asyncio.sleep(5)
        return HTTPResponse(200, b"late")
    if path == "/big":
        return HTTPResponse(200, b"z" * (CAP + 1))
    if path == "/drop":
        raise ConnectionResetError("reset")
    return HTTPResponse(404)


@pytest.fixture(params=["aiohttp", "mock"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Transport, str]]:
    if request.param == "mock":
        mock = MockTransport(_mock_handler, max_response_bytes=CAP)
        yield mock, "http://mock.test"
        await mock.aclose()
        return
    server = web.Server(_aiohttp_app)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    transport = AiohttpTransport(timeout=5, max_response_bytes=CAP)
    yield transport, f"http://127.0.0.1:{port}"
    await transport.aclose()
    await runner.cleanup()


@pytest.mark.parametrize("status", [200, 404, 429, 503])
async def test_every_status_is_a_response(pair: tuple[Transport, str], status: int) -> None:
    transport, base = pair
    response = await transport.send(HTTPRequest("GET", f"{base}/status/{status}"))
    assert response.status == status and response.content == f"said {status}".encode()
    assert response.header("Retry-After") == "7" and response.header("RETRY-AFTER") == "7"
    assert response.header("X-Missing") is None


async def test_method_body_and_headers_arrive(pair: tuple[Transport, str]) -> None:
    transport, base = pair
    request = HTTPRequest("POST", f"{base}/echo", b'{"a":1}', {"Authorization": "Bearer k"})
    assert (await transport.send(request)).json() == {
        "method": "POST",
        "auth": "Bearer k",
        "body": '{"a":1}',
    }


async def test_no_answer_in_time_is_a_timeout(pair: tuple[Transport, str]) -> None:
    transport, base = pair
    with pytest.raises(BackendTimeoutError, match=r"/slow within 0\.1 s"):
        await transport.send(HTTPRequest("GET", f"{base}/slow", timeout=0.1))


async def test_dropped_connection_is_a_connection_error(pair: tuple[Transport, str]) -> None:
    transport, base = pair
    with pytest.raises(BackendConnectionError, match="cannot reach"):
        await transport.send(HTTPRequest("GET", f"{base}/drop", timeout=2))


async def test_body_over_the_cap_is_refused_by_name(pair: tuple[Transport, str]) -> None:
    transport, base = pair
    with pytest.raises(BackendError, match=f"max_response_bytes={CAP}") as info:
        await transport.send(HTTPRequest("GET", f"{base}/big"))
    assert type(info.value) is BackendError  # not a retryable timeout/connection error


async def test_endless_chunked_body_stops_at_the_cap(pair: tuple[Transport, str]) -> None:
    # A hostile server streaming forever without a Content-Length: the client reads at
    # most the cap, then gives up, instead of filling its memory.
    transport, base = pair
    if isinstance(transport, MockTransport):
        pytest.skip("a mock response is whole bytes; streaming needs a socket")
    with pytest.raises(BackendError, match=f"max_response_bytes={CAP}"):
        await asyncio.wait_for(transport.send(HTTPRequest("GET", f"{base}/stream")), 5)


async def test_refused_connection_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = AiohttpTransport(timeout=5)
    with pytest.raises(BackendConnectionError, match=f"cannot reach http://127.0.0.1:{port}/"):
        await transport.send(HTTPRequest("GET", f"http://127.0.0.1:{port}/x"))
    await transport.aclose()


async def test_aiohttp_transport_pickles_without_its_sessions(
    pair: tuple[Transport, str],
) -> None:
    transport, base = pair
    if not isinstance(transport, AiohttpTransport):
        pytest.skip("the mock holds a handler function")
    await transport.send(HTTPRequest("GET", f"{base}/status/200"))
    clone = pickle.loads(pickle.dumps(transport))
    assert (clone.limit, clone.timeout, clone.max_response_bytes) == (100, 5.0, CAP)
    assert len(clone._loops) == 0
    assert (await clone.send(HTTPRequest("GET", f"{base}/status/200"))).status == 200
    await clone.aclose()


def test_a_sync_handler_and_a_wrong_return_type() -> None:
    ok = MockTransport(lambda request: HTTPResponse(204))
    assert asyncio.run(ok.send(HTTPRequest("GET", "http://m/"))).status == 204
    bad = MockTransport(lambda request: "hello")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="not HTTPResponse"):
        asyncio.run(bad.send(HTTPRequest("GET", "http://m/")))
    instant = MockTransport(lambda request: (_ for _ in ()).throw(TimeoutError()))
    with pytest.raises(BackendTimeoutError, match="no answer from http://m/ in time"):
        asyncio.run(instant.send(HTTPRequest("GET", "http://m/")))


@pytest.mark.parametrize("cap", [0, -1, 1.5])
def test_a_bad_cap_is_a_config_error(cap: object) -> None:
    with pytest.raises(ConfigError, match="max_response_bytes"):
        AiohttpTransport(max_response_bytes=cap)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_response_bytes"):
        MockTransport(lambda r: HTTPResponse(200), max_response_bytes=cap)  # type: ignore[arg-type]
