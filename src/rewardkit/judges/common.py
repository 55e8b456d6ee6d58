"""What the pointwise and pairwise judges share: request failures, query keys, constraint kind."""

from __future__ import annotations

from typing import Literal

from rewardkit.backends.base import constraint_kinds
from rewardkit.errors import BackendError
from rewardkit.judges.data import JudgeQuery
from rewardkit.judges.templates import make_nonce

__all__ = ["REQUEST_FAILURES", "query_key", "resolve_constraint_kind"]

#: Failures a backend may surface for one request; anything else is a bug and propagates.
REQUEST_FAILURES: tuple[type[BaseException], ...] = (
    BackendError,
    TimeoutError,
    ConnectionError,
    OSError,
)


def query_key(query: JudgeQuery) -> str:
    """What fixes a query's plan (orders, seeds, fences): its id, else its content."""
    if query.id is not None:
        return f"id:{query.id}"
    return "content:" + make_nonce(query.prompt, query.responses, query.reference)


def resolve_constraint_kind(
    backend: object, kind: Literal["auto", "regex", "grammar"]
) -> Literal["regex", "grammar"]:
    """Resolve "auto" from what the backend says it enforces (`constraint_kinds`): GBNF for
    one that takes a grammar but no regex (in-process llama.cpp), else a regex (servers:
    vLLM, SGLang, llama-server)."""
    if kind != "auto":
        return kind
    kinds = constraint_kinds(backend)
    return "grammar" if "grammar" in kinds and "regex" not in kinds else "regex"
