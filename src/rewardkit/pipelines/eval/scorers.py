"""Any judge, as draws per item: the pointwise GRM, the pairwise baseline, a scalar reward
model, a rule reward spec, or the length baseline.

Each `EvalJudge` turns one `EvalItem` into `Judged`: `k_max` draws (a score per response
each), which the estimators subsample for the k-curve. `requests_at(item, k)` says what a
standalone run with k samples would have asked the backend, so the curve's cost column is
the cost of that run, not of this one. `CostMeter` wraps a backend to count what was asked.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

from rewardkit.backends.base import Backend, Completion, GenerateRequest
from rewardkit.pipelines.eval.data import EvalItem
from rewardkit.pipelines.eval.stats import Draw

__all__ = [
    "ClassifierJudge",
    "CostMeter",
    "EvalJudge",
    "Judged",
    "LengthJudge",
    "PairwiseEvalJudge",
    "PointwiseEvalJudge",
    "SpecJudge",
]

_CHARS_PER_TOKEN = 4  # token counts are estimated from characters (backends report none)


@dataclass(frozen=True)
class Judged:
    """An item's draws (input order scores) and, when no draw is valid, why."""

    id: str
    draws: tuple[Draw, ...]
    error: str | None = None


class EvalJudge(Protocol):
    """A judge under evaluation."""

    name: str
    #: Draws per stratum per item (the largest k of the curve).
    k_max: int
    #: Whether draws come with meta RM ratings (MetaRM@k is estimated).
    has_meta: bool

    async def judge(self, item: EvalItem) -> Judged: ...

    def requests_at(self, item: EvalItem, k: int) -> int:
        """Backend requests a standalone run at k samples would make for `item`."""
        ...

    async def aclose(self) -> None: ...


@dataclass
class CostMeter:
    """Wraps a backend; counts requests, samples and characters asked and answered.

    Sits outside the cache, so a resumed run reports the same cost as a fresh one
    (`seconds` is wall time actually spent in the backend, cache hits included).
    """

    backend: Backend
    requests: int = 0
    samples: int = 0
    prompt_chars: int = 0
    completion_chars: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def model(self) -> str:
        return self.backend.model

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        started = time.perf_counter()
        completions = await self.backend.generate(request)
        with self._lock:
            self.seconds += time.perf_counter() - started
            self.requests += 1
            self.samples += request.n
            self.prompt_chars += sum(len(m.get("content", "")) for m in request.messages)
            self.completion_chars += sum(len(c.text) for c in completions)
        return completions

    async def aclose(self) -> None:
        await self.backend.aclose()

    def __getattr__(self, name: str) -> Any:
        # Capability flags a judge looks for are the inner backend's (as CachedBackend does).
        if name.startswith("_") or name == "backend":
            raise AttributeError(name)
        return getattr(self.backend, name)

    def totals(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "samples": self.samples,
            "prompt_tokens": self.prompt_chars // _CHARS_PER_TOKEN,
            "completion_tokens": self.completion_chars // _CHARS_PER_TOKEN,
            "seconds": round(self.seconds, 3),
        }


# -- the pointwise GRM ---------------------------------------------------------------------


class PointwiseEvalJudge:
    """SPCT pointwise: all responses in one prompt, shuffled per sample, k_max samples.

    The judge is given `keep=None` so the meta RM (if any) rates every valid judgment;
    MetaRM@k keeps the best of each k-subset in the estimator instead.
    """

    name = "pointwise"

    def __init__(self, judge: Any, meter: CostMeter | None = None) -> None:
        from rewardkit.judges import PointwiseJudge

        config = replace(judge.config, keep=None)
        self.judge_ = PointwiseJudge(judge.backend, config, judge.meta_rm)
        self.meter = meter
        self.k_max = config.samples
        self.has_meta = judge.meta_rm is not None
        #: "Judged correct" at or above this 1-10 score (the master-key probe).
        self.pass_score = 6.0

    async def judge(self, item: EvalItem) -> Judged:
        from rewardkit.judges import JudgeQuery

        result = await self.judge_.judge(
            JudgeQuery(item.prompt, item.responses, item.reference, id=item.id)
        )
        n = len(item.responses)
        # Judgments of one chunk come in sample order; with several chunks (large groups),
        # the i-th judgment of every chunk together make draw i.
        chunks: dict[tuple[int, ...], list[Any]] = {}
        for judgment in result.judgments:
            chunks.setdefault(judgment.indices, []).append(judgment)
        draws = []
        for i in range(self.k_max):
            scores: list[float | None] = [None] * n
            metas = []
            for judgments in chunks.values():
                if i >= len(judgments) or judgments[i].scores is None:
                    continue
                for index, score in zip(judgments[i].indices, judgments[i].scores, strict=True):
                    scores[index] = float(score)
                if judgments[i].meta_score is not None:
                    metas.append(judgments[i].meta_score)
            meta = sum(metas) / len(metas) if metas else None
            draws.append(Draw(tuple(scores), meta))
        return Judged(item.id, tuple(draws), result.error)

    def requests_at(self, item: EvalItem, k: int) -> int:
        from rewardkit.judges.grm import plan_chunks, plan_orders
        from rewardkit.judges.templates import make_nonce

        config = self.judge_.config
        total = 0
        for number, chunk in enumerate(plan_chunks(len(item.responses), config.max_responses)):
            # The same plan as PointwiseJudge draws for this id (see judges.grm).
            rng = random.Random(make_nonce("orders", config.seed, f"id:{item.id}", number))
            total += len(set(plan_orders(len(chunk), k, config.shuffle, rng)))
        return total

    async def aclose(self) -> None:
        await self.judge_.backend.aclose()
        meta = self.judge_.meta_rm
        if meta is not None and hasattr(meta, "aclose"):
            await meta.aclose()


# -- the pairwise baseline -----------------------------------------------------------------


class PairwiseEvalJudge:
    """Both orders, k_max samples each; a draw gives the winner 1 and the loser 0.

    It compares exactly two responses: a larger item is reported as not judged (an error).
    """

    name = "pairwise"
    has_meta = False

    def __init__(self, backend: Backend, config: Any, meter: CostMeter | None = None) -> None:
        from rewardkit.judges import PairwiseJudge

        self.judge_ = PairwiseJudge(backend, replace(config, keep=None))
        self.meter = meter
        self.k_max = config.samples

    async def judge(self, item: EvalItem) -> Judged:
        from rewardkit.judges import JudgeQuery

        if len(item.responses) != 2:
            return Judged(
                item.id, (), "pairwise_needs_two: the pairwise judge compares 2 responses"
            )
        result = await self.judge_.judge(
            JudgeQuery(item.prompt, item.responses, item.reference, id=item.id)
        )
        draws = []
        for j in result.judgments:
            scores: tuple[float | None, ...] = (
                (None, None) if j.winner is None else ((1.0, 0.0) if j.winner == 0 else (0.0, 1.0))
            )
            draws.append(Draw(scores, None, 0 if j.order == (0, 1) else 1))
        return Judged(item.id, tuple(draws), result.error)

    def requests_at(self, item: EvalItem, k: int) -> int:
        return 2 if len(item.responses) == 2 else 0

    async def aclose(self) -> None:
        await self.judge_.backend.aclose()


# -- one deterministic score per response ------------------------------------------------


class _ScalarJudge:
    """Base of judges that give each response one score (k_max = 1)."""

    name: ClassVar[str] = "scalar"
    k_max = 1
    has_meta = False
    meter: CostMeter | None = None

    #: "Judged correct" at or above this score (the master-key probe).
    pass_score: ClassVar[float] = 0.5

    async def score_responses(
        self,
        prompt: str,
        responses: Sequence[str],
        reference: str | None,
        id: str,
        fields: dict[str, Any] | None = None,
    ) -> list[float | None]:
        raise NotImplementedError

    async def judge(self, item: EvalItem) -> Judged:
        scores = await self.score_responses(
            item.prompt, item.responses, item.reference, item.id, item.fields
        )
        error = None if all(s is not None for s in scores) else "unscored"
        return Judged(item.id, (Draw(tuple(scores)),), error)

    def requests_at(self, item: EvalItem, k: int) -> int:
        return 0

    async def aclose(self) -> None:
        return None


class LengthJudge(_ScalarJudge):
    """The length-only baseline: a response's score is its length in characters."""

    name = "length"

    async def score_responses(
        self,
        prompt: str,
        responses: Sequence[str],
        reference: str | None,
        id: str,
        fields: dict[str, Any] | None = None,
    ) -> list[float | None]:
        return [float(len(r)) for r in responses]


class SpecJudge(_ScalarJudge):
    """Any reward spec (rules, code, a judge mixed with rules): each response scored alone."""

    name = "spec"

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self.reasons: dict[str, int] = {}

    async def score_responses(
        self,
        prompt: str,
        responses: Sequence[str],
        reference: str | None,
        id: str,
        fields: dict[str, Any] | None = None,
    ) -> list[float | None]:
        from rewardkit.types import Sample

        samples = [
            Sample(prompt, response, reference, f"{id}/{i}", fields or {})
            for i, response in enumerate(responses)
        ]
        reports = await self.scorer.ascore(samples)
        for report in reports:
            if report.reward is None:
                code = (report.reason or "unscored").split(":", 1)[0]
                self.reasons[code] = self.reasons.get(code, 0) + 1
        return [r.reward for r in reports]

    async def aclose(self) -> None:
        await asyncio.to_thread(self.scorer.close)


class ClassifierJudge(_ScalarJudge):
    """A scalar reward model (`AutoModelForSequenceClassification`, as RewardBench runs them):
    the chat template over (user prompt, assistant response), logit 0 is the reward."""

    name = "classifier"

    def __init__(
        self, model: str, *, device: str = "cpu", batch_size: int = 8, max_length: int = 4096
    ) -> None:
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._model is not None:
            return
        from rewardkit.judges.meta_rm import load_sequence_classifier

        self._tokenizer, self._model = load_sequence_classifier(
            self.model_name, self.device, "a scalar reward model", pad_with_eos=True
        )

    def text(self, prompt: str, response: str) -> str:
        tokenizer = self._tokenizer
        if getattr(tokenizer, "chat_template", None):
            messages = [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": response},
            ]
            text: str = tokenizer.apply_chat_template(messages, tokenize=False)
            return text
        return f"{prompt}\n\n{response}"

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        from rewardkit.judges.meta_rm import sequence_scores

        with self._lock:
            self._load()
            return sequence_scores(
                self._tokenizer,
                self._model,
                [self.text(p, r) for p, r in pairs],
                lambda logits: logits[:, 0],  # logit 0 is the reward
                device=self.device,
                batch_size=self.batch_size,
                max_length=self.max_length,
            )

    async def score_responses(
        self,
        prompt: str,
        responses: Sequence[str],
        reference: str | None,
        id: str,
        fields: dict[str, Any] | None = None,
    ) -> list[float | None]:
        values = await asyncio.to_thread(self.score_pairs, [(prompt, r) for r in responses])
        return [v if math.isfinite(v) else None for v in values]

    def requests_at(self, item: EvalItem, k: int) -> int:
        return len(item.responses)  # one forward pass per response
