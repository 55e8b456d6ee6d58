"""A scripted chat-completions server as a `MockTransport` handler: HTTPBackend without sockets.

    server = ScriptedServer(faults=[Fault.http(503), Fault("disconnect")])
    backend = server.backend()               # HTTPBackend(transport=MockTransport(server))
    await backend.generate(request)          # two retries, then a verdict
    server.bodies                            # every request body, parsed

It is the same `ChatScript` as `rewardkit.testing.fake_openai.FakeOpenAI` (valid SPCT
verdicts by default, the same `Fault`s and options), carried by a `MockTransport` instead
of sockets, so a test can script retries, backoff, `Retry-After`, timeouts, short `n` and
constraint fallback in microseconds; the fake server on loopback is left for benchmarks and
the end-to-end tests that need real connections.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from rewardkit.backends.http import HTTPBackend
from rewardkit.backends.transport import HTTPRequest, HTTPResponse, MockTransport
from rewardkit.testing.chat_script import ChatScript, Fault, error_response

__all__ = ["FAST_RETRIES", "Fault", "ScriptedServer", "error_response", "route"]

#: Backoff settings that keep retry tests fast.
FAST_RETRIES: dict[str, Any] = {"backoff_base": 0.01, "backoff_max": 0.05}


class ScriptedServer(ChatScript):
    """A chat-completions server as a `MockTransport` handler (see `ChatScript` for its
    arguments). A "hang" sleeps past any timeout; a "disconnect" raises
    `ConnectionResetError`, which the transport reports as a dropped connection. Every
    request is kept in `requests`.
    """

    @cached_property  # per instance, made on first use: ChatScript's constructor stays the one
    def requests(self) -> list[HTTPRequest]:
        return []

    def transport(self, **options: Any) -> MockTransport:
        return MockTransport(self, **options)

    def backend(self, base_url: str = "http://judge.test/v1", **options: Any) -> HTTPBackend:
        return HTTPBackend(
            base_url, model="judge", transport=self.transport(), **{**FAST_RETRIES, **options}
        )

    async def __call__(self, request: HTTPRequest) -> HTTPResponse:
        self.requests.append(request)
        return await self.answer(request)


def route(servers: dict[str, ScriptedServer]) -> MockTransport:
    """One transport for several scripted servers, picked by the request URL's host."""

    async def handler(request: HTTPRequest) -> HTTPResponse:
        return await servers[urlsplit(request.url).netloc](request)

    return MockTransport(handler)
