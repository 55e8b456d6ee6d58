"""`rewardkit train judge-sft`: supervised fine-tuning of the judge on RFT rows, as an SFT preset.

```yaml
model: Qwen/Qwen2.5-0.5B-Instruct   # the judge to tune: a hub id or a local folder
dataset: rft/sft.jsonl              # `rewardkit spct rft`'s SFT rows ({"messages": [...]})
output_dir: runs/judge-sft
completion_only: true               # loss on the judgment only, not on the judge prompt
sft:                                # passed to trl.SFTConfig (checked for typos)
  learning_rate: 1.0e-5
  num_train_epochs: 1
```

It is `rewardkit train sft` (pipelines/sft.py) with RFT's rows as the dataset and
`completion_only` on by default: each row is split into the prompt (the user turn) and the
completion (the judge's trajectory), so only the trajectory is learned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rewardkit.errors import InputError
from rewardkit.pipelines._config import load_config, local_path, output_path, require
from rewardkit.pipelines.sft import SFTDatasetConfig, SFTRunConfig, SFTRunResult

__all__ = ["JudgeSFTConfig", "SFTRunResult", "load_judge_sft_config", "train_judge_sft"]


class JudgeSFTConfig(BaseModel):
    """A `rewardkit train judge-sft` run."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="The judge to fine-tune: a hub id or a local model folder.")
    dataset: str = Field(description="SFT rows: JSONL with a `messages` list (user, assistant).")
    output_dir: str = Field(description="Checkpoints and the final model go here.")
    completion_only: bool = Field(
        default=True, description="Learn the assistant turn only (the judgment), not the prompt."
    )
    limit: int | None = Field(default=None, ge=1, description="Use only the first N rows.")
    sft: dict[str, Any] = Field(
        default_factory=dict, description="Options for trl.SFTConfig, passed through."
    )

    def to_run_config(self) -> SFTRunConfig:
        """The `rewardkit train sft` config this preset stands for."""
        return SFTRunConfig(
            model=self.model,
            dataset=SFTDatasetConfig(path=self.dataset, limit=self.limit),
            output_dir=self.output_dir,
            completion_only=self.completion_only,
            sft=dict(self.sft),
        )


def load_judge_sft_config(path: str | Path) -> JudgeSFTConfig:
    config, base = load_config(path, JudgeSFTConfig, "model, dataset, output_dir, sft")
    return config.model_copy(
        update={
            "model": local_path(base, config.model),
            "dataset": output_path(base, config.dataset),
            "output_dir": output_path(base, config.output_dir),
        }
    )


def train_judge_sft(config: JudgeSFTConfig, *, resume: bool = False) -> SFTRunResult:
    """Fine-tune the judge; `resume=True` continues from the last checkpoint in output_dir."""
    from rewardkit.pipelines.sft import train_sft

    require("trl", "rewardkit train judge-sft")  # names this command if TRL is missing
    dataset = Path(config.dataset)
    if not dataset.exists():
        raise InputError(f"judge-sft dataset not found: {dataset}")
    if dataset.is_file() and dataset.stat().st_size == 0:  # what RFT writes when none passed
        raise InputError(
            f"{dataset}: no SFT rows (did RFT accept any trajectory? see summary.json)"
        )
    return train_sft(config.to_run_config(), resume=resume)
