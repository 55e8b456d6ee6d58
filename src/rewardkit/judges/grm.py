"""The pointwise generative judge (DeepSeek-GRM / SPCT style) with k-sample voting.

For one query: split large groups into chunks, draw k display orders per chunk
(deterministic from the seed and the query), send one request per *distinct* order asking
for as many samples as that order was drawn (a pair needs at most two requests whatever
k is), parse every sample, map its scores back to input order, optionally let a meta RM
keep the best `keep`, and reduce. Backend failures and unparseable outputs are recorded in
the result, never raised and never turned into a score.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import random
from dataclasses import dataclass, replace

from rewardkit.backends.base import Backend, Completion, Constraint, GenerateRequest
from rewardkit.errors import BackendError, ConfigError
from rewardkit.judges.common import REQUEST_FAILURES, query_key, resolve_constraint_kind
from rewardkit.judges.constrain import build_constraint, expected_scores
from rewardkit.judges.data import JudgeConfig, JudgeQuery, JudgeResult, Judgment
from rewardkit.judges.meta_rm import MetaRM
from rewardkit.judges.parsing import ParsedJudgment, parse_judgment
from rewardkit.judges.templates import PromptBuilder, make_nonce, response_view
from rewardkit.judges.voting import select_top, vote

__all__ = ["PointwiseJudge", "plan_chunks", "plan_orders"]

# Up to this many responses, every permutation is enumerated so k samples cover the
# orders evenly (a pair at k=8 is shown 4 times each way), instead of drawn at random.
_ENUMERATE_UP_TO = 4
_UNUSED_RNG = random.Random(0)


def plan_chunks(n: int, max_responses: int) -> list[tuple[int, ...]]:
    """Split n input indices into balanced consecutive chunks of at most `max_responses`."""
    if n <= max_responses:  # the usual case: one chunk
        return [tuple(range(n))]
    count = max(1, math.ceil(n / max_responses))
    base, extra = divmod(n, count)
    chunks, start = [], 0
    for c in range(count):
        size = base + (1 if c < extra else 0)
        chunks.append(tuple(range(start, start + size)))
        start += size
    return chunks


@functools.cache
def _permutations(m: int) -> tuple[tuple[int, ...], ...]:
    return tuple(itertools.permutations(range(m)))


def plan_orders(m: int, k: int, shuffle: bool, rng: random.Random) -> list[tuple[int, ...]]:
    """k display orders (permutations of range(m)), one per sample."""
    identity = tuple(range(m))
    if not shuffle or m == 1:
        return [identity] * k
    if m <= _ENUMERATE_UP_TO:
        perms = list(_permutations(m))
        rng.shuffle(perms)
        return [perms[i % len(perms)] for i in range(k)]
    return [tuple(rng.sample(range(m), m)) for _ in range(k)]


@dataclass(frozen=True, slots=True)
class _ChunkOutcome:
    """One chunk's share of a query's result."""

    #: The input indices judged together.
    chunk: tuple[int, ...]
    #: Rewards by input index (None outside the chunk and where no vote was cast).
    rewards: tuple[float | None, ...]
    judgments: list[Judgment]
    #: Positions in `judgments` of the ones that voted.
    voters: list[int]
    warnings: list[str]
    error: str | None


class PointwiseJudge:
    """Scores one or many responses per query on 1-10, with k-sample voting.

    Build once, call `judge` many times (concurrently is fine: the backend bounds its own
    concurrency).
    """

    def __init__(
        self,
        backend: Backend,
        config: JudgeConfig | None = None,
        meta_rm: MetaRM | None = None,
    ) -> None:
        self.backend = backend
        self.config = config if config is not None else JudgeConfig()
        self.meta_rm = meta_rm
        if self.config.keep is not None and meta_rm is None:
            raise ConfigError("judge config sets `keep` (meta-RM top k) but no meta RM was given")
        self.constraint_kind = resolve_constraint_kind(backend, self.config.constraint_kind)
        self.prompts = PromptBuilder.create(
            self.config.mode,
            template=self.config.template,
            principles=self.config.principles,
            view=self.config.view,
        )
        self._constraints: dict[int, Constraint] = {}

    async def judge(self, query: JudgeQuery) -> JudgeResult:
        n = len(query.responses)
        if self.config.mode == "reference" and query.reference is None:
            return JudgeResult(
                query.id, (None,) * n, (), 0, "missing_reference: reference mode needs a reference"
            )
        chunks = plan_chunks(n, self.config.max_responses)
        if len(chunks) == 1:
            # The common case: no gather, so no task per query (measurable at high rates).
            one = await self._judge_chunk(query, chunks[0], 0)
            return JudgeResult(
                query.id,
                one.rewards,
                tuple(one.judgments),
                sum(1 for j in one.judgments if j.valid),
                one.error,
                tuple(one.voters),
                tuple(one.warnings),
            )
        parts = await asyncio.gather(
            *(self._judge_chunk(query, chunk, number) for number, chunk in enumerate(chunks))
        )
        rewards: list[float | None] = [None] * n
        judgments: list[Judgment] = []
        voters: list[int] = []
        warnings: list[str] = []
        errors: list[str] = []
        for part in parts:
            for index in part.chunk:
                rewards[index] = part.rewards[index]
            voters.extend(len(judgments) + v for v in part.voters)
            judgments.extend(part.judgments)
            warnings.extend(part.warnings)
            if part.error is not None:
                errors.append(part.error)
        valid = sum(1 for j in judgments if j.valid)
        return JudgeResult(
            query.id,
            tuple(rewards),
            tuple(judgments),
            valid,
            errors[0] if errors else None,
            tuple(voters),
            tuple(warnings),
        )

    async def _judge_chunk(
        self, query: JudgeQuery, chunk: tuple[int, ...], number: int
    ) -> _ChunkOutcome:
        config = self.config
        key = query_key(query)
        if config.shuffle and len(chunk) > 1:
            rng = random.Random(make_nonce("orders", config.seed, key, number))
        else:
            rng = _UNUSED_RNG  # plan_orders draws nothing; seeding one costs a hash
        orders = [
            tuple([chunk[p] for p in perm])
            for perm in plan_orders(len(chunk), config.samples, config.shuffle, rng)
        ]
        groups: dict[tuple[int, ...], int] = {}
        for order in orders:  # dict keeps first-drawn order: requests are deterministic
            groups[order] = groups.get(order, 0) + 1
        if len(groups) == 1:  # one display order (k=1, or no shuffle): no gather, no task
            ((order, count),) = groups.items()
            outcomes = [await self._request(query, key, order, count)]
        else:
            outcomes = await asyncio.gather(
                *(self._request(query, key, order, count) for order, count in groups.items())
            )
        judgments: list[Judgment] = []
        failures: list[str] = []
        for batch, failure in outcomes:
            judgments.extend(batch)
            if failure is not None:
                failures.append(failure)
        warnings = [f"backend_error: {failure}" for failure in failures]

        valid_at = [i for i, j in enumerate(judgments) if j.valid]
        voters = valid_at
        if self.meta_rm is not None and valid_at:
            chunk_query = replace(query, responses=tuple(query.responses[i] for i in chunk))
            try:
                ratings = await self.meta_rm.rate(
                    chunk_query, [self._localise(judgments[i], chunk) for i in valid_at]
                )
                if len(ratings) != len(valid_at):
                    raise BackendError(
                        f"meta RM returned {len(ratings)} ratings for {len(valid_at)} judgments"
                    )
            except REQUEST_FAILURES as exc:
                warnings.append(f"meta_rm_failed: {exc}; voting over all valid judgments")
            else:
                for i, rating in zip(valid_at, ratings, strict=True):
                    judgments[i] = replace(judgments[i], meta_score=float(rating))
                voters = [valid_at[j] for j in select_top(list(ratings), config.keep)]

        if chunk == tuple(range(len(chunk))):  # the whole query: positions are indices
            local = [judgments[i] for i in voters]
        else:
            local = [self._localise(judgments[i], chunk) for i in voters]
        local_rewards = vote(local, len(chunk), config.reducer, use_expected=config.use_logprobs)
        rewards: list[float | None] = [None] * len(query.responses)
        for position, index in enumerate(chunk):
            rewards[index] = local_rewards[position]
        error = None
        if not valid_at:
            # Every request failed: the backend is the story. Otherwise the judge spoke
            # but never gave a usable verdict.
            error = (
                f"backend_error: {failures[0]}"
                if len(failures) == len(groups)
                else "no_valid_judgment"
            )
        return _ChunkOutcome(chunk, tuple(rewards), judgments, voters, warnings, error)

    @staticmethod
    def _localise(judgment: Judgment, chunk: tuple[int, ...]) -> Judgment:
        """The judgment with input indices renumbered to positions inside the chunk."""
        where = {index: position for position, index in enumerate(chunk)}
        return replace(judgment, order=tuple(where[i] for i in judgment.order))

    async def _request(
        self, query: JudgeQuery, key: str, order: tuple[int, ...], count: int
    ) -> tuple[list[Judgment], str | None]:
        config = self.config
        shown = tuple([query.responses[i] for i in order])
        nonce = make_nonce("fence", config.seed, key, query.prompt, shown, order)
        # Views once: the prompt shows them and the parser checks echoes against them.
        views = [response_view(text, self.prompts.view) for text in shown]
        prompt = self.prompts.render_views(query.prompt, views, nonce, query.reference)
        request = GenerateRequest(
            messages=({"role": "user", "content": prompt},),
            n=count,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            # Distinct per order, so a cache keyed on the request never merges two orders'
            # samples and k votes stay k independent draws.
            seed=int(make_nonce("seed", config.seed, key, order), 16) % (2**31),
            constraint=self._constraint(len(order)) if config.constrain else None,
            top_logprobs=config.top_logprobs if config.use_logprobs else None,
        )
        try:
            completions = await self.backend.generate(request)
        except REQUEST_FAILURES as exc:
            message = f"{type(exc).__name__}: {exc}"
            failed = Judgment("", None, None, None, order, None, "backend_error")
            return [failed] * count, message
        # Low-temperature judges often repeat themselves: parse each distinct text once.
        memo: dict[str, ParsedJudgment] = {}
        judgments = []
        for completion in completions:
            parsed = memo.get(completion.text)
            if parsed is None:
                parsed = parse_judgment(completion.text, len(order), responses=views, nonce=nonce)
                memo[completion.text] = parsed
            if parsed.error in ("no_verdict", "unterminated_think") and (
                completion.finish_reason == "length"
            ):
                # Cut off by max_tokens before the verdict: say so, it is fixable.
                parsed = replace(parsed, error="truncated")
            judgments.append(self._judgment(completion, parsed, order))
        return judgments, None

    def _constraint(self, n: int) -> Constraint:
        """The verdict constraint for n shown responses, built once per n."""
        constraint = self._constraints.get(n)
        if constraint is None:
            constraint = self._constraints[n] = build_constraint(n, self.constraint_kind)
        return constraint

    def _judgment(
        self, completion: Completion, parsed: ParsedJudgment, order: tuple[int, ...]
    ) -> Judgment:
        scores = expected = None
        if parsed.scores is not None:
            # Shown position p held input index order[p]; report by ascending input index.
            by_index = dict(zip(order, parsed.scores, strict=True))
            scores = tuple(by_index[i] for i in sorted(order))
            if self.config.use_logprobs and parsed.spans is not None:
                shown_expected = expected_scores(completion, parsed.spans)
                if shown_expected is not None:
                    by_index_e = dict(zip(order, shown_expected, strict=True))
                    expected = tuple(by_index_e[i] for i in sorted(order))
        return Judgment(
            text=completion.text,
            reasoning=parsed.reasoning,
            principles=parsed.principles,
            critique=parsed.critique,
            order=order,
            scores=scores,
            error=parsed.error,
            expected_scores=expected,
        )
