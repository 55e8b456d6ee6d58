"""OpenRLHF adapter: this file *is* a `--reward.remote_url` reward function file.

    export REWARDKIT_SPEC=/abs/path/reward_spec.yaml     # or REWARDKIT_REWARD=math
    python3 -m openrlhf.cli.train_ppo_ray ... \\
        --reward.remote_url "$(python -c 'import rewardkit.integrations.openrlhf as m; print(m.__file__)')" \\
        --data.label_key answer

(OpenRLHF >= 0.10.2 flag names; tested with 0.10.2 and 0.11.2. Earlier releases called them
`--remote_rm_url` and `--label_key`.)

OpenRLHF loads the file and calls `reward_func(queries, prompts, labels)`: `queries` are
prompt + response as one string (chat template applied), `prompts` the templated
prompts, `labels` the `--data.label_key` column. It expects a dict: `rewards` (tensor, used
for advantages), `scores` (tensor, used by `--algo.dynamic_filtering_enable`; the same values as
`rewards`, so set `--algo.dynamic_filtering_range` to the spec's reward range) and
`extra_logs` (per-sample tensors, logged to wandb).

OpenRLHF needs a number per sample: an unscored sample gets reward 0.0 and is flagged 1.0
in `extra_logs["rewardkit/unscored"]`. Each sample is built by
`rewardkit.integrations.openrlhf_protocol.openrlhf_sample`, as `rewardkit serve` builds them
for OpenRLHF's HTTP mode: the response is cut out of the query by `extract_response` (prompt
prefix, else the last assistant marker of a known chat template, special tokens stripped),
and the result has the same shape as the server's answer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rewardkit.errors import ConfigError
from rewardkit.integrations._common import resolve_spec, score_batch, spec_is_async, spec_key
from rewardkit.integrations.openrlhf_protocol import openrlhf_payload, openrlhf_sample
from rewardkit.spec import RewardSpec

__all__ = ["reward_func", "score_queries"]


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
) -> dict[str, Any]:
    """OpenRLHF's answer as plain lists: `rewards`, `scores`, per-sample `extra_logs`.

    Every spec label gets its `extra_logs` entry in every batch, even when routing left it
    out of this one: OpenRLHF concatenates the logs of all batches key by key.
    """
    n = len(queries)
    if len(prompts) != n or (labels is not None and len(labels) != n):
        raise ConfigError(
            f"OpenRLHF passed {n} queries, {len(prompts)} prompts and "
            f"{'no' if labels is None else len(labels)} labels; they must match"
        )
    # the samples `rewardkit serve` builds for /get_reward (server/prepare.py), ids included
    samples = [
        openrlhf_sample(queries[i], prompts[i], None if labels is None else labels[i], id=str(i))
        for i in range(n)
    ]
    payload = openrlhf_payload(score_batch(spec, spec_key(spec), samples, spec_is_async(spec)))
    for entry in spec.rewards:
        payload["extra_logs"].setdefault(f"rewardkit/{entry.label}", [0.0] * n)
    return payload


def reward_func(
    queries: Sequence[str],
    prompts: Sequence[str],
    labels: Sequence[Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """OpenRLHF's reward function: `{"rewards", "scores", "extra_logs"}` of float tensors."""
    del kwargs  # newer OpenRLHF versions may pass more; the spec needs none of it
    spec, _, _ = _env_spec()
    payload = score_queries(spec, queries, prompts, labels)
    try:
        import torch
    except ImportError:  # OpenRLHF always has torch; plain lists keep this usable elsewhere
        return payload

    def tensor(values: list[float]) -> Any:
        return torch.tensor(values, dtype=torch.float32)

    return {
        "rewards": tensor(payload["rewards"]),
        "scores": tensor(payload["scores"]),
        "extra_logs": {key: tensor(v) for key, v in payload["extra_logs"].items()},
    }
