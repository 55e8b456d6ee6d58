"""An OpenAI-compatible chat-completions server on loopback, for tests and benchmarks.

It answers `POST /v1/chat/completions` (and `/chat/completions`) with configurable judge
text — a fixed string, or a callable `(request_body, choice_index) -> str`; by default a
valid SPCT verdict (`Scores: \\boxed{7, 3}`) sized to the number of responses the prompt
shows — and can misbehave on cue: HTTP errors, 429 with `Retry-After`, hangs, garbage
bodies, dropped connections, delays, ignoring `n` like llama-cpp-python's server, and
rejecting request fields like servers that do not know `guided_regex`.

`kind` makes it look like one server family at its introspection endpoints (`/v1/models`
`owned_by`, `/props`, `/get_model_info`, `/version`) and honour only that family's
constraint fields: with `sloppy` text, a request without an honoured constraint gets the
sloppy text (a small model ignoring the format), as a real server would give.

Three ways to run it:

    async with FakeOpenAI(reply="Scores: \\boxed{7}") as server:   # in the test's loop
        backend = HTTPBackend(server.base_url)
    with FakeOpenAI().run_in_thread() as server: ...                # sync code, own loop
    python -m rewardkit.testing.fake_openai --port 8123             # a separate process

What it answers (replies, faults, kinds) is `rewardkit.testing.chat_script.ChatScript`,
shared with the socket-less `rewardkit.backends.scripted.ScriptedServer`; this module only
carries it over aiohttp.

It is built to be fast (benchmarks push tens of thousands of requests through it): no
access log, no per-request logging; counters only (`stats()`, or `GET /stats`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence

import orjson
from aiohttp import web

from rewardkit.backends.transport import HTTPRequest
from rewardkit.testing.chat_script import (
    KINDS,
    ChatScript,
    Fault,
    ReplyFn,
    count_responses,
    spct_reply,
    spct_text,
)

__all__ = [
    "FakeOpenAI",
    "FakeOpenAIProcess",
    "Fault",
    "ReplyFn",
    "count_responses",
    "spct_reply",
    "spct_text",
]


class FakeOpenAI(ChatScript):
    """A scriptable OpenAI-compatible server on loopback; see the module docstring for how
    to run it, and `ChatScript` for what it answers (the arguments are the same).

    `requests` counts chat requests, `probes` GETs of the introspection endpoints
    (`/v1/models`, `/props`, ...).
    """

    # Set per instance by start()/the handlers; class defaults keep ChatScript's typed
    # constructor the only one.
    probes: int = 0
    base_url: str = ""
    port: int = 0
    _runner: web.AppRunner | None = None
    _closing: asyncio.Event | None = None

    @property
    def requests(self) -> int:
        return self.received

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving in the running loop; returns the base URL (`http://host:port/v1`)."""
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        for path in KINDS[self.kind][1]:
            app.router.add_get(path, self._introspect)
        app.router.add_get("/health", self._health)
        app.router.add_get("/stats", self._stats)
        # handler_cancellation: a hung handler dies with its client's connection.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.base_url = f"http://{host}:{self.port}/v1"
        self._closing = asyncio.Event()
        return self.base_url

    async def close(self) -> None:
        if self._closing is not None:
            self._closing.set()  # wake hung handlers
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.contextmanager
    def run_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[FakeOpenAI]:
        """Serve from a background thread with its own loop, for synchronous callers."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start(host, port))
            except BaseException as exc:  # surface bind errors in the caller's thread
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        thread = threading.Thread(target=serve, name="fake-openai", daemon=True)
        thread.start()
        started.wait()
        if failure:
            raise failure[0]
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

    # -- handlers ------------------------------------------------------------------------
    async def _hang(self, seconds: float) -> None:
        # Until the server closes (or `seconds`): a hung handler must not outlive close().
        assert self._closing is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds or None)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    async def _stats(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats()), content_type="application/json")

    async def _models(self, request: web.Request) -> web.Response:
        self.probes += 1
        model = {"id": self.model, "object": "model", "owned_by": KINDS[self.kind][0]}
        body = {"object": "list", "data": [model]}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _introspect(self, request: web.Request) -> web.Response:
        self.probes += 1
        body = KINDS[self.kind][1][request.path]
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            answer = await self.answer(HTTPRequest("POST", request.path, raw, request.headers))
        except ConnectionResetError:  # a "disconnect" fault
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError from None  # nothing can be sent on a closed transport
        return web.Response(status=answer.status, body=answer.content, headers=answer.headers)


class FakeOpenAIProcess:
    """`python -m rewardkit.testing.fake_openai` as a subprocess, ready when constructed.

    For benchmarks, where the server must not share the client's CPU time and GIL.
    Usable as a context manager; `.base_url`, `.close()`.
    """

    def __init__(self, *args: str, port: int = 0, timeout: float = 20.0) -> None:
        cmd = [sys.executable, "-m", "rewardkit.testing.fake_openai", "--port", str(port), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while (left := deadline - time.monotonic()) > 0:
            # Wait for output with a deadline: a bare readline() could block forever.
            if not select.select([self.proc.stdout], [], [], left)[0]:
                break
            line = self.proc.stdout.readline()
            if line.startswith("READY ") or (not line and self.proc.poll() is not None):
                break
        if not line.startswith("READY "):
            self.close()
            raise RuntimeError(f"fake OpenAI server did not start: {line!r}")
        self.base_url = line.split()[1]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> FakeOpenAIProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fault_arg(spec: str) -> Fault:
    try:
        return Fault.parse(spec)
    except ValueError as exc:  # argparse turns this into a usage error, not a traceback
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m rewardkit.testing.fake_openai",
        description="OpenAI-compatible fake chat server on loopback, for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--reply", help="fixed reply text (default: an SPCT verdict)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--ignore-n", action="store_true", help="return one choice, like llama.cpp")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        type=_fault_arg,
        help="queue a fault: 500, 429:2, hang, hang:5, delay:0.5, garbage, empty_choices, disconnect",
    )
    parser.add_argument(
        "--always", type=_fault_arg, help="apply this fault to every request after the queue"
    )
    parser.add_argument("--reject-field", action="append", default=[])
    parser.add_argument("--api-key")
    args = parser.parse_args(argv)
    server = FakeOpenAI(
        args.reply if args.reply is not None else spct_reply,
        faults=args.fault,
        always=args.always,
        ignore_n=args.ignore_n,
        delay=args.delay,
        reject_fields=args.reject_field,
        api_key=args.api_key,
        record=False,  # a long benchmark would grow memory for nothing
    )

    async def serve() -> None:
        url = await server.start(args.host, args.port)
        print(f"READY {url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
