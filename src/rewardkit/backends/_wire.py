"""The OpenAI chat-completion wire shape, shared by the HTTP and llama.cpp backends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rewardkit.backends.base import Completion, TokenLogprob

__all__ = ["completion_from_choice", "parse_logprobs"]


def completion_from_choice(choice: Mapping[str, Any], top_logprobs: int | None) -> Completion:
    message = choice.get("message") or {}
    text = message.get("content")
    if text is None:
        text = choice.get("text") or ""  # some servers answer in completions shape
    logprobs = parse_logprobs(choice.get("logprobs")) if top_logprobs else None
    return Completion(text=str(text), finish_reason=choice.get("finish_reason"), logprobs=logprobs)


def parse_logprobs(data: Any) -> tuple[TokenLogprob, ...] | None:
    """Chat shape `{"content": [{token, logprob, top_logprobs: [...]}]}`, or the legacy
    completions shape `{"tokens", "token_logprobs", "top_logprobs": [{tok: lp}]}`."""
    if not isinstance(data, Mapping):
        return None
    content = data.get("content")
    if isinstance(content, list):
        return tuple(
            TokenLogprob(
                token=str(item["token"]),
                logprob=float(item["logprob"]),
                top={str(t["token"]): float(t["logprob"]) for t in item.get("top_logprobs") or ()},
            )
            for item in content
        )
    tokens, values = data.get("tokens"), data.get("token_logprobs")
    if isinstance(tokens, list) and isinstance(values, list):
        tops = data.get("top_logprobs") or [None] * len(tokens)
        return tuple(
            TokenLogprob(
                token=str(tok),
                logprob=float(lp) if lp is not None else float("-inf"),
                top={str(k): float(v) for k, v in (top or {}).items()},
            )
            for tok, lp, top in zip(tokens, values, tops, strict=False)
        )
    return None
