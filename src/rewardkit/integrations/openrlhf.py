"""OpenRLHF adapter: this file *is* a `--remote_rm_url` reward function file.

    export REWARDKIT_SPEC=/abs/path/reward_spec.yaml     # or REWARDKIT_REWARD=math
    python -m openrlhf.cli.train_ppo_ray ... \\
        --remote_rm_url "$(python -c 'import rewardkit.integrations.openrlhf as m; print(m.__file__)')" \\
        --label_key answer

OpenRLHF loads the file and calls `reward_func(queries, prompts, labels)`: `queries` are
prompt + response as one string (chat template applied), `prompts` the templated
prompts, `labels` the `--label_key` column. It expects a dict: `rewards` (tensor, used
for advantages), `scores` (tensor, used by `--dynamic_filtering`) and `extra_logs`
(per-sample tensors, logged to wandb).

OpenRLHF needs a number per sample: an unscored sample gets reward 0.0 and is flagged 1.0
in `extra_logs["rewardkit/unscored"]`. `response_from_query` is the one place that strips
the prompt off a query; the HTTP server's OpenRLHF endpoint should use it too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rewardkit.errors import ConfigError
from rewardkit.integrations._common import resolve_spec, score_batch, spec_is_async, spec_key
from rewardkit.spec import RewardSpec
from rewardkit.types import Sample, Score

__all__ = ["response_from_query", "reward_func", "score_queries"]


def response_from_query(query: str, prompt: str | None) -> str:
    """The response part of an OpenRLHF query (prompt + response).

    The prompt normally is an exact prefix. When detokenisation changed the join (a space
    or special token added before the prompt), the first occurrence of the prompt still
    marks it; with no prompt found the whole query is the response.
    """
    if not prompt:
        return query
    if query.startswith(prompt):
        return query[len(prompt) :]
    at = query.find(prompt)
    return query[at + len(prompt) :] if at >= 0 else query


_ENV_SPEC: tuple[tuple[str | None, str | None], tuple[RewardSpec, str, bool]] | None = None


def _env_spec() -> tuple[RewardSpec, str, bool]:
    global _ENV_SPEC
    source = (os.environ.get("REWARDKIT_SPEC") or None, os.environ.get("REWARDKIT_REWARD") or None)
    if _ENV_SPEC is not None and _ENV_SPEC[0] == source:
        return _ENV_SPEC[1]
    if source == (None, None):
        raise ConfigError(
            "set REWARDKIT_SPEC (a spec file) or REWARDKIT_REWARD (a reward name) for the "
            "OpenRLHF reward function"
        )
    spec = resolve_spec(source[0]) if source[0] else resolve_spec(reward=source[1])
    resolved = (spec, spec_key(spec), spec_is_async(spec))
    _ENV_SPEC = (source, resolved)
    return resolved


def score_queries(
    spec: RewardSpec,
    queries: Sequence[str],
    prompts: Sequence[str],
    labels: Sequence[Any] | None = None,
) -> tuple[list[float], list[bool], dict[str, list[float]]]:
    """Rewards (0.0 when unscored), unscored flags and per-label scores for a batch."""
    n = len(queries)
    if len(prompts) != n or (labels is not None and len(labels) != n):
        raise ConfigError(f"OpenRLHF passed {n} queries, {len(prompts)} prompts and "
                          f"{'no' if labels is None else len(labels)} labels; they must match")
    samples = [
        Sample(
            prompt=prompts[i],
            response=response_from_query(queries[i], prompts[i]),
            reference=None if labels is None else labels[i],
        )
        for i in range(n)
    ]
    reports = score_batch(spec, spec_key(spec), samples, spec_is_async(spec))
    rewards = [0.0 if r.reward is None else r.reward for r in reports]
    unscored = [r.reward is None for r in reports]
    per_label = {
        entry.label: [
            c.value if isinstance(c := r.components.get(entry.label), Score) else 0.0
            for r in reports
        ]
        for entry in spec.rewards
    }
    return rewards, unscored, per_label


def reward_func(
    queries: Sequence[str],
    prompts: Sequence[str],
    labels: Sequence[Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """OpenRLHF's reward function: `{"rewards", "scores", "extra_logs"}` of float tensors."""
    del kwargs  # newer OpenRLHF versions may pass more; the spec needs none of it
    spec, _, _ = _env_spec()
    rewards, unscored, per_label = score_queries(spec, queries, prompts, labels)
    try:
        import torch
    except ImportError:  # OpenRLHF always has torch; plain lists keep this usable elsewhere
        return {
            "rewards": rewards,
            "scores": rewards,
            "extra_logs": {
                "rewardkit/unscored": [float(u) for u in unscored],
                **{f"rewardkit/{k}": v for k, v in per_label.items()},
            },
        }
    tensor = torch.tensor(rewards, dtype=torch.float32)
    return {
        "rewards": tensor,
        "scores": tensor.clone(),
        "extra_logs": {
            "rewardkit/unscored": torch.tensor([float(u) for u in unscored], dtype=torch.float32),
            **{
                f"rewardkit/{k}": torch.tensor(v, dtype=torch.float32)
                for k, v in per_label.items()
            },
        },
    }
