"""The backend contract: where judge text comes from.

A backend has one async method, `generate`, that returns exactly `request.n` completions
for one chat request or raises a `BackendError` after its own retries. Everything else —
prompt templates, parsing, voting, caching — lives above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "Backend",
    "Completion",
    "Constraint",
    "ConstraintKind",
    "GenerateRequest",
    "Message",
    "TokenLogprob",
    "constraint_kinds",
]

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
ConstraintKind = Literal["regex", "grammar", "json_schema"]


@dataclass(frozen=True, slots=True)
class Constraint:
    """A shape the output must take, where the backend can enforce it.

    `kind="regex"` or `"grammar"` (GBNF) or `"json_schema"`; backends that cannot enforce a
    kind ignore it (the parser still validates the text). `alternatives` say the same
    shape in other kinds, for backends and servers that enforce one of those instead
    (llama.cpp takes GBNF, not a regex; OpenAI a JSON schema): each uses the first form it
    can. `text_fields` (json_schema only) names the string fields whose values, one per
    line, are the text the caller reads, so a text parser works on a JSON answer too.
    """

    kind: Literal["regex", "grammar", "json_schema"]
    value: str | dict[str, Any]
    alternatives: tuple[Constraint, ...] = ()
    text_fields: tuple[str, ...] = ()

    def forms(self) -> tuple[Constraint, ...]:
        """This shape and its alternatives, in order of preference."""
        return (self, *self.alternatives)


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """One chat request for `n` sampled completions.

    Every field changes the output, so every field belongs in a cache key.
    """

    messages: tuple[Message, ...]
    n: int = 1
    temperature: float = 0.5
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None
    stop: tuple[str, ...] = ()
    constraint: Constraint | None = None
    top_logprobs: int | None = None  # ask for this many alternatives per token, if supported


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)  # alternative token -> logprob


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None


@runtime_checkable
class Backend(Protocol):
    """Produces judge text. Implementations bound their own concurrency and time out every call.

    Optional capability: `constraint_kinds`, the `Constraint` kinds the backend enforces,
    preferred first (read it with `constraint_kinds(backend)`). Wrappers (the cache, the
    eval cost meter) forward their inner backend's.
    """

    #: Identifies the model for cache keys and reports (e.g. "qwen2.5-7b-instruct").
    model: str

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        """Exactly `request.n` completions, or raise `BackendError`."""
        ...

    async def aclose(self) -> None:
        """Release connections, processes or models."""
        ...


#: What a backend that declares nothing is taken to enforce: a server taking a regex.
DEFAULT_CONSTRAINT_KINDS: tuple[ConstraintKind, ...] = ("regex",)


def constraint_kinds(backend: object) -> tuple[ConstraintKind, ...]:
    """The constraint kinds `backend` enforces, preferred first (its `constraint_kinds`)."""
    return tuple(getattr(backend, "constraint_kinds", DEFAULT_CONSTRAINT_KINDS))
