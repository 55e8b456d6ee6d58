"""Request bodies to `Sample`s, run in a worker thread so the event loop keeps serving.

A 32 MiB body costs real CPU: JSON parsing, validation, and for OpenRLHF queries cutting
the response out and stripping special tokens. Done on the event loop, that time is a
stall for every other connection, `/health` included. `prepare_get_reward` and
`prepare_rewards` are plain functions the app runs in Starlette's thread pool
(`run_in_threadpool`); their user errors come back as `RequestValidationError` (the app's
422) or `TooManySamples` (413).

The body is parsed by pydantic's JSON parser straight into the request model: one pass,
no intermediate `dict`, and a JSON string with a lone surrogate (`"\\ud800"`, which no
UTF-8 text can hold) is rejected there as invalid JSON instead of failing later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from rewardkit.integrations.openrlhf_protocol import openrlhf_sample
from rewardkit.server.schemas import GetRewardRequest, RewardsRequest
from rewardkit.types import Sample

__all__ = ["TooManySamples", "prepare_get_reward", "prepare_rewards"]


class TooManySamples(Exception):
    """More samples in one request than the server accepts."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


def _validate(model: type[BaseModel], body: bytes) -> Any:
    if not body.strip():
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required"}]
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [_explained(e) for e in exc.errors(include_url=False, include_input=False)]
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def _explained(error: Any) -> Any:
    """A lone surrogate escape gets a message that names it ("end of hex escape" does not)."""
    ctx = error.get("ctx") or {}
    text = str(ctx.get("error", ""))
    if error.get("type") == "json_invalid" and ("surrogate" in text or "hex escape" in text):
        hint = (
            "; a \\uD800-\\uDFFF escape must be half of a surrogate pair: a lone surrogate "
            "is not Unicode text, so fix or drop it"
        )
        return {**error, "ctx": {**ctx, "error": text + hint}}
    return error


def prepare_get_reward(body: bytes, max_batch: int) -> list[Sample]:
    """Samples of an OpenRLHF `/get_reward` body (ids are the query positions)."""
    request: GetRewardRequest = _validate(GetRewardRequest, body)
    n = len(request.query)
    if n > max_batch:
        raise TooManySamples(n)
    prompts: Sequence[str | None] = request.prompts if request.prompts is not None else [None] * n
    labels = request.labels if request.labels is not None else [None] * n
    sources = request.datasources if request.datasources is not None else [None] * n
    return [
        openrlhf_sample(query, prompt, label, id=str(i), data_source=source)
        for i, (query, prompt, label, source) in enumerate(
            zip(request.query, prompts, labels, sources, strict=True)
        )
    ]


def prepare_rewards(body: bytes, max_batch: int) -> tuple[RewardsRequest, list[Sample]]:
    """The parsed `/v1/rewards` body and one sample per response, in order."""
    request: RewardsRequest = _validate(RewardsRequest, body)
    n = sum(s.size for s in request.samples)
    if n > max_batch:
        raise TooManySamples(n)
    samples = [s for i, item in enumerate(request.samples, 1) for s in item.to_samples(i)]
    return request, samples
