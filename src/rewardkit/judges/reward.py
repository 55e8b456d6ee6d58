"""`JudgeReward`: the pointwise judge as a registered, picklable reward ("judge").

```yaml
rewards:
  - reward: judge
    args: {backend: http, base_url: "http://127.0.0.1:8000/v1", model: my-judge,
           samples: 4, mode: helpfulness, group_by_prompt: true, normalize: true}
```

Arguments split three ways: judge options (every `JudgeConfig` field), reward options
(`group_by_prompt`, `normalize`, `meta_rm`, `template_file`) and backend options (the rest:
`base_url`, `model`, `concurrency`, `timeout`, `max_retries`, `api_key`, `transport` (HTTP:
"auto" or "aiohttp", both aiohttp), ... passed to
`rewardkit.backends.build_backend(backend, ...)`, which names a misspelt one). A `Backend`
instance may be given directly. The judge and the event loop thread of `score_batch` are
made on first use and dropped on pickling, so the reward ships to trainer workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from rewardkit._loop import LoopThread, in_running_loop
from rewardkit.backends.base import Backend
from rewardkit.errors import ConfigError
from rewardkit.judges.data import JudgeConfig, JudgeQuery, JudgeResult
from rewardkit.judges.grm import PointwiseJudge
from rewardkit.judges.meta_rm import MetaRM, build_meta_rm
from rewardkit.judges.parsing import SCORE_MAX, SCORE_MIN
from rewardkit.judges.templates import PromptBuilder
from rewardkit.reward import Reward
from rewardkit.types import RewardResult, Sample, Score, Unscored

__all__ = ["JudgeReward"]

T = TypeVar("T")


class JudgeReward(Reward):
    """LLM-judge reward: one vote per sample (pointwise) or per prompt group (listwise)."""

    name: ClassVar[str] = "judge"

    def __init__(
        self,
        backend: str | Backend = "http",
        *,
        group_by_prompt: bool = False,
        normalize: bool = False,
        meta_rm: str | dict[str, Any] | MetaRM | None = None,
        template_file: str | None = None,
        backend_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        judge_fields = set(JudgeConfig.__dataclass_fields__)
        judge_options = {k: v for k, v in options.items() if k in judge_fields}
        _reject_typos(set(options) - judge_fields, judge_fields)
        self.backend_options = {**(backend_options or {})}
        self.backend_options.update({k: v for k, v in options.items() if k not in judge_fields})
        if template_file is not None:
            if "template" in judge_options:
                raise ConfigError("judge: give `template` or `template_file`, not both")
            path = Path(template_file)
            if not path.is_file():
                raise ConfigError(f"judge: template_file not found: {path}")
            judge_options["template"] = path.read_text(encoding="utf-8")
        self.config = JudgeConfig.from_options(judge_options)
        # Fail on a bad template or mode now, at spec-load time, not at the first batch.
        PromptBuilder.create(
            self.config.mode,
            template=self.config.template,
            principles=self.config.principles,
            view=self.config.view,
        )
        if self.config.keep is not None and meta_rm is None:
            raise ConfigError("judge: `keep` (meta-RM top k) needs a `meta_rm`")
        # Backends are cheap to build (connections and models open on first use) and
        # pickle without them, so build now: a misspelt backend option fails at spec load.
        self.backend = backend if not isinstance(backend, str) else self._build_backend(backend)
        # Cheap to build (models and sessions load on first use), so option mistakes
        # surface here rather than in the middle of training.
        self.meta_rm = build_meta_rm(meta_rm)
        self.group_by_prompt = bool(group_by_prompt)
        self.normalize = bool(normalize)
        self._judge: PointwiseJudge | None = None
        self._runner: LoopThread | None = None
        self._lock = threading.Lock()

    # -- construction -----------------------------------------------------------------

    def _build_backend(self, kind: str) -> Backend:
        from rewardkit.backends import build_backend

        return build_backend(kind, **self.backend_options)

    @property
    def judge(self) -> PointwiseJudge:
        """The judge, built on first use (after unpickling, in the worker)."""
        with self._lock:
            if self._judge is None:
                self._judge = PointwiseJudge(self.backend, self.config, self.meta_rm)
            return self._judge

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_judge"] = None
        state["_runner"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- scoring ----------------------------------------------------------------------

    def score(self, sample: Sample) -> RewardResult:
        return self.score_batch([sample])[0]

    def score_batch(self, samples: Sequence[Sample]) -> list[RewardResult]:
        """Synchronous form: runs the async path on the reward's own event loop thread."""
        with self._lock:
            if self._runner is None:
                self._runner = LoopThread("rewardkit-judge")
            runner = self._runner
        return runner.run(self.ascore_batch(samples))

    async def ascore_batch(self, samples: Sequence[Sample]) -> list[RewardResult]:
        samples = list(samples)
        judge = self.judge
        if not self.group_by_prompt:
            results = await asyncio.gather(
                *(
                    judge.judge(JudgeQuery(s.prompt, (s.response,), _reference(s), s.id))
                    for s in samples
                )
            )
            return [self._to_result(r, 0) for r in results]
        groups: dict[tuple[str, str | None], list[int]] = {}
        for i, sample in enumerate(samples):
            groups.setdefault((sample.prompt, _reference(sample)), []).append(i)
        keys = list(groups)
        group_results = await asyncio.gather(
            *(
                judge.judge(
                    JudgeQuery(
                        prompt, tuple(samples[i].response for i in groups[(prompt, ref)]), ref
                    )
                )
                for prompt, ref in keys
            )
        )
        out: list[RewardResult | None] = [None] * len(samples)
        for key, result in zip(keys, group_results, strict=True):
            for position, index in enumerate(groups[key]):
                out[index] = self._to_result(result, position)
        return [r if r is not None else Unscored("error", "sample lost in grouping") for r in out]

    def _to_result(self, result: JudgeResult, index: int) -> RewardResult:
        value = result.rewards[index]
        if value is None:
            return _unscored(result, index)
        voters = [result.judgments[v] for v in result.voters]
        votes = sum(1 for j in voters if index in j.order)
        mean = value / votes if self.config.reducer == "sum" else value
        reward = (mean - SCORE_MIN) / (SCORE_MAX - SCORE_MIN) if self.normalize else value
        details: dict[str, Any] = {
            "vote": value,
            "valid": result.valid,
            "samples": len(result.judgments),
            "scores": result.sample_scores(index),
            "principles": [j.principles for j in voters if j.principles],
            "critiques": [j.critique for j in voters if j.critique],
        }
        if result.warnings:
            details["warnings"] = list(result.warnings)
        return Score(float(reward), "judged", details)

    async def aclose(self) -> None:
        if self._judge is not None:
            await self._judge.backend.aclose()

    def close(self) -> None:
        runner, self._runner = self._runner, None
        judge, self._judge = self._judge, None
        # Closing must never fail the caller (a backend may already be gone).
        with contextlib.suppress(Exception):
            if runner is not None and judge is not None:
                runner.run(judge.backend.aclose())
            elif judge is not None and not in_running_loop():
                asyncio.run(judge.backend.aclose())
        if runner is not None:
            runner.stop()


# Backend options the judge knows by name; anything else passes to `build_backend` as is.
_BACKEND_OPTIONS = {
    "base_url",
    "model",
    "concurrency",
    "timeout",
    "max_retries",
    "api_key",
    "transport",
}
_REWARD_OPTIONS = {"group_by_prompt", "normalize", "meta_rm", "template_file", "backend_options"}


def _reject_typos(passed_on: set[str], judge_fields: set[str]) -> None:
    """A key meant for the judge but misspelt would silently reach the backend: name it."""
    for key in sorted(passed_on - _BACKEND_OPTIONS):
        close = difflib.get_close_matches(
            key, sorted(judge_fields | _REWARD_OPTIONS), n=1, cutoff=0.8
        )
        if close:
            raise ConfigError(f"judge: unknown option {key!r}; did you mean {close[0]!r}?")


def _reference(sample: Sample) -> str | None:
    ref = sample.reference
    if ref is None or isinstance(ref, str):
        return ref
    return json.dumps(ref, ensure_ascii=False, sort_keys=True, default=str)


def _unscored(result: JudgeResult, index: int) -> Unscored:
    """Why a response got no vote, with the judge's raw text as evidence."""
    error = result.error or "no_valid_judgment"
    reason = error.split(":", 1)[0]
    seen = [j for j in result.judgments if index in j.order]
    codes = Counter(j.error for j in seen if j.error)
    detail = ", ".join(f"{code}x{count}" for code, count in sorted(codes.items()))
    message = f"{error}" + (f" ({detail} over {len(seen)} samples)" if detail else "")
    raw = next((j.text for j in reversed(seen) if j.text), None)
    return Unscored(reason, message, raw)
