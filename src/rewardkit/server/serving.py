"""How `rewardkit serve` runs the app under uvicorn: timeouts that drop slow clients.

uvicorn closes a connection idle *between* requests (`timeout_keep_alive`) but has no limit
on how long a client may take to send a request: a client that opens a connection and
sends its headers a byte a second (slowloris) holds a connection, a file descriptor and a
parser forever. Three limits, all from `ServerConfig`:

* headers: `header_timeout_s` from the connection's first byte (or from its opening) to
  the end of the request headers. `_HeaderDeadline` adds this to uvicorn's own protocol
  class (httptools or h11, whichever uvicorn picks); past it the client gets
  `408 Request Timeout` and the connection is closed.
* body: `body_timeout_s` for the whole body, enforced by the app's guard middleware
  (408, connection closed), so it holds under any ASGI server.
* idle keep-alive: `keep_alive_timeout_s`, uvicorn's `timeout_keep_alive`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rewardkit.server.config import ServerConfig

__all__ = ["header_deadline_protocol", "uvicorn_options"]

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 37\r\n\r\nrequest headers not received in time\n"
)


class _HeaderDeadline(asyncio.Protocol):
    """Mixed into uvicorn's HTTP protocol: a deadline on receiving each request's headers.

    The clock starts when the connection opens and again at the first byte of every next
    request on a kept-alive connection (uvicorn's keep-alive timer covers the idle time
    in between); it stops once uvicorn has parsed the headers and started the request.
    """

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None
    # Set by uvicorn's protocol classes (this is mixed in before them).
    transport: asyncio.Transport
    cycle: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_headers():
            if self._header_timer is None and not self.transport.is_closing():
                self._arm_header_timer()
        else:
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _reading_headers(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def _arm_header_timer(self) -> None:
        loop = asyncio.get_running_loop()
        self._header_timer = loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._reading_headers():
            return
        self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


def header_deadline_protocol(
    header_timeout: float, base: type[asyncio.Protocol] | None = None
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class `base` (default: the one uvicorn picks, httptools when
    installed, else h11) with a `header_timeout` deadline on request headers."""
    if base is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        base = AutoHTTPProtocol
    name = f"HeaderDeadline{base.__name__}"
    return type(name, (_HeaderDeadline, base), {"header_timeout": header_timeout})


def uvicorn_options(config: ServerConfig) -> dict[str, Any]:
    """Keyword arguments of `uvicorn.run` / `uvicorn.Config` that apply `config`'s timeouts."""
    return {
        "http": header_deadline_protocol(config.header_timeout_s),
        "timeout_keep_alive": config.keep_alive_timeout_s,
    }
