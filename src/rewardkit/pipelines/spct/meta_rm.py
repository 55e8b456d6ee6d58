"""`rewardkit train meta-rm`: the meta RM that picks which sampled judgments to trust.

```yaml
model: Qwen/Qwen2.5-0.5B            # base model; a one-label classification head is added
data: [rft/meta_rm.jsonl]           # MetaRMRecord JSONL (spct rft writes one; add the
                                    # judge's own samples via records_from_result)
output_dir: runs/meta-rm            # then: rewardkit judge ... --meta-rm runs/meta-rm --keep 4
max_length: 2048
eval_fraction: 0.1                  # held out by query id; accuracy reported
train:                              # transformers.TrainingArguments options
  learning_rate: 1.0e-5
  num_train_epochs: 2
```

A pointwise binary classifier, as in DeepSeek-GRM: `AutoModelForSequenceClassification`
with `num_labels=1`, trained with binary cross-entropy on "did this judgment pick
correctly" over `format_meta_input(query, responses, judgment)` — the exact text
`TransformersMetaRM` scores at inference, so the saved folder is what `--meta-rm PATH`
loads. (`problem_type="multi_label_classification"` is how transformers spells BCE on one
logit.) The held-out split is by query id, so no query is on both sides.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rewardkit.errors import InputError
from rewardkit.judges.meta_rm import MetaRMRecord, read_meta_records
from rewardkit.judges.templates import make_nonce
from rewardkit.pipelines._config import (
    last_checkpoint,
    load_config,
    local_path,
    output_path,
    require,
    trainer_args,
)

__all__ = ["MetaRMRunResult", "MetaRMTrainConfig", "load_meta_rm_config", "train_meta_rm"]


class MetaRMTrainConfig(BaseModel):
    """A `rewardkit train meta-rm` run."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Base model (hub id or folder); a 1-label head is added.")
    data: list[str] = Field(min_length=1, description="MetaRMRecord JSONL files.")
    output_dir: str = Field(description="The trained classifier (and checkpoints) go here.")
    max_length: int = Field(default=2048, ge=16, description="Tokens per input (truncated).")
    eval_fraction: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Share of query ids held out for accuracy."
    )
    seed: int = Field(default=0, description="Split and initialisation seed.")
    train: dict[str, Any] = Field(
        default_factory=dict, description="Options for transformers.TrainingArguments."
    )


@dataclass
class MetaRMRunResult:
    output_dir: Path
    global_step: int
    train_records: int
    eval_records: int
    losses: list[float] = field(default_factory=list)
    #: Held-out accuracy (logit > 0 means "correct"), and the majority-label baseline.
    eval_accuracy: float | None = None
    eval_majority: float | None = None


def load_meta_rm_config(path: str | Path) -> MetaRMTrainConfig:
    config, base = load_config(path, MetaRMTrainConfig, "model, data, output_dir, train")
    return config.model_copy(
        update={
            "model": local_path(base, config.model),
            "data": [output_path(base, d) for d in config.data],
            "output_dir": output_path(base, config.output_dir),
        }
    )


def split_records(
    records: list[MetaRMRecord], eval_fraction: float, seed: int
) -> tuple[list[MetaRMRecord], list[MetaRMRecord]]:
    """(train, eval), split by query id (or query text when there is no id)."""
    if eval_fraction <= 0:
        return records, []
    keys = sorted({r.id or make_nonce(r.query) for r in records})
    random.Random(seed).shuffle(keys)
    held = set(keys[: max(1, round(len(keys) * eval_fraction))])
    train = [r for r in records if (r.id or make_nonce(r.query)) not in held]
    held_out = [r for r in records if (r.id or make_nonce(r.query)) in held]
    return train, held_out


def train_meta_rm(config: MetaRMTrainConfig, *, resume: bool = False) -> MetaRMRunResult:
    """Train the meta RM; the output folder loads with `TransformersMetaRM(output_dir)`."""
    transformers = require("transformers", "rewardkit train meta-rm")
    datasets = require("datasets", "rewardkit train meta-rm")
    import torch

    records = [record for path in config.data for record in read_meta_records(path)]
    if not records:
        raise InputError(f"no meta-RM records in {', '.join(config.data)}")
    train, held_out = split_records(records, config.eval_fraction, config.seed)
    if len({r.label for r in train}) < 2:
        raise InputError(
            "meta-RM training data has only one label; it needs judgments that were right "
            "and judgments that were wrong"
        )
    last = last_checkpoint(config.output_dir, resume)
    options = {"seed": config.seed, **config.train}
    args = trainer_args(transformers.TrainingArguments, config.output_dir, options, "train")

    tokenizer = transformers.AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        config.model, num_labels=1, problem_type="multi_label_classification"
    )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id

    def encode(rows: list[MetaRMRecord]) -> Any:
        encoded = tokenizer([r.text() for r in rows], truncation=True, max_length=config.max_length)
        encoded["labels"] = [[float(r.label)] for r in rows]
        return datasets.Dataset.from_dict(dict(encoded))

    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=encode(train),
        data_collator=transformers.DataCollatorWithPadding(tokenizer),
    )
    trainer.train(resume_from_checkpoint=last)
    trainer.save_model(config.output_dir)
    tokenizer.save_pretrained(config.output_dir)
    history = list(trainer.state.log_history)
    result = MetaRMRunResult(
        output_dir=Path(config.output_dir),
        global_step=trainer.state.global_step,
        train_records=len(train),
        eval_records=len(held_out),
        losses=[float(h["loss"]) for h in history if "loss" in h],
    )
    if held_out:
        from rewardkit.judges.meta_rm import TransformersMetaRM

        meta = TransformersMetaRM(config.output_dir, max_length=config.max_length)
        with torch.no_grad():
            ratings = meta.score_texts([r.text() for r in held_out])
        hits = sum(
            (rating > 0) == bool(r.label) for rating, r in zip(ratings, held_out, strict=True)
        )
        positives = sum(r.label for r in held_out)
        result.eval_accuracy = hits / len(held_out)
        result.eval_majority = max(positives, len(held_out) - positives) / len(held_out)
    return result
