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

It is built to be fast (benchmarks push tens of thousands of requests through it): no
access log, no per-request logging; counters only (`stats()`, or `GET /stats`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import select
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson  # a core dependency
from aiohttp import web


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


_loads: Callable[[bytes], Any] = orjson.loads

__all__ = [
    "FakeOpenAI",
    "FakeOpenAIProcess",
    "Fault",
    "ReplyFn",
    "count_responses",
    "spct_reply",
    "spct_text",
]

ReplyFn = Callable[[dict[str, Any], int], str]
FaultKind = Literal["status", "hang", "garbage", "empty_choices", "disconnect", "delay"]
FakeKind = Literal[
    "generic", "llama_cpp", "llama_server", "vllm", "vllm_legacy", "sglang", "openai"
]

# Per kind: (owned_by in /v1/models, {other GET path: JSON}, constraint fields honoured).
_KINDS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "generic": (
        "fake",
        {},
        (
            "grammar",
            "response_format",
            "json_schema",
            "structured_outputs",
            "guided_regex",
            "guided_grammar",
            "guided_json",
            "regex",
        ),
    ),
    "llama_cpp": ("me", {}, ("grammar", "response_format")),  # llama-cpp-python
    "llama_server": (
        "llamacpp",
        {"/props": {"default_generation_settings": {"n_ctx": 4096}}},
        ("grammar", "response_format", "json_schema"),
    ),
    "vllm": ("vllm", {"/version": {"version": "0.11.0"}}, ("structured_outputs",)),
    "vllm_legacy": (
        "vllm",
        {"/version": {"version": "0.8.5"}},
        ("guided_regex", "guided_grammar", "guided_json"),
    ),
    "sglang": ("sglang", {"/get_model_info": {"model_path": "fake"}}, ("regex", "response_format")),
    "openai": ("system", {}, ("response_format",)),
}
# Fields the real OpenAI API answers with 400 "Unrecognized request argument supplied".
_NOT_OPENAI = ("grammar", "guided_regex", "guided_grammar", "guided_json", "structured_outputs",
               "regex", "json_schema")  # fmt: skip

_RESPONSE_RE = re.compile(r"response\s*#?\s*(\d+)", re.IGNORECASE)


def count_responses(messages: Sequence[dict[str, Any]]) -> int:
    """How many responses a judge prompt shows: the highest "Response N" it mentions, else 1."""
    numbers = [
        int(m)
        for msg in messages
        if msg.get("role") == "user"
        for m in _RESPONSE_RE.findall(str(msg.get("content", "")))
    ]
    return max([n for n in numbers if n < 1000] or [1])


def spct_text(scores: Sequence[int]) -> str:
    """A well-formed SPCT judge output: principles, critique, then `Scores: \\boxed{...}`."""
    return (
        "Specific Criteria:\n1. Correctness (60%): the final answer must be right.\n"
        "2. Clarity (40%): the reasoning must be easy to follow.\n"
        "Analysis:\n"
        + "".join(f"- Response {i + 1} earns {s} of 10.\n" for i, s in enumerate(scores))
        + "Scores: \\boxed{"
        + ", ".join(str(s) for s in scores)
        + "}"
    )


def spct_reply(body: dict[str, Any], index: int) -> str:
    """The default reply: a valid SPCT verdict with one score (1..10) per response shown.

    Scores are a deterministic function of the prompt and the choice index, so repeated
    runs agree while different samples (votes) can differ.
    """
    messages = body.get("messages") or []
    k = count_responses(messages)
    seed = zlib.crc32(str(messages[-1].get("content", "") if messages else "").encode())
    scores = [1 + (seed + 7 * index + 3 * i) % 10 for i in range(k)]
    return spct_text(scores)


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted misbehaviour, applied to one request (or every request, see `always`)."""

    kind: FaultKind
    status: int = 500
    retry_after: str | None = None  # the Retry-After header value, as sent (seconds or a date)
    seconds: float = 0.0  # for "hang" (0 = until the server closes) and "delay"
    message: str = "injected fault"

    @classmethod
    def http(cls, status: int, retry_after: str | float | None = None, message: str = "") -> Fault:
        ra = None if retry_after is None else str(retry_after)
        return cls("status", status=status, retry_after=ra, message=message or f"fake {status}")

    @classmethod
    def hang(cls, seconds: float = 0.0) -> Fault:
        return cls("hang", seconds=seconds)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer normally, but only after `seconds`."""
        return cls("delay", seconds=seconds)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """From the CLI: `500`, `429:2` (Retry-After 2), `hang`, `hang:5`, `delay:0.5`,
        `garbage`, `empty_choices`, `disconnect`."""
        head, _, arg = spec.partition(":")
        if head.isdigit():
            return cls.http(int(head), retry_after=arg or None)
        if head in ("hang", "delay"):
            return cls(head, seconds=float(arg or 0))  # type: ignore[arg-type]
        if head in ("garbage", "empty_choices", "disconnect"):
            return cls(head)  # type: ignore[arg-type]
        raise ValueError(f"unknown fault {spec!r}")


class FakeOpenAI:
    """A scriptable OpenAI-compatible server. See the module docstring for how to run it.

    `faults` are applied one per request, in order, then requests are answered normally;
    `always` is applied to every request once `faults` is used up. `reject_fields` makes
    the server answer `reject_status` (400) naming the first such field present in a
    request body; `"response_format.type=json_schema"` rejects only that value of a field
    (llama-cpp-python's server answers that with a 500).
    `ignore_n` answers one choice whatever `n` asks (llama-cpp-python's server does);
    `max_n` caps the choices instead. `api_key`, when set, is required as
    `Authorization: Bearer <key>` (401 otherwise). `kind` and `sloppy`: see the module
    docstring; kind "openai" also rejects the constraint fields OpenAI does not know, and
    answers a `response_format` json_schema with the reply as `{"analysis", "verdict"}`
    JSON (its last line the verdict).
    """

    def __init__(
        self,
        reply: str | ReplyFn = spct_reply,
        *,
        model: str = "fake-judge",
        faults: Sequence[Fault] = (),
        always: Fault | None = None,
        ignore_n: bool = False,
        max_n: int | None = None,
        delay: float = 0.0,
        reject_fields: Sequence[str] = (),
        reject_status: int = 400,
        api_key: str | None = None,
        record: bool = True,
        kind: FakeKind = "generic",
        sloppy: str | None = None,
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown fake server kind {kind!r}; choose one of {list(_KINDS)}")
        self.kind = kind
        self.sloppy = sloppy
        self.reply = reply
        self.model = model
        self.faults: deque[Fault] = deque(faults)
        self.always = always
        self.ignore_n = ignore_n
        self.max_n = max_n
        self.delay = delay
        self.reject_fields = tuple(reject_fields) + (_NOT_OPENAI if kind == "openai" else ())
        self.reject_status = reject_status
        self.api_key = api_key
        self.record = record
        #: Parsed request bodies, in arrival order (when `record`).
        self.bodies: list[dict[str, Any]] = []
        self.requests = 0
        #: GETs of the introspection endpoints (`/v1/models`, `/props`, ...).
        self.probes = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.completed = 0
        self.base_url = ""
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # -- scripting -----------------------------------------------------------------------
    def script(self, *faults: Fault) -> None:
        """Queue faults for the next requests, one each."""
        self.faults.extend(faults)

    def stats(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "completed": self.completed,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }

    def reset_stats(self) -> None:
        self.requests = self.completed = self.max_in_flight = 0
        self.bodies.clear()

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving in the running loop; returns the base URL (`http://host:port/v1`)."""
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        for path in _KINDS[self.kind][1]:
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
    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    async def _stats(self, request: web.Request) -> web.Response:
        return web.Response(body=_dumps(self.stats()), content_type="application/json")

    async def _models(self, request: web.Request) -> web.Response:
        self.probes += 1
        model = {"id": self.model, "object": "model", "owned_by": _KINDS[self.kind][0]}
        body = {"object": "list", "data": [model]}
        return web.Response(body=_dumps(body), content_type="application/json")

    async def _introspect(self, request: web.Request) -> web.Response:
        self.probes += 1
        body = _KINDS[self.kind][1][request.path]
        return web.Response(body=_dumps(body), content_type="application/json")

    def _text(self, body: dict[str, Any], index: int) -> str:
        """The reply as this kind of server would give it for this request."""
        honoured = _KINDS[self.kind][2]
        if self.sloppy is not None and not any(f in body for f in honoured):
            return self.sloppy
        text = self.reply if isinstance(self.reply, str) else self.reply(body, index)
        response_format = body.get("response_format")
        if (
            self.kind == "openai"
            and isinstance(response_format, dict)
            and response_format.get("type") == "json_schema"
        ):
            head, _, last = text.rpartition("\n")
            return _dumps({"analysis": head, "verdict": last}).decode()
        return text

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if self.api_key is not None and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        try:
            body = _loads(raw)
        except ValueError:
            return _error(400, "request body is not valid JSON", "invalid_request_error")
        if self.record:
            self.bodies.append(body)
        if not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is a required property", "invalid_request_error")
        for rule in self.reject_fields:
            name, _, condition = rule.partition(".")
            if name not in body:
                continue
            key, _, value = condition.partition("=")
            if not condition or (
                isinstance(body[name], dict) and str(body[name].get(key)) == value
            ):
                return _error(
                    self.reject_status,
                    f"Unrecognized request argument supplied: {name}",
                    "invalid_request_error",
                )

        fault = self.faults.popleft() if self.faults else self.always
        if fault is not None:
            early = await self._apply(fault, request)
            if early is not None:
                return early
        if self.delay:
            await asyncio.sleep(self.delay)

        n = 1 if self.ignore_n else max(1, int(body.get("n") or 1))
        if self.max_n is not None:
            n = min(n, self.max_n)
        choices = []
        for index in range(n):
            text = self._text(body, index)
            choice: dict[str, Any] = {
                "index": index,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
            if body.get("logprobs"):
                choice["logprobs"] = {"content": _logprobs(text, body.get("top_logprobs") or 0)}
            choices.append(choice)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body["messages"])
        completion_chars = sum(len(c["message"]["content"]) for c in choices)
        payload = {
            "id": f"chatcmpl-fake-{self.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_chars // 4,
                "completion_tokens": completion_chars // 4,
                "total_tokens": (prompt_chars + completion_chars) // 4,
            },
        }
        self.completed += 1
        return web.Response(body=_dumps(payload), content_type="application/json")

    async def _apply(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return _error(fault.status, fault.message, "fake_fault", headers)
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            return None
        if fault.kind == "hang":
            assert self._closing is not None
            timeout = fault.seconds or None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout)
            return _error(503, "server shutting down after a hang", "fake_fault")
        if fault.kind == "garbage":
            return web.Response(
                body=b'{"choices": [{"message": <html>502 Bad Gateway',
                content_type="application/json",
            )
        if fault.kind == "empty_choices":
            return web.Response(body=b'{"id":"x","choices":[]}', content_type="application/json")
        if fault.kind == "disconnect":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # nothing can be sent on a closed transport
        raise AssertionError(fault.kind)


def _error(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.Response(
        status=status, body=_dumps(body), content_type="application/json", headers=headers
    )


_TOKEN_RE = re.compile(r"\s*\S+|\s+")


def _logprobs(text: str, k: int) -> list[dict[str, Any]]:
    """OpenAI-shaped per-token logprobs: whitespace-led chunks, deterministic values."""
    out = []
    for position, token in enumerate(_TOKEN_RE.findall(text)):
        lp = -0.05 * (1 + position % 5)
        top = [{"token": token, "logprob": lp, "bytes": list(token.encode())}]
        top += [{"token": f"<alt{j}>", "logprob": lp - 1.0 - j, "bytes": None} for j in range(1, k)]
        out.append(
            {"token": token, "logprob": lp, "bytes": list(token.encode()), "top_logprobs": top[:k]}
        )
    return out


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
