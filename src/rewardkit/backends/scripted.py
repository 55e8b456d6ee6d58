"""A scripted chat-completions server as a `MockTransport` handler: HTTPBackend without sockets.

    server = ScriptedServer(faults=[Fault.http(503), Fault("disconnect")])
    backend = server.backend()               # HTTPBackend(transport=MockTransport(server))
    await backend.generate(request)          # two retries, then a verdict
    server.bodies                            # every request body, parsed

It answers like `rewardkit.testing.fake_openai.FakeOpenAI` (valid SPCT verdicts by
default) and takes the same `Fault`s, so a test can script retries, backoff, `Retry-After`,
timeouts, short `n` and constraint fallback in microseconds; the fake server on loopback is
left for benchmarks and the end-to-end tests that need real connections.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from rewardkit.backends.http import HTTPBackend
from rewardkit.backends.transport import HTTPRequest, HTTPResponse, MockTransport
from rewardkit.testing.fake_openai import Fault, ReplyFn, spct_reply

__all__ = ["FAST_RETRIES", "ScriptedServer", "error_response", "route"]

#: Backoff settings that keep retry tests fast.
FAST_RETRIES: dict[str, Any] = {"backoff_base": 0.01, "backoff_max": 0.05}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> HTTPResponse:
    """An OpenAI-shaped error body, as vLLM and OpenAI send it."""
    body = {"error": {"message": message, "type": "scripted", "code": status}}
    return HTTPResponse.from_json(body, status, headers)


class ScriptedServer:
    """A chat-completions server as a `MockTransport` handler, scripted with the fake
    server's `Fault`s (the same vocabulary as `FakeOpenAI`, minus the sockets).

    "hang" sleeps past any timeout, "disconnect" raises `ConnectionResetError`, "garbage"
    and "empty_choices" answer 200 with an unusable body. Every request is kept.
    """

    def __init__(
        self,
        reply: str | ReplyFn = spct_reply,
        *,
        faults: Sequence[Fault] = (),
        always: Fault | None = None,
        ignore_n: bool = False,
        max_n: int | None = None,
        delay: float = 0.0,
        reject_fields: Sequence[str] = (),
        reject_status: int = 400,
        api_key: str | None = None,
    ) -> None:
        self.reply = reply
        self.faults: deque[Fault] = deque(faults)
        self.always = always
        self.ignore_n = ignore_n
        self.max_n = max_n
        self.delay = delay
        self.reject_fields = tuple(reject_fields)
        self.reject_status = reject_status
        self.api_key = api_key
        self.requests: list[HTTPRequest] = []
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def script(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def transport(self) -> MockTransport:
        return MockTransport(self)

    def backend(self, base_url: str = "http://judge.test/v1", **options: Any) -> HTTPBackend:
        return HTTPBackend(
            base_url, model="judge", transport=self.transport(), **{**FAST_RETRIES, **options}
        )

    async def __call__(self, request: HTTPRequest) -> HTTPResponse:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: HTTPRequest) -> HTTPResponse:
        if self.api_key is not None and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            return error_response(401, "Incorrect API key provided.")
        body = request.json()
        self.bodies.append(body)
        for rule in self.reject_fields:
            name, _, condition = rule.partition(".")
            key, _, value = condition.partition("=")
            if name in body and (
                not condition
                or (isinstance(body[name], dict) and str(body[name].get(key)) == value)
            ):
                return error_response(
                    self.reject_status, f"Unrecognized request argument supplied: {name}"
                )
        fault = self.faults.popleft() if self.faults else self.always
        if fault is not None:
            early = await self._apply(fault)
            if early is not None:
                return early
        if self.delay:
            await asyncio.sleep(self.delay)
        n = 1 if self.ignore_n else max(1, int(body.get("n") or 1))
        if self.max_n is not None:
            n = min(n, self.max_n)
        choices = []
        for index in range(n):
            text = self.reply if isinstance(self.reply, str) else self.reply(body, index)
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            )
        return HTTPResponse.from_json({"object": "chat.completion", "choices": choices})

    async def _apply(self, fault: Fault) -> HTTPResponse | None:
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return error_response(fault.status, fault.message, headers)
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            return None
        if fault.kind == "hang":
            await asyncio.sleep(fault.seconds or 3600)
            return error_response(503, "hung")
        if fault.kind == "garbage":
            return HTTPResponse(200, b'{"choices": [{"message": <html>502 Bad Gateway')
        if fault.kind == "empty_choices":
            return HTTPResponse(200, b'{"id":"x","choices":[]}')
        if fault.kind == "disconnect":
            raise ConnectionResetError("connection reset by peer")
        raise AssertionError(fault.kind)


def route(servers: dict[str, ScriptedServer]) -> MockTransport:
    """One transport for several scripted servers, picked by the request URL's host."""

    async def handler(request: HTTPRequest) -> HTTPResponse:
        return await servers[urlsplit(request.url).netloc](request)

    return MockTransport(handler)
