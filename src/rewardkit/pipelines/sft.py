"""SFT on sampled data: a thin, documented shell over TRL's `SFTTrainer`.

Closes R1's loop: `rewardkit sample` writes chat `messages` rows; this trains on them.
`rewardkit train sft --config run.yaml` reads a config like

```yaml
model: Qwen/Qwen2.5-0.5B-Instruct     # a hub id or a local folder
dataset:
  path: runs/rs/sft.jsonl             # JSONL, Parquet, a `datasets` folder, or a hub id
  min_reward: 1.0                     # optional: only rows whose `reward` reaches this
output_dir: runs/sft
completion_only: false                # true: learn only each row's last (assistant) turn
sft:                                  # passed to trl.SFTConfig as is (checked for typos)
  learning_rate: 1.0e-5
  num_train_epochs: 2
  max_length: 4096
```

Relative paths (model, dataset, output_dir) are taken from the config file's folder;
`model` and `dataset.path` fall back to hub ids when no such path exists there. Training
resumes from the last checkpoint in `output_dir` with `resume=True`. The provenance
columns `rewardkit sample` writes (reward, policy, sampling, ...) are left to TRL, which
keeps only what the model reads.

`completion_only: true` splits each row's messages into a prompt (every turn but the last)
and a completion (the final assistant turn) and turns on `trl.SFTConfig.completion_only_loss`,
so the loss falls on the answer only; `rewardkit train judge-sft` is this with SPCT's
defaults. (TRL's `assistant_only_loss` would do it on `messages` directly, but it needs a
chat template with `{% generation %}` markers, which most models' templates lack.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rewardkit.errors import ConfigError, InputError
from rewardkit.pipelines._config import (
    load_config,
    load_dataset,
    local_path,
    output_path,
    require,
    trainer_args,
)

__all__ = ["SFTDatasetConfig", "SFTRunConfig", "SFTRunResult", "load_sft_config", "train_sft"]


class SFTDatasetConfig(BaseModel):
    """Where the SFT rows come from."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="A JSONL or Parquet file, a `datasets` folder, or a hub dataset id."
    )
    split: str = Field(
        default="train", description="Split of a hub dataset or a DatasetDict folder."
    )
    messages_column: str = Field(default="messages", description="Column of chat messages.")
    min_reward: float | None = Field(
        default=None, description="Keep only rows whose `reward` column reaches this."
    )
    limit: int | None = Field(default=None, ge=1, description="Use only the first N rows.")


class SFTRunConfig(BaseModel):
    """A `rewardkit train sft` run."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Model to fine-tune: a hub id or a local model folder.")
    dataset: SFTDatasetConfig
    output_dir: str = Field(description="Checkpoints and the final model go here.")
    completion_only: bool = Field(
        default=False,
        description="Learn only the last turn of each row (an assistant turn), not the prompt.",
    )
    sft: dict[str, Any] = Field(
        default_factory=dict, description="Options for trl.SFTConfig, passed through."
    )


def load_sft_config(path: str | Path) -> SFTRunConfig:
    """Read and validate a run config; relative paths are resolved against its folder."""
    config, base = load_config(path, SFTRunConfig, "model, dataset, output_dir")
    dataset = config.dataset.model_copy(update={"path": local_path(base, config.dataset.path)})
    return config.model_copy(
        update={
            "model": local_path(base, config.model),
            "dataset": dataset,
            "output_dir": output_path(base, config.output_dir),
        }
    )


def _require(module: str) -> Any:
    return require(module, "rewardkit train sft")


def build_sft_config(config: SFTRunConfig) -> Any:
    """`trl.SFTConfig` from the `sft:` mapping, unknown keys reported with suggestions."""
    trl = _require("trl")
    options = dict(config.sft)
    if config.completion_only:
        options.setdefault("completion_only_loss", True)
    return trainer_args(trl.SFTConfig, config.output_dir, options, "sft", "trl.SFTConfig")


def load_sft_dataset(config: SFTDatasetConfig, *, completion_only: bool = False) -> Any:
    """A `datasets.Dataset` of chat turns: `messages`, or `prompt` and `completion`."""
    column = config.messages_column

    def check(record: dict[str, Any]) -> str | None:
        # checked as written: `datasets` fills missing keys with None, or refuses mixed rows
        if column not in record:
            return f"no messages column {column!r}; columns: {list(record)}"
        return messages_problem(record[column], completion_only)

    path = Path(config.path)
    dataset = load_dataset(_require("datasets"), config.path, config.split, check_record=check)
    columns = list(dataset.column_names)
    if config.messages_column not in columns:
        raise InputError(
            f"dataset has no messages column {config.messages_column!r}; columns: {columns}"
        )
    if config.messages_column != "messages":
        dataset = dataset.rename_column(config.messages_column, "messages")
    if not path.is_file():
        for index, messages in enumerate(dataset["messages"], 1):
            problem = messages_problem(messages, completion_only)
            if problem is not None:
                raise InputError(f"{config.path}: row {index}: {problem}")
    if config.min_reward is not None:
        if "reward" not in columns:
            raise InputError(
                "dataset.min_reward needs a `reward` column (rewardkit sample writes one)"
            )
        threshold = config.min_reward
        dataset = dataset.filter(
            lambda row: row["reward"] is not None and row["reward"] >= threshold
        )
    if config.limit is not None:
        dataset = dataset.select(range(min(config.limit, len(dataset))))
    if len(dataset) == 0:
        raise InputError(f"{config.path}: no rows to train on")
    if completion_only:
        dataset = dataset.map(_split_last_turn, remove_columns=["messages"])
    return dataset  # as written: TRL reads the turns and leaves provenance columns be


def messages_problem(messages: Any, completion_only: bool) -> str | None:
    """What is wrong with one row's chat turns, or None."""
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages)
    ):
        return "messages must be a non-empty list of {role, content} turns"
    if completion_only and (len(messages) < 2 or messages[-1]["role"] != "assistant"):
        return "completion_only needs a prompt turn and a last turn with role 'assistant'"
    return None


def _split_last_turn(row: dict[str, Any]) -> dict[str, Any]:
    # Only role and content: a column of turns loaded by `datasets` may carry other keys as
    # None, which some chat templates would render.
    turns = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    return {"prompt": turns[:-1], "completion": turns[-1:]}


@dataclass
class SFTRunResult:
    """What a run did: where the model is and the loss curve TRL logged."""

    output_dir: Path
    global_step: int
    losses: list[float] = field(default_factory=list)
    resumed_from: str | None = None
    log_history: list[dict[str, Any]] = field(default_factory=list)


def train_sft(config: SFTRunConfig, *, resume: bool = False) -> SFTRunResult:
    """Fine-tune on the dataset's messages; `resume=True` continues the last checkpoint."""
    trl = _require("trl")
    transformers = _require("transformers")
    from transformers.trainer_utils import get_last_checkpoint

    output_dir = Path(config.output_dir)
    last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    if last is not None and not resume:
        raise ConfigError(
            f"{output_dir} already holds checkpoints (last: {Path(last).name}); "
            "pass --resume to continue it, or choose another output_dir"
        )
    args = build_sft_config(config)
    dataset = load_sft_dataset(config.dataset, completion_only=config.completion_only)
    tokenizer = transformers.AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    trainer = trl.SFTTrainer(
        model=config.model, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    trainer.train(resume_from_checkpoint=last if resume else None)
    trainer.save_model(str(output_dir))
    history = list(trainer.state.log_history)
    return SFTRunResult(
        output_dir=output_dir,
        global_step=trainer.state.global_step,
        losses=[float(h["loss"]) for h in history if "loss" in h],
        resumed_from=last if resume else None,
        log_history=history,
    )


def run_cli(config_path: str, *, resume: bool) -> int:
    """`rewardkit train sft`: train, then print the loss curve's ends and where the model is."""
    result = train_sft(load_sft_config(config_path), resume=resume)
    if resume and result.resumed_from is None:
        print("rewardkit train sft: no checkpoint found; trained from the start")
    if result.losses:
        print(
            f"trained {result.global_step} steps; loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f}"
        )
    else:
        print(f"trained {result.global_step} steps")
    print(f"model and checkpoints: {result.output_dir}")
    return 0
