"""OpenAI-compatible chat completions over HTTP: vLLM, SGLang, llama.cpp, Ollama, OpenAI.

Our own client rather than the openai SDK: the SDK's default transport measured ~10x slower
at high concurrency here, and a judge backend lives at high concurrency.

One `HTTPBackend` spreads requests over several base URLs (round-robin or least
in-flight), bounds concurrency with a semaphore, times out every attempt, and retries
429/5xx/connection errors/timeouts/garbage bodies with exponential backoff and full
jitter, honouring `Retry-After`. Other 4xx are the caller's mistake and raise at once.

Constraints are sent in the server's own dialect (`rewardkit.backends.dialects`):
`server_kind="auto"` asks the first endpoint once, before the first constrained request,
what it is (a load-balanced pool is one kind of server); a form the server rejects
anyway is dropped for good and the dialect's next form is tried.

The bytes move through a `Transport` (`rewardkit.backends.transport`): aiohttp for every
URL, or a `MockTransport` in tests. Retries, backoff, balancing, detection and constraint
fallback sit above it and behave the same on both.

The object is created outside any event loop and pickled to trainer workers: the
transport's sessions and the semaphore are made lazily, one per event loop, and dropped
on pickling.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson

from rewardkit.backends._wire import completion_from_choice
from rewardkit.backends.base import Completion, Constraint, GenerateRequest
from rewardkit.backends.dialects import (
    SERVER_KINDS,
    Dialect,
    ServerKind,
    constraint_fields,
    detect_server,
    dialect_for,
    text_from_json,
)
from rewardkit.backends.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    AiohttpTransport,
    HTTPRequest,
    Transport,
)
from rewardkit.errors import (
    BackendConnectionError,
    BackendError,
    BackendHTTPError,
    BackendTimeoutError,
    ConfigError,
)

_dumps = orjson.dumps  # a core dependency, ~5x faster than json on these payloads
_loads = orjson.loads

__all__ = ["HTTPBackend"]

Balance = Literal["round_robin", "least_in_flight"]
ConstraintMode = Literal["auto", "send", "off"]
RegexField = Literal["structured_outputs", "guided_regex"]
#: "auto" and "aiohttp" both mean aiohttp (kept so existing configs still load).
TransportName = Literal["auto", "aiohttp"]

_RETRY_STATUS = frozenset({408, 409, 425, 429})  # plus every 5xx


class _Retryable(Exception):
    """An attempt failed in a way worth retrying; `error` is what to raise if out of tries."""

    def __init__(self, error: BackendError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class _FieldRejected(Exception):
    def __init__(self, form: str, error: BackendHTTPError) -> None:
        super().__init__(form)
        self.form = form
        self.error = error


@dataclass
class _LoopState:
    """What cannot cross event loops (or pickling): the semaphore and the counters."""

    semaphore: asyncio.Semaphore
    in_flight: list[int]
    #: Held while the server's kind is being asked, so concurrent first requests ask once.
    detecting: asyncio.Lock


def _transport(
    transport: TransportName | Transport,
    *,
    concurrency: int,
    timeout: float,
    max_response_bytes: int,
    trust_env: bool,
) -> Transport:
    """The transport an `HTTPBackend(transport=...)` option names (or is)."""
    if isinstance(transport, str):
        if transport == "lean":
            raise ConfigError(
                "transport='lean' was removed (aiohttp now carries every URL): "
                "drop the option or use 'auto'"
            )
        if transport not in ("auto", "aiohttp"):
            raise ConfigError(
                f"transport must be 'auto', 'aiohttp' or a Transport, got {transport!r}"
            )
        return AiohttpTransport(
            limit=concurrency,
            timeout=timeout,
            max_response_bytes=max_response_bytes,
            trust_env=trust_env,
        )
    if not isinstance(transport, Transport):
        raise ConfigError(
            "transport must be 'auto', 'aiohttp' or an object with async send() and aclose(), "
            f"got {type(transport).__name__}"
        )
    return transport


class HTTPBackend:
    """A judge served behind `/v1/chat/completions`.

    `base_url` is one URL or a list (load-balanced); `http://host:8000/v1`,
    `http://host:8000` and a full `.../chat/completions` URL are all accepted.
    `timeout` is seconds per attempt; `max_retries` counts attempts after the first.
    `server_kind` says which constraint dialect the server speaks ("llama_cpp": GBNF
    `grammar`; "vllm": `structured_outputs`, or `guided_*` before 0.10.2; "sglang":
    `regex`; "openai": a JSON-schema `response_format`; "generic": the constraint's own
    kind in every field servers use for it); "auto" asks the server once.
    `constraints`: "auto" sends the dialect's form and, when the server answers
    400/422/500 naming its field, drops that form for good and sends the next one the
    dialect has (none left: unconstrained); "send" never drops; "off" never sends.
    `regex_fields` narrows how a regex goes to vLLM and generic servers
    (`structured_outputs` and/or the legacy `guided_regex`).
    The API key comes from `api_key` or the `api_key_env` variable and is never logged.

    `concurrency` bounds requests in flight per event loop (each loop has its own session
    and semaphore; a process normally runs one).

    `transport`: "auto" (or "aiohttp", the same) sends every request through aiohttp with
    `trust_env` (proxies from the environment) and `max_response_bytes` (a body over it is
    a `BackendError`, not retried); a `Transport` object (a `MockTransport` in tests) is
    used as given, and closed by `aclose()`.
    """

    def __init__(
        self,
        base_url: str | Sequence[str] = "http://127.0.0.1:8000/v1",
        model: str = "default",
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 64,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_max: float = 60.0,
        balance: Balance = "round_robin",
        constraints: ConstraintMode = "auto",
        server_kind: ServerKind = "auto",
        regex_fields: Sequence[RegexField] = ("structured_outputs", "guided_regex"),
        extra_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        trust_env: bool = False,
        transport: TransportName | Transport = "auto",
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ConfigError("HTTPBackend needs at least one base_url")
        self.endpoints = [_endpoint(u) for u in urls]
        self.model = model
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
        if timeout <= 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {timeout}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if balance not in ("round_robin", "least_in_flight"):
            raise ConfigError(
                f"balance must be 'round_robin' or 'least_in_flight', got {balance!r}"
            )
        if constraints not in ("auto", "send", "off"):
            raise ConfigError(f"constraints must be 'auto', 'send' or 'off', got {constraints!r}")
        if server_kind not in SERVER_KINDS:
            raise ConfigError(
                f"server_kind must be one of {', '.join(SERVER_KINDS)}, got {server_kind!r}"
            )
        bad = [f for f in regex_fields if f not in ("structured_outputs", "guided_regex")]
        if bad:
            raise ConfigError(
                f"regex_fields may hold 'structured_outputs' and 'guided_regex', got {bad}"
            )
        #: The `transport` option as given; `_transport` is what carries the requests.
        self.transport = transport
        self._transport = _transport(
            transport,
            concurrency=concurrency,
            timeout=float(timeout),
            max_response_bytes=max_response_bytes,
            trust_env=trust_env,
        )
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.balance: Balance = balance
        self.constraints: ConstraintMode = constraints
        self.regex_fields = tuple(regex_fields)
        self.server_kind: ServerKind = server_kind
        #: The dialect constraints are sent in; None until "auto" has asked the server.
        self.dialect: Dialect | None = (
            None if server_kind == "auto" else dialect_for(server_kind, regex_fields=regex_fields)
        )
        self.extra_body = dict(extra_body or {})
        self.trust_env = trust_env
        self._headers = {"Content-Type": "application/json", **dict(headers or {})}
        key = api_key if api_key is not None else os.environ.get(api_key_env)
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        #: Constraint forms (`dialects.FORMS` names) a server rejected; never sent again.
        self.rejected_fields: set[str] = set()
        # Per constraint (by identity, held so the id stays its own): its fields, for the
        # dialect and number of rejections they were worked out for.
        self._fields_memo: dict[int, tuple[Constraint, tuple[Dialect, int], Any]] = {}
        #: Set once a server returned one choice for n > 1 (llama-cpp-python's server).
        self.server_ignores_n = False
        #: Counters for reports and benchmarks.
        self.attempts = 0
        self.retries = 0
        self._rr = 0
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        # The loop and state of the last call (held strongly, so `is` cannot match a new
        # loop that reuses a dead one's address).
        self._last: tuple[asyncio.AbstractEventLoop, _LoopState] | None = None

    def __repr__(self) -> str:  # never shows headers: they hold the API key
        return f"HTTPBackend(model={self.model!r}, endpoints={self.endpoints!r})"

    # -- pickling: semaphores belong to one loop; the transport drops its own sessions
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_states"]
        del state["_last"]
        state["_fields_memo"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._states = weakref.WeakKeyDictionary()
        self._last = None

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop:
            return last[1]  # the usual case: one loop, many requests
        state = self._states.get(loop)
        if state is None:
            state = _LoopState(
                asyncio.Semaphore(self.concurrency), [0] * len(self.endpoints), asyncio.Lock()
            )
            self._states[loop] = state
        self._last = (loop, state)
        return state

    async def aclose(self) -> None:
        """Close the transport's connections on this loop (other, finished loops' are dropped)."""
        loop = asyncio.get_running_loop()
        self._states.pop(loop, None)
        self._last = None
        await self._transport.aclose()

    # -- generate ----------------------------------------------------------------------
    async def generate(self, request: GenerateRequest) -> list[Completion]:
        if request.n < 1:
            raise ConfigError(f"n must be >= 1, got {request.n}")
        completions = await self._complete(request, request.n, request.seed)
        if len(completions) < request.n and len(completions) == 1 and request.n > 1:
            self.server_ignores_n = True
        # Top up a short answer. Different seeds, or a seeded server would repeat itself.
        while len(completions) < request.n:
            missing = request.n - len(completions)
            base_seed = None if request.seed is None else request.seed + len(completions)
            if self.server_ignores_n:
                batches = await asyncio.gather(
                    *(
                        self._complete(request, 1, None if base_seed is None else base_seed + i)
                        for i in range(missing)
                    )
                )
                for batch in batches:
                    completions.extend(batch)
            else:
                completions.extend(await self._complete(request, missing, base_seed))
        return completions[: request.n]

    async def _complete(
        self, request: GenerateRequest, n: int, seed: int | None
    ) -> list[Completion]:
        """One logical call: retries, backoff and constraint fallback around `_attempt`."""
        state = self._state()
        if self.dialect is None and request.constraint is not None and self.constraints != "off":
            await self._detect(state)
        retries = 0
        while True:
            body, sent, text_fields = self._body(request, n, seed)
            try:
                completions = await self._attempt(state, _dumps(body), request.top_logprobs, sent)
            except _FieldRejected as rejected:
                # A server that does not take this form: drop it and send the dialect's
                # next one, or none (the judge's parser still validates the text).
                self.rejected_fields.add(rejected.form)
            except _Retryable as failure:
                if retries >= self.max_retries:
                    raise failure.error from None
                retries += 1
                self.retries += 1
                await asyncio.sleep(self._wait(retries, failure.retry_after))
            else:
                if text_fields:  # a JSON-shaped answer stands for text: give the text
                    completions = [
                        replace(c, text=text_from_json(c.text, text_fields), logprobs=None)
                        for c in completions
                    ]
                return completions

    async def _detect(self, state: _LoopState) -> None:
        """Resolve `server_kind="auto"`: ask the first endpoint, once per backend."""
        async with state.detecting:
            if self.dialect is not None:  # another request asked while this one waited
                return
            kind, version = await detect_server(
                self.endpoints[0],
                {k: v for k, v in self._headers.items() if k != "Content-Type"},
                timeout=min(self.timeout, 10.0),
                transport=self._transport,
            )
            self.dialect = dialect_for(kind, version=version, regex_fields=self.regex_fields)

    def _wait(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max)
        # Full jitter: uniform over [0, capped exponential]; spreads a thundering herd.
        return random.uniform(0.0, min(self.backoff_max, self.backoff_base * 2 ** (retry - 1)))

    def _pick(self, state: _LoopState) -> int:
        count = len(self.endpoints)
        if count == 1:
            return 0
        start = self._rr % count
        self._rr += 1
        if self.balance == "round_robin":
            return start
        # least in flight; ties go round-robin so idle servers share the load
        return min(range(count), key=lambda i: (state.in_flight[i], (i - start) % count))

    async def _attempt(
        self,
        state: _LoopState,
        payload: bytes,
        top_logprobs: int | None,
        sent: Mapping[str, str],
    ) -> list[Completion]:
        async with state.semaphore:
            # Pick once a slot is free: a choice made while queued would be stale.
            index = self._pick(state)
            url = self.endpoints[index]
            state.in_flight[index] += 1
            self.attempts += 1
            try:
                response = await self._transport.send(
                    HTTPRequest("POST", url, payload, self._headers, self.timeout)
                )
            except (BackendTimeoutError, BackendConnectionError) as exc:
                raise _Retryable(exc) from None
            finally:
                state.in_flight[index] -= 1

        status = response.status
        raw = response.content
        if status != 200:
            message = _error_message(raw)
            error = BackendHTTPError(status, f"{message} (from {url})")
            # Checked before retrying 5xx: llama-cpp-python's server answers a field it
            # cannot take (response_format json_schema) with a 500 naming the field.
            if status in (400, 422, 500) and self.constraints == "auto":
                rejected = next((form for f, form in sent.items() if f in message), None)
                if rejected is not None:
                    raise _FieldRejected(rejected, error)
            if status in _RETRY_STATUS or status >= 500:
                raise _Retryable(error, _parse_retry_after(response.header("Retry-After")))
            raise error
        try:
            body = _loads(raw)
            choices = body["choices"]
            if len(choices) > 1:
                choices = sorted(choices, key=lambda c: c.get("index", 0))
            completions = [completion_from_choice(c, top_logprobs) for c in choices]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            snippet = raw[:200].decode("utf-8", "replace")
            raise _Retryable(
                BackendError(f"invalid response body from {url} ({exc!r}): {snippet!r}")
            ) from None
        if not completions:
            raise _Retryable(BackendError(f"response from {url} has no choices"))
        return completions

    def _constraint_fields(
        self, constraint: Constraint
    ) -> tuple[dict[str, Any], dict[str, str], tuple[str, ...]]:
        """`constraint_fields` for this backend's dialect and rejections, worked out once per
        constraint (a judge sends the same one on every request) until either changes."""
        dialect = self.dialect or dialect_for("generic", regex_fields=self.regex_fields)
        state = (dialect, len(self.rejected_fields))  # rejections only ever grow
        entry = self._fields_memo.get(id(constraint))
        if entry is not None and entry[0] is constraint and entry[1] == state:
            return entry[2]
        result = constraint_fields(constraint, dialect, self.rejected_fields)
        if len(self._fields_memo) >= 64:
            self._fields_memo.clear()
        self._fields_memo[id(constraint)] = (constraint, state, result)
        return result

    def _body(
        self, request: GenerateRequest, n: int, seed: int | None
    ) -> tuple[dict[str, Any], dict[str, str], tuple[str, ...]]:
        """The request body, the constraint form sent per field, and the JSON answer's
        text fields (empty unless a JSON form stands for a text shape)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(request.messages),
            "n": n,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
        }
        if seed is not None:
            body["seed"] = seed
        if request.stop:
            body["stop"] = list(request.stop)
        if request.top_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = request.top_logprobs
        sent: dict[str, str] = {}
        text_fields: tuple[str, ...] = ()
        if request.constraint is not None and self.constraints != "off":
            fields, sent, text_fields = self._constraint_fields(request.constraint)
            body.update(fields)
        body.update(self.extra_body)
        return body, sent, text_fields


def _endpoint(base_url: str) -> str:
    base = base_url.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"base_url must look like http://host:port/v1, got {base_url!r}")
    if base.endswith("/chat/completions"):
        return base
    if parts.path in ("", "/"):
        return base + "/v1/chat/completions"
    return base + "/chat/completions"


def _error_message(raw: bytes) -> str:
    """The server's own words: OpenAI/vLLM `{"error": {"message"}}`, FastAPI `{"detail"}`."""
    try:
        body = _loads(raw)
    except ValueError:
        return raw[:500].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("error", "detail", "message"):
            if body.get(key):
                value = body[key]
                return value if isinstance(value, str) else json.dumps(value)[:500]
    return raw[:500].decode("utf-8", "replace")


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
