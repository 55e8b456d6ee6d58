"""A lean HTTP/1.1 client for plain `http://` judge servers: POST a body, read one response.

Why not aiohttp here: at judge concurrency the client's own CPU per request decides the
throughput when the server shares the machine, and aiohttp spends ~150-200 us of it per
request (request/response objects, header multidicts, tracing hooks, stream readers).
This does only what `HTTPBackend` needs: keep-alive connections pooled per (host, port),
a prebuilt request head plus `Content-Length`, and a response parsed by `httptools` (the
C parser uvicorn uses) straight into (status, body, Retry-After).

Failures surface as `Http1Error` (the connection is gone, refused, or the bytes are not
HTTP) or `TimeoutError` (the per-attempt deadline passed), which `HTTPBackend` maps to the
same errors, and the same retries, as aiohttp's. A reused keep-alive connection that the
server closed before sending a byte is retried once on a fresh connection: servers close
idle connections whenever they like, and that race is not the request's fault.

TLS is not handled: `https://` endpoints stay on aiohttp.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

__all__ = ["Http1Client", "Http1Endpoint", "Http1Error"]


class Http1Error(Exception):
    """The connection failed: refused, dropped before or during a response, or not HTTP."""


class ServerDisconnectedError(Http1Error):
    """The server closed the connection; `before_response` when not one byte had come."""

    def __init__(self, message: str, before_response: bool) -> None:
        super().__init__(message)
        self.before_response = before_response


@dataclass(frozen=True)
class Http1Endpoint:
    """One `http://host:port/path` URL with its request head built once."""

    host: str
    port: int
    #: `POST <path> HTTP/1.1` and every header but Content-Length, ending in "Content-Length: ".
    head: bytes

    @classmethod
    def parse(cls, url: str, headers: Mapping[str, str]) -> Http1Endpoint:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the lean transport takes http:// URLs only, got {url!r}")
        port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host_header = parts.netloc.rpartition("@")[2]  # never send userinfo as Host
        lines = [f"POST {path} HTTP/1.1", f"Host: {host_header}"]
        for name, value in headers.items():
            if any(c in name + value for c in "\r\n"):
                raise ValueError(f"header {name!r} holds a line break")
            if name.lower() not in _OWN_HEADERS:
                lines.append(f"{name}: {value}")
        lines.append("Content-Length: ")
        return cls(parts.hostname, port, "\r\n".join(lines).encode("latin-1"))


# Headers this client writes itself.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class _Connection(asyncio.Protocol):
    """One keep-alive TCP connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.waiter: asyncio.Future[tuple[int, bytes, str | None]] | None = None
        self.keep_alive = True
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.got_bytes = False
        self.headers_done = False
        self.status = 0
        self.body: list[bytes] = []
        self.retry_after: str | None = None
        # A body framed by neither Content-Length nor chunked runs until the server closes.
        self.framed = False

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            # Bytes nobody asked for (or after a timeout): this connection is out of step.
            self.abort()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(Http1Error(f"invalid HTTP response: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and not self.framed and exc is None:  # a clean EOF ends it
            self.keep_alive = False
            waiter.set_result((self.status, b"".join(self.body), self.retry_after))
            return
        reason = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        if self.got_bytes:
            self._fail(
                ServerDisconnectedError(f"server closed the connection mid-response{reason}", False)
            )
        else:
            self._fail(
                ServerDisconnectedError(
                    f"server closed the connection before answering{reason}", True
                )
            )

    # -- httptools callbacks ------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"retry-after":
            self.retry_after = value.decode("latin-1").strip()
        elif lowered == b"content-length" or (
            lowered == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.status = self.parser.get_status_code()
        if self.status in (204, 304) or 100 <= self.status < 200:
            self.framed = True  # no body by definition

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim response: the real one follows
            self._reset()
            self.got_bytes = True
            return
        waiter = self.waiter
        self.keep_alive = self.parser.should_keep_alive()
        if waiter is not None and not waiter.done():
            waiter.set_result((self.status, b"".join(self.body), self.retry_after))

    # -- used by the client -------------------------------------------------------------
    def _fail(self, error: BaseException) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _timed_out(self) -> None:
        self._fail(TimeoutError())
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def usable(self) -> bool:
        transport = self.transport
        return not self.closed and transport is not None and not transport.is_closing()

    async def request(self, data: bytes, deadline: float) -> tuple[int, bytes, str | None]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._reset()
        waiter = self.waiter = loop.create_future()
        self.transport.write(data)
        handle = loop.call_at(deadline, self._timed_out)
        try:
            return await waiter
        except BaseException:
            # A timeout, a drop, or a cancelled caller: the connection's state is unknown.
            self.abort()
            raise
        finally:
            handle.cancel()
            self.waiter = None


class Http1Client:
    """Keep-alive connections per (host, port), at most `limit` open in all.

    One per event loop. The caller bounds requests in flight (HTTPBackend's semaphore at
    the same `limit`), so a request never waits for a connection; an idle connection to
    another host is closed to make room when the limit is reached.
    """

    def __init__(self, limit: int, timeout: float) -> None:
        self.limit = limit
        self.timeout = timeout
        self.closed = False
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()

    async def post(self, endpoint: Http1Endpoint, body: bytes) -> tuple[int, bytes, str | None]:
        """(status, body, Retry-After) for one POST; `Http1Error` or `TimeoutError` if none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        data = endpoint.head + b"%d\r\n\r\n" % len(body) + body
        key = (endpoint.host, endpoint.port)
        conn = self._take_idle(key)
        if conn is not None:
            try:
                result = await conn.request(data, deadline)
            except ServerDisconnectedError as exc:
                self._open.discard(conn)
                if not exc.before_response:
                    raise
                conn = None  # a stale keep-alive connection: once more on a fresh one
            except BaseException:
                self._open.discard(conn)
                raise
            else:
                self._put_back(key, conn)
                return result
        conn = await self._connect(endpoint, deadline)
        try:
            result = await conn.request(data, deadline)
        except BaseException:
            self._open.discard(conn)
            raise
        self._put_back(key, conn)
        return result

    def _take_idle(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()  # the most recently used: least likely to be timed out
            if conn.usable:
                return conn
            self._open.discard(conn)
        return None

    def _put_back(self, key: tuple[str, int], conn: _Connection) -> None:
        if conn.keep_alive and conn.usable and not self.closed:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(key, []).append(conn)
        else:
            self._open.discard(conn)
            conn.abort()

    async def _connect(self, endpoint: Http1Endpoint, deadline: float) -> _Connection:
        if len(self._open) >= self.limit:
            self._evict_one()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(_Connection, endpoint.host, endpoint.port)
        except OSError as exc:
            raise Http1Error(
                f"cannot connect to {endpoint.host}:{endpoint.port}: {exc.strerror or exc}"
            ) from None
        self._open.add(conn)
        return conn

    def _evict_one(self) -> None:
        """Close the longest-idle connection (rare: only with several hosts at the limit)."""
        oldest = min(
            (idle for idle in self._idle.values() if idle),
            key=lambda idle: idle[0].idle_since,
            default=None,
        )
        if oldest is not None:
            conn = oldest.pop(0)
            self._open.discard(conn)
            conn.abort()

    async def close(self) -> None:
        self.closed = True
        for conn in list(self._open):
            if conn.transport is not None:
                conn.transport.close()
        self._open.clear()
        self._idle.clear()
