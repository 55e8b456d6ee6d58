"""The `audit:` section of a GRPO run config, and how a gold reward is named.

```yaml
audit:
  gold: math                 # a reward name, a spec file, or an inline spec
  prompts: heldout.jsonl     # fixed held-out prompts (same columns as the dataset)
  every: 10                  # audit every 10 optimizer steps (and once before training)
  max_new_tokens: 64
  divergence: {window: 3, delta: 0.1, gold_tolerance: 0.02}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rewardkit.pipelines.audit.divergence import DivergenceConfig
from rewardkit.spec import RewardSpec, load_spec

__all__ = ["AuditConfig", "resolve_reward_spec"]

_SPEC_SUFFIXES = (".yaml", ".yml", ".json", ".toml")


class AuditConfig(BaseModel):
    """Score a fixed held-out prompt set by the proxy and a gold reward while training."""

    model_config = ConfigDict(extra="forbid")

    gold: dict[str, Any] | str = Field(
        description="The gold reward: a registered reward name (e.g. 'math'), a spec file, "
        "or an inline spec."
    )
    prompts: str = Field(description="JSONL/Parquet/datasets folder of held-out prompts.")
    every: int = Field(default=10, ge=1, description="Audit every N optimizer steps.")
    prompt_column: str | None = Field(
        default=None, description="Prompt column of the held-out set; default: the dataset's."
    )
    reference_column: str | None = Field(
        default=None, description="Reference column of the held-out set; default: the dataset's."
    )
    limit: int | None = Field(default=None, ge=1, description="Use only the first N prompts.")
    max_new_tokens: int = Field(default=64, ge=1, description="Tokens per audit answer.")
    sampling: Literal["greedy", "sample"] = Field(
        default="greedy",
        description="Greedy answers, or sampled ones with a fixed seed (the training RNG is "
        "left untouched either way).",
    )
    temperature: float = Field(default=1.0, gt=0, description="Sampling temperature.")
    seed: int = Field(default=0, description="Seed of sampled answers.")
    batch_size: int = Field(default=16, ge=1, description="Prompts per generate call.")
    divergence: DivergenceConfig = Field(default_factory=DivergenceConfig)


def resolve_reward_spec(
    value: str | dict[str, Any] | RewardSpec, base: Path | None = None
) -> RewardSpec:
    """A spec from an inline mapping, a spec file, or a bare reward name ('math')."""
    if isinstance(value, RewardSpec | dict):
        return load_spec(value)
    path = Path(value)
    if base is not None and not path.is_absolute():
        path = base / path
    if path.is_file() or path.suffix in _SPEC_SUFFIXES:
        return load_spec(path)  # a missing spec file is a ConfigError naming it
    return RewardSpec.single(value)
