"""The FastAPI app: OpenRLHF's `POST /get_reward`, native `POST /v1/rewards`, health, metrics.

Every request goes through `_Guard` (bearer token, body size limit, request metrics) before
FastAPI parses it, then its samples go through one shared `MicroBatcher` into
`Scorer.ascore`. A sample that cannot be scored comes back unscored with its reason; user
mistakes are 4xx with a message naming the field; only a bug is a 500.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel

from rewardkit import __version__
from rewardkit.errors import MissingDependencyError
from rewardkit.integrations.openrlhf_protocol import openrlhf_payload
from rewardkit.registry import resolve_factory
from rewardkit.scoring import RewardReport, Scorer
from rewardkit.server.batching import MicroBatcher
from rewardkit.server.config import ServerConfig
from rewardkit.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from rewardkit.server.metrics import Metrics
from rewardkit.server.schemas import (
    ErrorBody,
    GetRewardRequest,
    GetRewardResponse,
    HealthResponse,
    RewardsRequest,
    RewardsResponse,
)
from rewardkit.types import Sample, Unscored

try:
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.requests import Request
    from fastapi.responses import JSONResponse, PlainTextResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from rewardkit.server.prepare import TooManySamples, prepare_get_reward, prepare_rewards
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("fastapi", "server", "rewardkit serve") from exc

__all__ = ["ServerConfig", "create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths reachable without the token: load balancers and orchestrators probe it.
OPEN_PATHS = frozenset({"/health"})
#: Paths reported by name in metrics; anything else is "other" (bounded label values).
KNOWN_PATHS = frozenset(
    {"/get_reward", "/v1/rewards", "/health", "/metrics", "/docs", "/openapi.json"}
)


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body = ErrorBody(error=code, message=message, **extra).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status)


class _Service:
    """The scorer, its micro-batcher and the metrics, shared by every request of one app."""

    def __init__(self, scorer: Scorer, config: ServerConfig, metrics: Metrics) -> None:
        self.scorer = scorer
        self.config = config
        self.metrics = metrics
        self.labels = [entry.label for entry in scorer.spec.rewards]
        self.judge_labels = {e.label for e in scorer.spec.rewards if _is_judge(e.reward)}
        self._batcher: MicroBatcher[Sample, RewardReport] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _batcher_for_loop(self) -> MicroBatcher[Sample, RewardReport]:
        # Built inside the running loop (asyncio primitives belong to one loop); a new loop,
        # as each TestClient session starts, gets a new batcher.
        loop = asyncio.get_running_loop()
        if self._batcher is None or self._loop is not loop:
            self._batcher = MicroBatcher(
                self.scorer.ascore,
                _unscored_batch,
                max_samples=self.config.batch_max_samples,
                window_s=self.config.batch_window_s,
                max_inflight=self.config.max_inflight_batches,
                on_batch=self._record_batch,
            )
            self._loop = loop
        return self._batcher

    def _record_batch(self, size: int, seconds: float) -> None:
        self.metrics.batches.inc()
        self.metrics.batch_size.observe(size)
        self.metrics.batch_latency.observe(seconds)

    async def score(self, samples: list[Sample], endpoint: str) -> list[RewardReport]:
        reports = await self._batcher_for_loop().submit(samples)
        metrics = self.metrics
        metrics.samples.labels(endpoint).inc(len(samples))
        unscored = sum(1 for r in reports if not r.scored)
        if unscored:
            metrics.unscored.labels(endpoint).inc(unscored)
        for report in reports:
            if not report.components and report.reason:
                metrics.component_unscored.labels("", report.reason.split(":", 1)[0]).inc()
            for label, result in report.components.items():
                if isinstance(result, Unscored):
                    metrics.component_unscored.labels(label, result.reason).inc()
                    if label in self.judge_labels:
                        metrics.judge_errors.labels(label, result.reason).inc()
        return reports

    async def aclose(self) -> None:
        if self._batcher is not None:
            await self._batcher.aclose()


def _is_judge(reward: str) -> bool:
    """A judge reward: registered as "judge", or a class whose `name` says so."""
    if reward == "judge":
        return True
    try:
        return getattr(resolve_factory(reward), "name", None) == "judge"
    except Exception:  # already built by the Scorer, so this cannot really fail
        return False


def _unscored_batch(samples: Sequence[Sample], exc: BaseException) -> list[RewardReport]:
    reason = f"error: scoring failed: {type(exc).__name__}: {exc}"
    return [RewardReport(None, {}, {}, reason=reason) for _ in samples]


def _request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint that parses `model` itself (off the event loop)."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _with_request_schemas(app: FastAPI, models: Sequence[type[BaseModel]]) -> None:
    """Add the schemas `_request_body` refers to; FastAPI only lists models it parses itself."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                found = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(found.pop("$defs", {}))
                components[model.__name__] = found
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _too_many(n: int, limit: int) -> JSONResponse:
    return _error(
        413,
        "too_many_samples",
        f"request has {n} samples but this server accepts at most {limit} per request "
        "(--max-batch); split it into smaller requests",
    )


def create_app(scorer: Scorer, config: ServerConfig | None = None) -> FastAPI:
    """The reward service for `scorer`. The caller keeps ownership of the scorer (closes it)."""
    config = config or ServerConfig()
    metrics = Metrics()
    service = _Service(scorer, config, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        await service.aclose()

    app = FastAPI(
        title="rewardkit reward service",
        version=__version__,
        description="Rule and judge rewards over HTTP: OpenRLHF's remote reward protocol "
        "(`POST /get_reward`) and a native endpoint with per-reward details.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.metrics = metrics

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_describe(err) for err in exc.errors()[:50]]
        problems = "; ".join(f"{e['field']}: {e['msg']}" for e in errors[:10])
        if "json" not in request.headers.get("content-type", ""):
            problems += " (send the body as JSON with 'Content-Type: application/json')"
        return _error(422, "invalid_request", problems, detail=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and request.method == "POST":
            # FastAPI's answer to a body it cannot even decode (bad encoding): still bad JSON.
            return _error(
                422, "invalid_request", f"body: request body is not valid JSON ({exc.detail})"
            )
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:  # a bug, not the user's
        return _error(500, "internal_error", f"{type(exc).__name__}: {exc}")

    @app.post(
        "/get_reward",
        response_model=GetRewardResponse,
        responses={413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
        summary="OpenRLHF remote reward protocol",
        openapi_extra=_request_body(GetRewardRequest),
    )
    async def get_reward(request: Request) -> Any:
        body = await request.body()
        try:
            samples = await run_in_threadpool(prepare_get_reward, body, config.max_batch)
        except TooManySamples as exc:
            return _too_many(exc.count, config.max_batch)
        reports = await service.score(samples, "/get_reward")
        return JSONResponse(openrlhf_payload(reports, fill_value=config.fill_value))

    @app.post(
        "/v1/rewards",
        response_model=RewardsResponse,
        responses={413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
        summary="Score rewardkit samples, with per-reward details",
        openapi_extra=_request_body(RewardsRequest),
    )
    async def rewards(request: Request) -> Any:
        raw = await request.body()
        try:
            body, samples = await run_in_threadpool(prepare_rewards, raw, config.max_batch)
        except TooManySamples as exc:
            return _too_many(exc.count, config.max_batch)
        reports = await service.score(samples, "/v1/rewards")
        scored = sum(1 for r in reports if r.scored)
        remaining = iter(reports)
        results: list[dict[str, Any]] = []
        for item in body.samples:
            if item.responses is None:
                results.append({"id": item.id, **_result(next(remaining))})
            else:
                results.append(
                    {"id": item.id, "responses": [_result(next(remaining)) for _ in item.responses]}
                )
        return JSONResponse(
            {"results": results, "scored": scored, "unscored": len(samples) - scored}
        )

    @app.get("/health", response_model=HealthResponse)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "rewards": service.labels, "version": __version__}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics_text() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    _with_request_schemas(app, [GetRewardRequest, RewardsRequest])
    # Starlette's add_middleware expects a class; _Guard wraps the whole app instead.
    app.add_middleware(_GuardMiddleware, config=config, metrics=metrics)
    return app


def _describe(err: Mapping[str, Any]) -> dict[str, Any]:
    """One validation error without its `input` (it may be the whole, huge body)."""
    loc = [str(p) for p in err.get("loc", ())]
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    if err.get("type") == "json_invalid":
        # loc is ("body", character offset); the decoder's own words say what is wrong.
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        msg = f"request body is not valid JSON{where}: {(err.get('ctx') or {}).get('error', msg)}"
        loc = ["body"]
    elif err.get("type") == "missing" and loc == ["body"]:
        msg = "request body is empty; send a JSON object"
    return {"field": ".".join(loc) or "body", "msg": msg, "type": str(err.get("type", ""))}


def _result(report: RewardReport) -> dict[str, Any]:
    return {"reward": report.reward, "reason": report.reason, "details": report.details()}


class _GuardMiddleware:
    """Pure ASGI: token check, body size limit, request count and latency, before any parsing.

    The body is read here, at most `max_body_bytes` of it, and replayed to the app: a client
    sending chunked bodies without Content-Length cannot get past the limit either.
    """

    def __init__(self, app: ASGIApp, config: ServerConfig, metrics: Metrics) -> None:
        self.app = app
        self.config = config
        self.metrics = metrics
        self._token = config.token.encode() if config.token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in KNOWN_PATHS else "other"
        status = 500
        start = time.perf_counter()

        async def send_tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._handle(scope, receive, send_tracked, path)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self._token is not None and path not in OPEN_PATHS and not self._authorized(headers):
            await _send_json(
                send,
                401,
                {
                    "error": "unauthorized",
                    "message": "missing or wrong bearer token; send "
                    "'Authorization: Bearer <token>' with the server's token",
                },
                extra_headers=[(b"www-authenticate", b"Bearer")],
            )
            return
        limit = self.config.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                await _send_json(
                    send, 400, {"error": "bad_request", "message": "invalid Content-Length header"}
                )
                return
            if too_big:
                await _send_json(send, 413, _body_too_large(limit))
                return
        try:
            async with asyncio.timeout(self.config.body_timeout_s):
                body = await _read_body(receive, limit)
        except TimeoutError:
            # A body slower than the deadline holds a connection for nothing: drop it.
            message = (
                f"request body not received within {self.config.body_timeout_s:g} s "
                "(--body-timeout); send the whole body at once"
            )
            await _send_json(
                send,
                408,
                {"error": "body_timeout", "message": message},
                [(b"connection", b"close")],
            )
            return
        if body is None:  # the client went away
            return
        if len(body) > limit:
            await _send_json(send, 413, _body_too_large(limit))
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _authorized(self, headers: dict[str, bytes]) -> bool:
        assert self._token is not None
        value = headers.get("authorization", b"")
        scheme, _, credentials = value.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        # Constant-time: a timing side channel must not leak the token byte by byte.
        return hmac.compare_digest(credentials.strip(), self._token)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or its first chunks once past `limit` (the caller answers 413); None
    when the client disconnects."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > limit or not message.get("more_body", False):
            return b"".join(chunks)


def _body_too_large(limit: int) -> dict[str, str]:
    return {
        "error": "body_too_large",
        "message": f"request body exceeds {limit / 2**20:g} MiB (--max-body-mb); "
        "send fewer samples per request",
    }


async def _send_json(
    send: Send,
    status: int,
    body: dict[str, Any],
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers + (extra_headers or []),
        }
    )
    await send({"type": "http.response.body", "body": data})
