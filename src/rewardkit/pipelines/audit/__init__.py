"""Reward-hacking audits: does the training reward still agree with a gold reward?

- `features`: text marks of hacking (length, lists, master keys, self-praise, repetition,
  refusals), per completion and per step.
- `divergence`: the rule that flags a rising proxy with a flat or falling gold.
- `record`: audit points and the audit.csv / `kind: audit` JSON both audits write.
- `callback`: the online audit inside `rewardkit train grpo` (`audit:` config section).
- `runner`: the offline audit of a run's saved samples (`rewardkit audit RUN_DIR`).
- `winrate`, `answers`: Arena-Hard-style pairwise win rates with length control.
- `plot`: the PNG (matplotlib, imported lazily).

See docs/audit.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rewardkit._lazy import load_lazy as _load_lazy

if TYPE_CHECKING:
    from rewardkit.pipelines.audit.config import AuditConfig, resolve_reward_spec
    from rewardkit.pipelines.audit.divergence import (
        DivergenceConfig,
        DivergenceReport,
        RewardHackingWarning,
        detect_divergence,
    )
    from rewardkit.pipelines.audit.features import mean_features, text_features
    from rewardkit.pipelines.audit.runner import audit_run
    from rewardkit.pipelines.audit.winrate import length_controlled, win_rate

__all__ = [
    "AuditConfig",
    "DivergenceConfig",
    "DivergenceReport",
    "RewardHackingWarning",
    "audit_run",
    "detect_divergence",
    "length_controlled",
    "mean_features",
    "resolve_reward_spec",
    "text_features",
    "win_rate",
]

_LAZY = {
    "AuditConfig": "rewardkit.pipelines.audit.config",
    "resolve_reward_spec": "rewardkit.pipelines.audit.config",
    "DivergenceConfig": "rewardkit.pipelines.audit.divergence",
    "DivergenceReport": "rewardkit.pipelines.audit.divergence",
    "RewardHackingWarning": "rewardkit.pipelines.audit.divergence",
    "detect_divergence": "rewardkit.pipelines.audit.divergence",
    "mean_features": "rewardkit.pipelines.audit.features",
    "text_features": "rewardkit.pipelines.audit.features",
    "audit_run": "rewardkit.pipelines.audit.runner",
    "length_controlled": "rewardkit.pipelines.audit.winrate",
    "win_rate": "rewardkit.pipelines.audit.winrate",
}


def __getattr__(name: str) -> Any:
    return _load_lazy(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
