"""`rewardkit train judge-grpo`: SPCT's rule-based online RL of the judge, as a GRPO preset.

```yaml
model: runs/judge-sft          # the judge after judge-sft
dataset: rft/rl.jsonl          # judge prompts + `judge_label` (written by `spct rft`)
output_dir: runs/judge-grpo
beta: 0.08                     # KL coefficient (SPCT uses a larger one than usual)
grpo:                          # trl.GRPOConfig options, as for `rewardkit train grpo`
  num_generations: 8
  max_completion_length: 1024
```

It is `rewardkit train grpo` with the judge prompts as the dataset, `judge_agreement` as the
only reward (+1 when the parsed scores pick the labelled best strictly or match the rating,
-1 otherwise, unparseable output included) and a larger KL coefficient. DeepSeek-GRM
(arXiv:2504.02495, section 3.2) uses no format reward and instead "a larger coefficient for
KL penalty" to keep the output format; the default `beta: 0.08` is the value we read in the
paper's implementation details (not re-checked offline; TRL's default is 0.0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rewardkit.errors import ConfigError
from rewardkit.pipelines._config import load_config, local_path, output_path
from rewardkit.pipelines.grpo import DatasetConfig, GRPORunConfig, GRPORunResult, SamplesConfig

__all__ = ["SPCT_BETA", "JudgeGRPOConfig", "load_judge_grpo_config", "train_judge_grpo"]

SPCT_BETA = 0.08
LABEL_COLUMN = "judge_label"


class JudgeGRPOConfig(BaseModel):
    """A `rewardkit train judge-grpo` run."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="The judge to train: a hub id or a local model folder.")
    dataset: str = Field(
        description="Judge prompts with a `judge_label` column (spct rft's rl.jsonl)."
    )
    output_dir: str = Field(description="Checkpoints, the final model and samples go here.")
    beta: float = Field(
        default=SPCT_BETA, ge=0, description="KL coefficient (trl.GRPOConfig.beta)."
    )
    limit: int | None = Field(default=None, ge=1, description="Use only the first N prompts.")
    reward_args: dict[str, Any] = Field(
        default_factory=dict, description="Options of judge_agreement (correct, wrong)."
    )
    samples: SamplesConfig = Field(default_factory=SamplesConfig)
    grpo: dict[str, Any] = Field(
        default_factory=dict, description="Options for trl.GRPOConfig, passed through."
    )

    def to_run_config(self) -> GRPORunConfig:
        """The `rewardkit train grpo` config this preset stands for."""
        if "beta" in self.grpo and self.grpo["beta"] != self.beta:
            raise ConfigError("grpo.beta: set the KL coefficient as `beta` (top level)")
        return GRPORunConfig(
            model=self.model,
            dataset=DatasetConfig(
                path=self.dataset, reference_column=LABEL_COLUMN, limit=self.limit
            ),
            reward={"rewards": [{"reward": "judge_agreement", "args": dict(self.reward_args)}]},
            output_dir=self.output_dir,
            samples=self.samples,
            grpo={**self.grpo, "beta": self.beta},
        )


def load_judge_grpo_config(path: str | Path) -> JudgeGRPOConfig:
    config, base = load_config(path, JudgeGRPOConfig, "model, dataset, output_dir, grpo")
    return config.model_copy(
        update={
            "model": local_path(base, config.model),
            "dataset": output_path(base, config.dataset),
            "output_dir": output_path(base, config.output_dir),
        }
    )


def train_judge_grpo(config: JudgeGRPOConfig, *, resume: bool = False) -> GRPORunResult:
    """Train the judge with GRPO on judge_agreement (the GRPO pipeline does the work)."""
    from rewardkit.pipelines.grpo import train_grpo

    return train_grpo(config.to_run_config(), resume=resume)
