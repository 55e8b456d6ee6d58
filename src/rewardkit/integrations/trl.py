"""TRL adapter: rewardkit specs as `GRPOTrainer(reward_funcs=...)`.

    from rewardkit.integrations.trl import reward_funcs
    trainer = GRPOTrainer(..., reward_funcs=reward_funcs(reward="math", reference_column="solution"))

TRL calls each function as `f(prompts=..., completions=..., completion_ids=..., **columns)`
with every dataset column (one value per completion), `trainer_state`, `log_metric` and
`log_extra`, and expects one `float | None` per completion; `None` means "this reward does
not apply / cannot score" and TRL leaves it out of the weighted sum. Async functions run
on TRL's own event loop, concurrently with the other reward functions.

Two shapes (see docs/integrations.md for when to use which):

- `mode="combined"` (default): one function computing the spec's combined reward exactly
  as `rewardkit score` does (weights, routing, `on_unscored`), logging each component's
  mean through TRL's `log_metric` as `rewardkit/<label>`.
- `mode="per_reward"`: one function per spec entry, named by its label, so TRL logs
  `rewards/<label>/mean` itself; pass `reward_weights(spec)` to `GRPOConfig.reward_weights`.

Nothing here imports torch or trl: the functions are plain picklable callables.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from rewardkit.errors import ConfigError, InputError
from rewardkit.integrations._common import (
    completion_text,
    prompt_text,
    resolve_spec,
    score_batch,
    shared_scorer,
    spec_is_async,
    spec_key,
)
from rewardkit.scoring import RewardReport
from rewardkit.spec import RewardSpec
from rewardkit.types import Sample, Score

__all__ = [
    "SUPPORTED_TRL",
    "AsyncRewardFunc",
    "RewardFunc",
    "check_trl_version",
    "reward_funcs",
    "reward_weights",
]

# Keyword arguments TRL adds that are not dataset columns.
_NOT_COLUMNS = frozenset(
    {"trainer_state", "log_extra", "log_metric", "environments", "completion_ids"}
)

#: Called after every batch with (function name, samples, reports); used by the GRPO
#: pipeline to write periodic samples. Never pickled.
Recorder = Callable[[str, list[Sample], list[RewardReport]], None]


class _Base:
    """State and logic shared by the sync and async forms."""

    def __init__(
        self,
        spec: RewardSpec,
        *,
        name: str,
        reference_column: str = "reference",
        use_async_rewards: bool = False,
    ) -> None:
        self.spec = spec
        self.__name__ = name  # TRL logs each function under `__name__`
        self.reference_column = reference_column
        self.use_async_rewards = use_async_rewards
        self.recorder: Recorder | None = None
        self._key = spec_key(spec)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.__name__!r}, rewards={[e.label for e in self.spec.rewards]})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["recorder"] = None  # a live callback in the parent process; workers get none
        return state

    def _samples(
        self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> list[Sample]:
        n = len(completions)
        if len(prompts) != n:
            raise InputError(f"TRL passed {len(prompts)} prompts for {n} completions")
        # Dataset columns arrive as lists, one value per completion. Anything else is a hook
        # a newer TRL added (like `log_metric` once was): ignore it rather than break training.
        columns = {
            k: v for k, v in kwargs.items() if k not in _NOT_COLUMNS and isinstance(v, list | tuple)
        }
        for key, values in columns.items():
            if len(values) != n:
                raise InputError(f"column {key!r} has {len(values)} values for {n} completions")
        if self.reference_column in columns:
            references: Sequence[Any] = columns[self.reference_column]
        elif self.reference_column == "reference":
            references = [None] * n  # rewards that need no reference (format, length) still work
        else:
            raise ConfigError(
                f"reference_column {self.reference_column!r} is not a column of the training "
                f"dataset; its columns are {sorted(['prompt', *columns])}"
            )
        ids = columns.get("id")
        fields_columns = {
            k: v for k, v in columns.items() if k not in (self.reference_column, "id")
        }
        return [
            Sample(
                prompt=prompt_text(prompts[i]),
                response=completion_text(completions[i]),
                reference=references[i],
                id=None if ids is None or ids[i] is None else str(ids[i]),
                fields={k: v[i] for k, v in fields_columns.items()},
            )
            for i in range(n)
        ]

    def _finish(
        self, samples: list[Sample], reports: list[RewardReport], kwargs: Mapping[str, Any]
    ) -> list[float | None]:
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            for label, mean in _component_means(reports).items():
                log_metric(f"rewardkit/{label}", mean)
            unscored = sum(1 for r in reports if r.reward is None)
            prefix = "rewardkit" if self.__name__ == "rewardkit" else f"rewardkit/{self.__name__}"
            log_metric(f"{prefix}/unscored_frac", unscored / max(len(reports), 1))
        log_extra = kwargs.get("log_extra")
        if callable(log_extra):
            log_extra(f"{self.__name__}_unscored_reason", [r.reason or "" for r in reports])
        if self.recorder is not None:
            self.recorder(self.__name__, samples, reports)
        return [r.reward for r in reports]


def _component_means(reports: list[RewardReport]) -> dict[str, float]:
    """Mean score of each component over the samples it scored (unscored ones left out)."""
    sums: dict[str, list[float]] = {}
    for report in reports:
        for label, result in report.components.items():
            if isinstance(result, Score):
                sums.setdefault(label, []).append(result.value)
    return {label: sum(v) / len(v) for label, v in sums.items()}


class RewardFunc(_Base):
    """A synchronous TRL reward function over a spec (rule rewards; judges run on a side loop)."""

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        del completion_ids  # rewards read text; the token ids add nothing
        samples = self._samples(prompts, completions, kwargs)
        reports = score_batch(self.spec, self._key, samples, self.use_async_rewards)
        return self._finish(samples, reports, kwargs)


async def _trl_signature(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[Sequence[int]] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """Never called: its code object is what `AsyncRewardFunc` shows to `inspect`."""
    raise NotImplementedError


class AsyncRewardFunc(_Base):
    """An async TRL reward function: TRL awaits it on its event loop alongside the others.

    The whole batch goes to the spec in one call, so a judge with `group_by_prompt=True`
    sees the `num_generations` completions of each prompt together.

    TRL decides whether to await a reward function with `inspect.iscoroutinefunction`,
    which is False for an object whose `__call__` is async: TRL up to 1.13 then iterates
    the coroutine (`'coroutine' object is not iterable`). The class attributes below make
    instances the duck type of a function that `inspect` documents for compiled functions
    (`__code__`, `__defaults__`, `__kwdefaults__`), with the code and signature of
    `_trl_signature`, so `iscoroutinefunction` and `inspect.signature` answer as for an
    `async def` while the object stays a picklable class instance.
    """

    __code__ = _trl_signature.__code__
    __defaults__ = _trl_signature.__defaults__
    __kwdefaults__ = _trl_signature.__kwdefaults__

    async def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        del completion_ids
        samples = self._samples(prompts, completions, kwargs)
        reports = await shared_scorer(self.spec, self._key).ascore(samples)
        return self._finish(samples, reports, kwargs)


def _make(
    spec: RewardSpec, name: str, reference_column: str, async_mode: str
) -> RewardFunc | AsyncRewardFunc:
    has_judge = spec_is_async(spec)
    if async_mode == "async" or (async_mode == "auto" and has_judge):
        return AsyncRewardFunc(
            spec, name=name, reference_column=reference_column, use_async_rewards=True
        )
    return RewardFunc(
        spec, name=name, reference_column=reference_column, use_async_rewards=has_judge
    )


#: TRL releases the adapter is tested with (CI runs GRPOTrainer on the oldest and newest).
SUPPORTED_TRL = ">=1.0,<2"


def check_trl_version(installed: str | None = None) -> None:
    """Raise `ConfigError` when the installed TRL is outside `SUPPORTED_TRL`.

    Reads the version from package metadata, so trl is not imported; nothing to check
    when trl is absent (the functions are plain callables usable without it).
    """
    if installed is None:
        try:
            installed = importlib.metadata.version("trl")
        except importlib.metadata.PackageNotFoundError:
            return
    match = re.match(r"(\d+)\.", installed)
    if match is None or not 1 <= int(match.group(1)) < 2:
        raise ConfigError(
            f"rewardkit's TRL adapter supports trl{SUPPORTED_TRL}, found trl {installed}: "
            "install a supported version, e.g. pip install 'trl>=1.0,<2'"
        )


def reward_funcs(
    spec: RewardSpec | str | Path | dict[str, Any] | None = None,
    *,
    reward: str | None = None,
    reward_args: Mapping[str, Any] | None = None,
    reference_column: str = "reference",
    mode: Literal["combined", "per_reward"] = "combined",
    async_mode: Literal["auto", "sync", "async"] = "auto",
) -> list[RewardFunc | AsyncRewardFunc]:
    """The list to pass as `GRPOTrainer(reward_funcs=...)`.

    `spec` is a spec file, dict or `RewardSpec`; or give `reward="math"` (with
    `reward_args`). The reference each reward checks against is read from the dataset
    column `reference_column` (e.g. "solution", "answer"). `async_mode="auto"` makes the
    function async when the spec holds a natively async reward (a judge).
    """
    if mode not in ("combined", "per_reward"):
        raise ConfigError(f"mode must be 'combined' or 'per_reward', got {mode!r}")
    if async_mode not in ("auto", "sync", "async"):
        raise ConfigError(f"async_mode must be 'auto', 'sync' or 'async', got {async_mode!r}")
    check_trl_version()
    resolved = resolve_spec(spec, reward, reward_args)
    if mode == "combined":
        name = resolved.rewards[0].label if len(resolved.rewards) == 1 else "rewardkit"
        return [_make(resolved, name, reference_column, async_mode)]
    funcs: list[RewardFunc | AsyncRewardFunc] = []
    for entry in resolved.rewards:
        # TRL applies the weight (GRPOConfig.reward_weights); inside, each counts as 1.
        one = RewardSpec(
            rewards=[entry.model_copy(update={"weight": 1.0})],
            on_unscored=resolved.on_unscored,
        )
        funcs.append(_make(one, entry.label, reference_column, async_mode))
    return funcs


def reward_weights(spec: RewardSpec | str | Path | dict[str, Any]) -> list[float]:
    """The spec's weights in entry order, for `GRPOConfig(reward_weights=...)` in per_reward mode."""
    return [entry.weight for entry in resolve_spec(spec).rewards]
