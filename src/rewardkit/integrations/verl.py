"""verl adapter: `compute_score` in its three forms, driven by a rewardkit spec.

For verl 0.7 - 0.9 (the `reward.` config tree; docs/integrations.md has the full commands):

    reward.custom_reward_function.path=pkg://rewardkit.integrations.verl
    reward.custom_reward_function.name=compute_score         # or compute_score_async
    +reward.custom_reward_function.reward_kwargs.spec=/abs/path/reward_spec.yaml

- `compute_score`        per sample (the `naive`, `dapo` and `remote` reward managers)
- `compute_score_async`  per sample, awaited by the reward loop (`naive`, `dapo`; for judges)
- `compute_score_batch`  per prompt group, called by rewardkit's `GroupRewardManager`
                         (`rewardkit.integrations.verl_group`) so a judge with
                         `group_by_prompt=True` sees each prompt's rollouts together

verl 0.9 ignores the older top-level `custom_reward_function.*` keys (it then trains on its
own default scorer, silently), and its reward loop has no `batch` reward manager.

The spec arrives as keyword arguments from verl's `reward_kwargs`: `spec=<path>` or
`reward=<name>` (+ `reward_args={...}`), or from the `REWARDKIT_SPEC` / `REWARDKIT_REWARD`
environment variables when no keyword is given. `data_source` becomes a sample field,
so `when: {data_source: [...]}` routes on it; `extra_info` keys become fields too, and
`extra_info["question"]` (or `["prompt"]`) becomes the sample's prompt.

verl needs a number for every sample: an unscored sample gets `score: 0.0` with
`unscored: True` and the `reason` in the returned dict. Every returned dict has the same
keys (verl stacks them into per-key arrays): `score`, `unscored`, `reason`, and
`<label>_score` for each spec entry (0.0 where that reward did not apply or could not score).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from rewardkit.errors import ConfigError
from rewardkit.integrations._common import (
    resolve_spec,
    score_batch,
    shared_scorer,
    spec_is_async,
    spec_key,
)
from rewardkit.scoring import RewardReport
from rewardkit.spec import RewardSpec
from rewardkit.text import prompt_text
from rewardkit.types import Sample, Score

__all__ = ["compute_score", "compute_score_async", "compute_score_batch"]

# Resolved specs by the arguments that named them: verl calls per sample, so resolving
# (reading a YAML file, checking which rewards are async) must happen once.
_RESOLVED: dict[str, tuple[RewardSpec, str, bool]] = {}


def _resolve(kwargs: Mapping[str, Any]) -> tuple[RewardSpec, str, bool]:
    spec = kwargs.get("spec")
    reward = kwargs.get("reward")
    reward_args = kwargs.get("reward_args")
    if spec is None and reward is None:
        spec = os.environ.get("REWARDKIT_SPEC") or None
        reward = None if spec else os.environ.get("REWARDKIT_REWARD") or None
        if spec is None and reward is None:
            raise ConfigError(
                "no reward spec for verl: set +reward.custom_reward_function.reward_kwargs.spec "
                "(a spec file) or .reward (a reward name), or the REWARDKIT_SPEC env var"
            )
    if isinstance(spec, RewardSpec):
        cache_key = spec_key(spec)
    else:
        # OmegaConf containers arrive from verl's config: turn them into plain dicts.
        if isinstance(spec, os.PathLike):
            spec = os.fspath(spec)
        elif spec is not None and not isinstance(spec, str):
            spec = _plain(spec)
        reward_args = _plain(reward_args) if reward_args is not None else None
        cache_key = repr((str(spec) if spec is not None else None, reward, reward_args))
    hit = _RESOLVED.get(cache_key)
    if hit is None:
        resolved = resolve_spec(spec, reward, reward_args)
        hit = (resolved, spec_key(resolved), spec_is_async(resolved))
        _RESOLVED[cache_key] = hit
    return hit


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value


def _sample(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any) -> Sample:
    extra = dict(extra_info) if isinstance(extra_info, Mapping) else {}
    prompt = extra.get("question", extra.get("prompt", ""))
    fields = {**extra, "data_source": data_source}
    if not isinstance(extra_info, Mapping) and extra_info is not None:
        fields["extra_info"] = extra_info
    return Sample(
        prompt=prompt_text(prompt),
        response=solution_str,
        reference=ground_truth,
        id=None if extra.get("index") is None else str(extra["index"]),
        fields=fields,
    )


def _to_dict(report: RewardReport, labels: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "score": 0.0 if report.reward is None else float(report.reward),
        "unscored": report.reward is None,
        "reason": report.reason or "",
    }
    for label in labels:
        result = report.components.get(label)
        out[f"{label}_score"] = result.value if isinstance(result, Score) else 0.0
    return out


def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Any = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """verl's per-sample signature; returns `{"score": float, "unscored": bool, "reason": str, ...}`."""
    spec, key, use_async = _resolve(kwargs)
    [report] = score_batch(
        spec, key, [_sample(data_source, solution_str, ground_truth, extra_info)], use_async
    )
    return _to_dict(report, [e.label for e in spec.rewards])


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """The batch form (rewardkit's `GroupRewardManager`): one dict per sample, scored together."""
    spec, key, use_async = _resolve(kwargs)
    n = len(solution_strs)
    if len(data_sources) != n or len(ground_truths) != n:
        raise ConfigError(
            f"verl passed {len(data_sources)} data_sources, {n} solution_strs and "
            f"{len(ground_truths)} ground_truths; they must match"
        )
    extras: Sequence[Any] = [None] * n if extra_infos is None else extra_infos
    samples = [
        _sample(data_sources[i], solution_strs[i], ground_truths[i], extras[i]) for i in range(n)
    ]
    labels = [e.label for e in spec.rewards]
    return [_to_dict(r, labels) for r in score_batch(spec, key, samples, use_async)]


async def compute_score_async(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Any = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Async per-sample form for verl's reward loop (extra kwargs such as
    `reward_router_address` are accepted and ignored: the spec names its own backends)."""
    spec, key, _ = _resolve(kwargs)
    sample = _sample(data_source, solution_str, ground_truth, extra_info)
    [report] = await shared_scorer(spec, key).ascore([sample])
    return _to_dict(report, [e.label for e in spec.rewards])
