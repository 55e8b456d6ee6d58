"""How HTTP bytes move: one small protocol, aiohttp for real URLs, a handler for tests.

Modelled on httpx's transports. A `Transport` has one async `send(HTTPRequest) ->
HTTPResponse` and an `aclose()`; everything above it (retries, backoff, balancing,
constraint fallback, the meta RM's protocol, server detection) is written once against it:

    AiohttpTransport()            every http:// and https:// URL, one session per event loop
    MockTransport(handler)        handler(request) -> response (sync or async); no sockets

The contract, which both keep: any HTTP status is a response, not an error; no complete
answer within `request.timeout` raises `BackendTimeoutError`; a server that cannot be
reached or drops the connection raises `BackendConnectionError`; a body over
`max_response_bytes` raises `BackendError` naming the cap (a judge answer is kilobytes; a
server streaming gigabytes must not take the client's memory with it).

    def handler(request: HTTPRequest) -> HTTPResponse:
        return HTTPResponse.from_json({"choices": [...]})
    backend = HTTPBackend("http://judge/v1", transport=MockTransport(handler))
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import orjson

from rewardkit.errors import BackendConnectionError, BackendError, BackendTimeoutError, ConfigError

if TYPE_CHECKING:  # imported on the first request: ~150 ms of CPU at process start
    import aiohttp
    from yarl import URL

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "AiohttpTransport",
    "HTTPRequest",
    "HTTPResponse",
    "Handler",
    "MockTransport",
    "Transport",
]

#: The default cap on one response body: 16 MiB, ~1000x a long judge answer with logprobs.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    """One request. `timeout` is seconds for the whole exchange (None: the transport's)."""

    method: str
    url: str
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None

    def json(self) -> Any:
        """The body parsed as JSON (what a mock handler usually wants)."""
        return orjson.loads(self.content)


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    """One response, whatever its status. Header lookups ignore case (see `header`)."""

    status: int
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(
        cls, body: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> HTTPResponse:
        return cls(
            status, orjson.dumps(body), {"Content-Type": "application/json", **(headers or {})}
        )

    def header(self, name: str) -> str | None:
        """The header `name`, whatever case the server wrote it in; None when absent."""
        value = self.headers.get(name)
        if value is not None or not self.headers:
            return value
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        return orjson.loads(self.content)


@runtime_checkable
class Transport(Protocol):
    """Sends one HTTP request and returns the response (see the module's contract)."""

    async def send(self, request: HTTPRequest) -> HTTPResponse: ...

    async def aclose(self) -> None: ...


def _check_cap(max_response_bytes: int) -> int:
    if not isinstance(max_response_bytes, int) or max_response_bytes < 1:
        raise ConfigError(
            f"max_response_bytes must be a positive integer, got {max_response_bytes!r}"
        )
    return max_response_bytes


def _too_large(url: str, cap: int, size: int | None = None) -> BackendError:
    said = f" ({size} bytes)" if size is not None else ""
    return BackendError(
        f"response from {url} is larger than max_response_bytes={cap}{said}; "
        "raise max_response_bytes if that server really answers this much"
    )


def _timed_out(url: str, timeout: float | None) -> BackendTimeoutError:
    within = "in time" if timeout is None else f"within {timeout:g} s"
    return BackendTimeoutError(f"no answer from {url} {within}")


def _unreachable(url: str, exc: BaseException) -> BackendConnectionError:
    return BackendConnectionError(f"cannot reach {url}: {type(exc).__name__}: {exc}")


# -- aiohttp -------------------------------------------------------------------------------


@dataclass
class _Loop:
    session: aiohttp.ClientSession
    errors: tuple[type[BaseException], ...]


class AiohttpTransport:
    """aiohttp for every URL: keep-alive connections, one session per event loop.

    `limit` bounds open connections; `timeout` is the default seconds per request;
    `trust_env` takes proxies from the environment. The object is made outside any loop
    and pickled to trainer workers: sessions are made lazily per loop, dropped on pickling.
    """

    def __init__(
        self,
        *,
        limit: int = 100,
        timeout: float = 120.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        trust_env: bool = False,
    ) -> None:
        if limit < 1:
            raise ConfigError(f"limit must be >= 1, got {limit}")
        if timeout <= 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {timeout}")
        self.limit = limit
        self.timeout = float(timeout)
        self.max_response_bytes = _check_cap(max_response_bytes)
        self.trust_env = trust_env
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop] = (
            weakref.WeakKeyDictionary()
        )
        # The loop of the last call: the usual case is one loop and many requests.
        self._last: tuple[asyncio.AbstractEventLoop, _Loop] | None = None
        # Parsed once: aiohttp parses a str URL again on every request.
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def __repr__(self) -> str:
        return f"AiohttpTransport(limit={self.limit}, timeout={self.timeout:g})"

    def _loop(self) -> _Loop:
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop and not last[1].session.closed:
            return last[1]
        state = self._loops.get(loop)
        if state is None or state.session.closed:
            import aiohttp

            connector = aiohttp.TCPConnector(
                limit=self.limit, limit_per_host=0, keepalive_timeout=60
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=self.trust_env,
                # No cookies: an API client has no use for them, and filtering an empty
                # jar still costs every request.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            state = _Loop(session, (aiohttp.ClientError, OSError))
            self._loops[loop] = state
        self._last = (loop, state)
        return state

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        state = self._loop()
        url = self._urls.get(request.url)
        if url is None:
            from yarl import URL

            url = self._urls[request.url] = URL(request.url)
        timeout = request.timeout
        client_timeout = None if timeout is None else self._timeouts.get(timeout)
        if client_timeout is None and timeout is not None:
            import aiohttp

            client_timeout = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        cap = self.max_response_bytes
        try:
            async with state.session.request(
                request.method,
                url,
                data=request.content or None,
                headers=request.headers or None,
                timeout=client_timeout,
            ) as response:
                length = response.content_length
                if length is not None:
                    if length > cap:
                        raise _too_large(request.url, cap, length)
                    content = await response.read()
                else:  # chunked or read to close: count as it comes
                    chunks = []
                    size = 0
                    async for chunk in response.content.iter_chunked(1 << 16):
                        size += len(chunk)
                        if size > cap:
                            raise _too_large(request.url, cap)
                        chunks.append(chunk)
                    content = b"".join(chunks)
                return HTTPResponse(response.status, content, response.headers)
        except TimeoutError:
            raise _timed_out(request.url, timeout or self.timeout) from None
        except state.errors as exc:
            raise _unreachable(request.url, exc) from None

    async def aclose(self) -> None:
        """Close this loop's session (those of other, finished loops are just dropped)."""
        loop = asyncio.get_running_loop()
        state = self._loops.pop(loop, None)
        self._last = None
        if state is not None and not state.session.closed:
            await state.session.close()


# -- mock ----------------------------------------------------------------------------------

#: What a `MockTransport` calls: request in, response out (a coroutine function is fine).
Handler = Callable[[HTTPRequest], "HTTPResponse | Awaitable[HTTPResponse]"]


class MockTransport:
    """Answers every request with `handler(request)`: no sockets, same contract as aiohttp.

    The handler may be a plain or an async function. It stands in for the network's
    failures too: raising `TimeoutError` (or sleeping past `request.timeout`) is a
    timeout, raising `OSError` (`ConnectionResetError`, ...) a dropped connection; both
    reach the caller as the same `BackendError`s the aiohttp transport raises, as does a
    body over `max_response_bytes`.
    """

    def __init__(
        self, handler: Handler, *, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    ) -> None:
        self.handler = handler
        self.max_response_bytes = _check_cap(max_response_bytes)
        self.closed = False

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        try:
            async with asyncio.timeout(request.timeout):
                response = self.handler(request)
                if inspect.isawaitable(response):
                    response = await response
        except TimeoutError:
            raise _timed_out(request.url, request.timeout) from None
        except OSError as exc:
            raise _unreachable(request.url, exc) from None
        if not isinstance(response, HTTPResponse):
            raise TypeError(
                f"MockTransport handler returned {type(response).__name__}, not HTTPResponse"
            )
        if len(response.content) > self.max_response_bytes:
            raise _too_large(request.url, self.max_response_bytes, len(response.content))
        return response

    async def aclose(self) -> None:
        self.closed = True
