"""`rewardkit train judge-sft`: supervised fine-tuning of the judge on RFT rows (TRL).

```yaml
model: Qwen/Qwen2.5-0.5B-Instruct   # the judge to tune: a hub id or a local folder
dataset: rft/sft.jsonl              # `rewardkit spct rft`'s SFT rows ({"messages": [...]})
output_dir: runs/judge-sft
completion_only: true               # loss on the judgment only, not on the judge prompt
sft:                                # passed to trl.SFTConfig (checked for typos)
  learning_rate: 1.0e-5
  num_train_epochs: 1
```

A thin preset over TRL's `SFTTrainer`: it reads the chat rows, splits each into the prompt
(the user turn) and the completion (the judge's trajectory) so only the trajectory is
learned, and trains. Its runner is local to SPCT for now and should merge with the generic
`rewardkit train sft` (pipelines/sft.py) once that lands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rewardkit.errors import InputError
from rewardkit.io import iter_rows
from rewardkit.pipelines.spct._config import (
    last_checkpoint,
    load_config,
    local_path,
    output_path,
    require,
    trainer_args,
)

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


@dataclass
class SFTRunResult:
    output_dir: Path
    global_step: int
    losses: list[float] = field(default_factory=list)  # training loss per logged step
    log_history: list[dict[str, Any]] = field(default_factory=list)


def load_judge_sft_config(path: str | Path) -> JudgeSFTConfig:
    config, base = load_config(path, JudgeSFTConfig, "model, dataset, output_dir, sft")
    return config.model_copy(
        update={
            "model": local_path(base, config.model),
            "dataset": output_path(base, config.dataset),
            "output_dir": output_path(base, config.output_dir),
        }
    )


def sft_rows(
    path: str | Path, completion_only: bool, limit: int | None = None
) -> list[dict[str, Any]]:
    """Chat rows as TRL reads them: `{prompt, completion}` (completion only) or `{messages}`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"judge-sft dataset not found: {path}")
    rows: list[dict[str, Any]] = []
    for row in iter_rows(path):
        if limit is not None and len(rows) >= limit:
            break
        record = row.record
        messages = None if record is None else record.get("messages")
        if (
            not isinstance(messages, list)
            or len(messages) < 2
            or not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages)
            or messages[-1]["role"] != "assistant"
        ):
            raise InputError(
                f"{path}:{row.line}: expected {{'messages': [..., {{'role': 'assistant', ...}}]}}"
            )
        turns = [{"role": m["role"], "content": m["content"]} for m in messages]
        rows.append(
            {"prompt": turns[:-1], "completion": turns[-1:]}
            if completion_only
            else {"messages": turns}
        )
    if not rows:
        raise InputError(f"{path}: no SFT rows (did RFT accept any trajectory? see summary.json)")
    return rows


def train_judge_sft(config: JudgeSFTConfig, *, resume: bool = False) -> SFTRunResult:
    """Fine-tune the judge; `resume=True` continues from the last checkpoint in output_dir."""
    trl = require("trl", "rewardkit train judge-sft")
    datasets = require("datasets", "rewardkit train judge-sft")
    transformers = require("transformers", "rewardkit train judge-sft")
    last = last_checkpoint(config.output_dir, resume)
    options = dict(config.sft)
    if config.completion_only:
        options.setdefault("completion_only_loss", True)
    args = trainer_args(trl.SFTConfig, config.output_dir, options, "sft")
    dataset = datasets.Dataset.from_list(
        sft_rows(config.dataset, config.completion_only, config.limit)
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    trainer = trl.SFTTrainer(
        model=config.model, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    trainer.train(resume_from_checkpoint=last)
    trainer.save_model(config.output_dir)
    history = list(trainer.state.log_history)
    return SFTRunResult(
        output_dir=Path(config.output_dir),
        global_step=trainer.state.global_step,
        losses=[float(h["loss"]) for h in history if "loss" in h],
        log_history=history,
    )
