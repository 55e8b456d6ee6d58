"""The judge's data: what goes in (`JudgeQuery`, `JudgeConfig`) and what comes out.

Scores inside a `Judgment` are already mapped back to *input* order, whatever order the
judge saw the responses in; `order` records what it saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

from rewardkit.errors import ConfigError, InputError
from rewardkit.judges.templates import JudgeMode, ResponseView

__all__ = ["JudgeConfig", "JudgeQuery", "JudgeResult", "Judgment", "ReducerName"]

#: A registered reducer name (`rewardkit.judges.voting.available_reducers()`).
ReducerName = str


@dataclass(frozen=True)
class JudgeQuery:
    """One query and the responses to judge together (one, two, or many)."""

    prompt: str
    responses: tuple[str, ...]
    reference: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.responses, str):
            raise TypeError("JudgeQuery.responses must be a tuple of strings, not one string")
        if not isinstance(self.responses, tuple):
            object.__setattr__(self, "responses", tuple(self.responses))
        if not self.responses:
            raise InputError("JudgeQuery needs at least one response")


@dataclass(frozen=True)
class JudgeConfig:
    """How a pointwise judge samples, parses and votes. Validated on construction."""

    mode: JudgeMode = "helpfulness"
    #: k: judgments sampled per query (inference-time scaling).
    samples: int = 1
    temperature: float = 0.5
    max_tokens: int = 1024
    #: How the valid samples' scores combine per response.
    reducer: ReducerName = "sum"
    #: Meta-RM top-k: only the `keep` best-rated judgments vote (needs a meta RM).
    keep: int | None = None
    #: User principles (appended to the criteria) or, in "rubric" mode, the rubric itself.
    principles: str | None = None
    #: A user template (see `rewardkit.judges.templates.PLACEHOLDERS`).
    template: str | None = None
    #: Show responses in a different order per sample, as SPCT does, against position bias.
    shuffle: bool = True
    seed: int = 0
    #: Larger groups are judged in chunks of at most this many responses.
    max_responses: int = 8
    #: Ask the backend to force the `Scores: \boxed{...}` shape (where it can).
    constrain: bool = True
    #: "auto": GBNF for in-process llama.cpp (which cannot enforce a regex), else regex.
    constraint_kind: Literal["auto", "regex", "grammar"] = "auto"
    #: Expected score from the score tokens' logprobs (finer than the sampled integer).
    use_logprobs: bool = False
    top_logprobs: int = 20
    #: What the judge sees of a response: "auto" is the summary after `</think>` except
    #: in harmlessness mode, which reads the whole response.
    view: ResponseView = "auto"

    def __post_init__(self) -> None:
        def bad(message: str) -> ConfigError:
            return ConfigError(f"judge config: {message}")

        if self.mode not in get_args(JudgeMode):
            raise bad(f"mode must be one of {', '.join(get_args(JudgeMode))}, got {self.mode!r}")
        from rewardkit.judges.voting import get_reducer  # voting imports this module

        try:
            get_reducer(self.reducer)
        except ConfigError as exc:
            raise bad(str(exc)) from None
        if self.view not in get_args(ResponseView):
            raise bad(f"view must be one of {', '.join(get_args(ResponseView))}, got {self.view!r}")
        if self.constraint_kind not in ("auto", "regex", "grammar"):
            raise bad(
                f"constraint_kind must be 'auto', 'regex' or 'grammar', got {self.constraint_kind!r}"
            )
        for name in ("samples", "max_tokens", "max_responses", "top_logprobs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.temperature, int | float) or not (
            math.isfinite(self.temperature) and self.temperature >= 0
        ):
            raise bad(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if self.keep is not None and (
            isinstance(self.keep, bool) or not isinstance(self.keep, int) or self.keep < 1
        ):
            raise bad(f"keep (meta-RM top k) must be a positive integer, got {self.keep!r}")
        if self.mode == "rubric" and not (self.principles and self.principles.strip()):
            raise bad("mode 'rubric' needs `principles` (the rubric text)")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> JudgeConfig:
        """Build from a dict, naming unknown keys (for specs and the CLI)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"unknown judge option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"
            )
        return cls(**options)


@dataclass(frozen=True)
class Judgment:
    """One sampled judge output, parsed.

    `order[i]` is the input index of the response shown i-th. `scores` are in input order
    over the responses this judgment saw (sorted input indices of `order`; for an unchunked
    query that is simply input order), or None when the output had no valid verdict —
    `error` then holds the reason code and `text` the raw output.
    """

    text: str
    reasoning: str | None
    principles: str | None
    critique: str | None
    order: tuple[int, ...]
    scores: tuple[int, ...] | None
    error: str | None
    meta_score: float | None = None
    expected_scores: tuple[float, ...] | None = None

    @property
    def valid(self) -> bool:
        return self.scores is not None

    @property
    def indices(self) -> tuple[int, ...]:
        """Input indices that `scores` / `expected_scores` refer to, in that order."""
        return tuple(sorted(self.order))

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": list(self.order),
            "scores": None if self.scores is None else list(self.scores),
            "expected_scores": None
            if self.expected_scores is None
            else [round(x, 4) for x in self.expected_scores],
            "error": self.error,
            "meta_score": self.meta_score,
            "principles": self.principles,
            "critique": self.critique,
            "reasoning": self.reasoning,
            "text": self.text,
        }


@dataclass(frozen=True)
class JudgeResult:
    """The vote for one query: a reward per response (input order) and every judgment."""

    id: str | None
    rewards: tuple[float | None, ...]
    judgments: tuple[Judgment, ...]
    valid: int
    error: str | None = None
    #: Judgments that voted (after meta-RM filtering), as indices into `judgments`.
    voters: tuple[int, ...] = ()
    #: Problems that did not stop the vote (a failed meta RM, one failed request of several).
    warnings: tuple[str, ...] = ()

    def sample_scores(self, index: int) -> list[int | None]:
        """Every judgment's score for input response `index` (None where invalid)."""
        out: list[int | None] = []
        for judgment in self.judgments:
            if index not in judgment.order:
                continue
            if judgment.scores is None:
                out.append(None)
            else:
                out.append(judgment.scores[judgment.indices.index(index)])
        return out

    def per_response(self) -> list[dict[str, Any]]:
        """For each input response: its reward, every sample's score, how many were valid."""
        out = []
        for index, reward in enumerate(self.rewards):
            scores = self.sample_scores(index)
            out.append(
                {
                    "reward": reward,
                    "scores": scores,
                    "valid": sum(1 for s in scores if s is not None),
                    "voted": sum(1 for v in self.voters if index in self.judgments[v].order),
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for output lines."""
        return {
            "id": self.id,
            "rewards": list(self.rewards),
            "valid": self.valid,
            "samples": len(self.judgments),
            "error": self.error,
            "warnings": list(self.warnings),
            "voters": list(self.voters),
            "responses": self.per_response(),
            "judgments": [j.to_dict() for j in self.judgments],
        }
