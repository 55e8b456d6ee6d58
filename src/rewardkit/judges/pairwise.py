"""A pairwise judge that asks both orders: the position-swap baseline.

LLM judges prefer a position; asking "A vs B" and "B vs A" and counting wins cancels that
bias on average and exposes it (`consistent` is False when the two orders disagree). It
is the baseline the pointwise judge is compared with, and a judge of its own for pairs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from rewardkit.backends.base import Backend, Constraint, GenerateRequest
from rewardkit.errors import ConfigError
from rewardkit.judges.common import REQUEST_FAILURES, query_key, resolve_constraint_kind
from rewardkit.judges.constrain import bounded_grammar
from rewardkit.judges.data import JudgeConfig, JudgeQuery
from rewardkit.judges.parsing import parse_preference
from rewardkit.judges.templates import (
    PromptBuilder,
    load_template,
    make_nonce,
    response_view,
    validate_template,
)

__all__ = ["PairJudgment", "PairwiseJudge", "PairwiseResult"]

# The verdict on a line of its own (the parser reads verdict lines only), after free text
# (regex: servers) or after an `Analysis:` section bounded like the pointwise judge's
# (grammar: in-process llama.cpp, where small judges otherwise loop until max_tokens).
_VERDICT_REGEX = r"(?:[\s\S]*(?:\n|</think>))?Verdict: \[\[[12]\]\]"
_VERDICT_GRAMMAR = bounded_grammar('"Verdict: [[" [12] "]]"', criteria=False)


@dataclass(frozen=True)
class PairJudgment:
    """One sampled comparison. `order` is (shown first, shown second) as input indices;
    `winner` is the input index judged better, None when invalid (`error` says why)."""

    text: str
    reasoning: str | None
    critique: str | None
    order: tuple[int, int]
    winner: int | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": list(self.order),
            "winner": self.winner,
            "error": self.error,
            "critique": self.critique,
            "reasoning": self.reasoning,
            "text": self.text,
        }


@dataclass(frozen=True)
class PairwiseResult:
    """Win rates of the two responses (input order) over the valid comparisons."""

    id: str | None
    rewards: tuple[float | None, float | None]
    preferred: int | None  # input index with more wins; None on a tie or no valid verdict
    consistent: bool | None  # do both orders' majorities pick the same response?
    judgments: tuple[PairJudgment, ...]
    valid: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rewards": list(self.rewards),
            "preferred": self.preferred,
            "consistent": self.consistent,
            "valid": self.valid,
            "samples": len(self.judgments),
            "error": self.error,
            "judgments": [j.to_dict() for j in self.judgments],
        }


class PairwiseJudge:
    """Compares two responses in both orders, `config.samples` samples per order."""

    def __init__(self, backend: Backend, config: JudgeConfig | None = None) -> None:
        self.backend = backend
        self.config = config if config is not None else JudgeConfig()
        if self.config.keep is not None:
            raise ConfigError("the pairwise judge has no meta RM; leave `keep` unset")
        base = PromptBuilder.create(
            # Reference mode: the reference travels inside the query text (see `judge`).
            "helpfulness" if self.config.mode == "reference" else self.config.mode,
            principles=self.config.principles,
            view=self.config.view,
        )
        if self.config.mode == "reference":
            base = replace(base, criteria=load_template("criteria_reference").strip())
        template = self.config.template
        self.prompts = replace(
            base,
            template=validate_template(template) if template else load_template("pairwise"),
        )

    async def judge(self, query: JudgeQuery) -> PairwiseResult:
        if len(query.responses) != 2:
            raise ValueError(
                f"PairwiseJudge compares exactly 2 responses, got {len(query.responses)}"
            )
        if self.config.mode == "reference" and query.reference is None:
            return PairwiseResult(
                query.id,
                (None, None),
                None,
                None,
                (),
                0,
                "missing_reference: reference mode needs a reference",
            )
        key = query_key(query)
        batches = await asyncio.gather(self._ask(query, key, (0, 1)), self._ask(query, key, (1, 0)))
        judgments = tuple(j for batch, _ in batches for j in batch)
        failures = [f for _, f in batches if f is not None]
        valid = [j for j in judgments if j.winner is not None]
        if not valid:
            error = f"backend_error: {failures[0]}" if len(failures) == 2 else "no_valid_judgment"
            return PairwiseResult(query.id, (None, None), None, None, judgments, 0, error)
        wins = [sum(1 for j in valid if j.winner == i) for i in (0, 1)]
        rates = (wins[0] / len(valid), wins[1] / len(valid))
        preferred = None if wins[0] == wins[1] else (0 if wins[0] > wins[1] else 1)
        return PairwiseResult(query.id, rates, preferred, _consistent(valid), judgments, len(valid))

    def _constraint(self) -> Constraint:
        return _verdict_constraint(
            resolve_constraint_kind(self.backend, self.config.constraint_kind)
        )

    async def _ask(
        self, query: JudgeQuery, key: str, order: tuple[int, int]
    ) -> tuple[list[PairJudgment], str | None]:
        config = self.config
        shown = [query.responses[i] for i in order]
        nonce = make_nonce("pair-fence", config.seed, key, query.prompt, tuple(shown), order)
        prompt_text = query.prompt
        if config.mode == "reference":
            prompt_text = f"{query.prompt}\n\n[Reference answer]\n{query.reference}"
        prompt = self.prompts.render(prompt_text, shown, nonce, query.reference)
        request = GenerateRequest(
            messages=({"role": "user", "content": prompt},),
            n=config.samples,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            seed=int(make_nonce("pair-seed", config.seed, key, order), 16) % (2**31),
            constraint=self._constraint() if config.constrain else None,
        )
        try:
            completions = await self.backend.generate(request)
        except REQUEST_FAILURES as exc:
            failed = PairJudgment("", None, None, order, None, "backend_error")
            return [failed] * config.samples, f"{type(exc).__name__}: {exc}"
        views = [response_view(text, self.prompts.view) for text in shown]
        out = []
        for completion in completions:
            parsed = parse_preference(completion.text, responses=views, nonce=nonce)
            winner = None if parsed.winner is None else order[parsed.winner]
            out.append(
                PairJudgment(
                    completion.text, parsed.reasoning, parsed.critique, order, winner, parsed.error
                )
            )
        return out, None


def _verdict_constraint(kind: str) -> Constraint:
    grammar = Constraint("grammar", _VERDICT_GRAMMAR)
    regex = Constraint("regex", _VERDICT_REGEX)
    # Each form carries the other, so a server that enforces only one (llama.cpp's take a
    # GBNF grammar, vLLM and SGLang a regex) still bounds the verdict.
    if kind == "grammar":
        return Constraint("grammar", _VERDICT_GRAMMAR, alternatives=(regex,))
    return Constraint("regex", _VERDICT_REGEX, alternatives=(grammar,))


def _consistent(valid: list[PairJudgment]) -> bool | None:
    """Whether the majority winner is the same in both orders (None if one order has no
    valid verdict or a tie)."""
    picks = []
    for order in ((0, 1), (1, 0)):
        winners = [j.winner for j in valid if j.order == order]
        a, b = winners.count(0), winners.count(1)
        if a == b:
            return None
        picks.append(0 if a > b else 1)
    return picks[0] == picks[1]
