"""What a fake chat-completions server answers, whatever carries the bytes.

One definition of the fakes' behaviour — judge replies, scripted `Fault`s, rejected request
fields, short `n`, API keys, server families — shared by the two ways tests reach it:

    FakeOpenAI      (rewardkit.testing.fake_openai)  aiohttp on loopback, real sockets
    ScriptedServer  (rewardkit.backends.scripted)    a MockTransport handler, no sockets

`ChatScript.answer(request)` turns one `HTTPRequest` into one `HTTPResponse`; `apply_fault`
is the single place a `Fault` becomes a response or a behaviour. The carriers only decide
how a "hang" waits (`ChatScript._hang`) and what a "disconnect" (`ConnectionResetError`)
does to their connection.
"""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from rewardkit.backends.transport import HTTPRequest, HTTPResponse

__all__ = [
    "KINDS",
    "ChatScript",
    "FakeKind",
    "Fault",
    "FaultKind",
    "ReplyFn",
    "apply_fault",
    "count_responses",
    "error_response",
    "spct_reply",
    "spct_text",
]

ReplyFn = Callable[[dict[str, Any], int], str]
FaultKind = Literal["status", "hang", "garbage", "empty_choices", "disconnect", "delay"]
FakeKind = Literal[
    "generic", "llama_cpp", "llama_server", "vllm", "vllm_legacy", "sglang", "openai"
]

#: Per kind: (owned_by in /v1/models, {other GET path: JSON}, constraint fields honoured).
KINDS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
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
_JSON = {"Content-Type": "application/json"}


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


def error_response(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> HTTPResponse:
    """An OpenAI-shaped error body, as vLLM and OpenAI send it."""
    body = {"error": {"message": message, "type": kind, "code": status}}
    return HTTPResponse.from_json(body, status, headers)


async def apply_fault(
    fault: Fault, hang: Callable[[float], Awaitable[None]]
) -> HTTPResponse | None:
    """What `fault` does to one request: the response to send instead of an answer, or None
    to answer normally (after a "delay"). A "hang" awaits `hang(fault.seconds)` (0: as long
    as the carrier holds it) and then answers 503; a "disconnect" raises
    `ConnectionResetError`, which the carrier turns into a dropped connection."""
    if fault.kind == "status":
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
        return error_response(fault.status, fault.message, "fake_fault", headers)
    if fault.kind == "delay":
        await asyncio.sleep(fault.seconds)
        return None
    if fault.kind == "hang":
        await hang(fault.seconds)
        return error_response(503, "server shutting down after a hang", "fake_fault")
    if fault.kind == "garbage":
        return HTTPResponse(200, b'{"choices": [{"message": <html>502 Bad Gateway', _JSON)
    if fault.kind == "empty_choices":
        return HTTPResponse(200, b'{"id":"x","choices":[]}', _JSON)
    if fault.kind == "disconnect":
        raise ConnectionResetError("connection reset by peer")
    raise AssertionError(fault.kind)


class ChatScript:
    """A scriptable OpenAI-compatible chat-completions endpoint, without a carrier.

    `faults` are applied one per request, in order, then requests are answered normally;
    `always` is applied to every request once `faults` is used up. `reject_fields` makes
    the server answer `reject_status` (400) naming the first such field present in a
    request body; `"response_format.type=json_schema"` rejects only that value of a field
    (llama-cpp-python's server answers that with a 500).
    `ignore_n` answers one choice whatever `n` asks (llama-cpp-python's server does);
    `max_n` caps the choices instead. `api_key`, when set, is required as
    `Authorization: Bearer <key>` (401 otherwise). `kind` makes it honour only one server
    family's constraint fields: with `sloppy` text, a request without an honoured
    constraint gets the sloppy text (a small model ignoring the format); kind "openai"
    also rejects the constraint fields OpenAI does not know, and answers a
    `response_format` json_schema with the reply as `{"analysis", "verdict"}` JSON (its
    last line the verdict).
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
        if kind not in KINDS:
            raise ValueError(f"unknown fake server kind {kind!r}; choose one of {list(KINDS)}")
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
        #: Chat requests received, answered, and at once.
        self.received = 0
        self.completed = 0
        self.in_flight = 0
        self.max_in_flight = 0

    def script(self, *faults: Fault) -> None:
        """Queue faults for the next requests, one each."""
        self.faults.extend(faults)

    def stats(self) -> dict[str, int]:
        return {
            "requests": self.received,
            "completed": self.completed,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }

    def reset_stats(self) -> None:
        self.received = self.completed = self.max_in_flight = 0
        self.bodies.clear()

    async def _hang(self, seconds: float) -> None:
        """How a "hang" fault waits; 0 means as long as the carrier allows."""
        await asyncio.sleep(seconds or 3600)

    def _text(self, body: dict[str, Any], index: int) -> str:
        """The reply as this kind of server would give it for this request."""
        if self.sloppy is not None and not any(f in body for f in KINDS[self.kind][2]):
            return self.sloppy
        text = self.reply if isinstance(self.reply, str) else self.reply(body, index)
        response_format = body.get("response_format")
        if (
            self.kind == "openai"
            and isinstance(response_format, dict)
            and response_format.get("type") == "json_schema"
        ):
            head, _, last = text.rpartition("\n")
            return orjson.dumps({"analysis": head, "verdict": last}).decode()
        return text

    async def answer(self, request: HTTPRequest) -> HTTPResponse:
        """The response to one `POST .../chat/completions`."""
        self.received += 1
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: HTTPRequest) -> HTTPResponse:
        if self.api_key is not None and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            return error_response(401, "Incorrect API key provided.", "invalid_api_key")
        try:
            body = request.json()
        except ValueError:
            return error_response(400, "request body is not valid JSON")
        if self.record:
            self.bodies.append(body)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return error_response(400, "'messages' is a required property")
        for rule in self.reject_fields:
            name, _, condition = rule.partition(".")
            if name not in body:
                continue
            key, _, value = condition.partition("=")
            if not condition or (
                isinstance(body[name], dict) and str(body[name].get(key)) == value
            ):
                return error_response(
                    self.reject_status, f"Unrecognized request argument supplied: {name}"
                )

        fault = self.faults.popleft() if self.faults else self.always
        if fault is not None:
            early = await apply_fault(fault, self._hang)
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
            "id": f"chatcmpl-fake-{self.received}",
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
        return HTTPResponse(200, orjson.dumps(payload), _JSON)


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
