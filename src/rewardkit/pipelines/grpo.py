"""GRPO training on rewardkit rewards: a thin, documented shell over TRL's `GRPOTrainer`.

`rewardkit train grpo --config run.yaml` reads a config like

```yaml
model: Qwen/Qwen2.5-0.5B-Instruct     # a hub id or a local folder
dataset:
  path: data/train.jsonl              # JSONL, Parquet, a `datasets` folder, or a hub id
  reference_column: answer            # what the rewards check against
reward:                               # an inline spec, or a path to a spec file
  rewards:
    - reward: math
    - reward: think_format
      weight: 0.2
output_dir: runs/grpo-math
samples: {every: 10}                  # write prompt/completion/reward JSONL every 10 steps
audit:                                # optional: catch reward hacking (docs/audit.md)
  gold: math                          # the reward the proxy should agree with
  prompts: data/heldout.jsonl         # fixed held-out prompts
  every: 10
grpo:                                 # passed to trl.GRPOConfig as is (checked for typos)
  learning_rate: 1.0e-6
  num_generations: 8
  max_completion_length: 1024
```

Relative paths (model, dataset, reward file, output_dir) are taken from the config file's
folder; `model` and `dataset.path` fall back to hub ids when no such path exists there.
Training resumes from the last checkpoint in `output_dir` with `resume=True`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rewardkit.errors import ConfigError, InputError
from rewardkit.integrations.trl import AsyncRewardFunc, RewardFunc, reward_funcs
from rewardkit.pipelines._config import (
    load_config,
    load_dataset,
    local_path,
    require,
    trainer_args,
)
from rewardkit.pipelines.audit.config import AuditConfig, resolve_reward_spec
from rewardkit.scoring import RewardReport
from rewardkit.spec import RewardSpec, load_spec
from rewardkit.types import Sample, Score

__all__ = [
    "AuditConfig",
    "DatasetConfig",
    "GRPORunConfig",
    "GRPORunResult",
    "SamplesConfig",
    "load_run_config",
    "train_grpo",
]


class DatasetConfig(BaseModel):
    """Where the training prompts come from."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="A JSONL or Parquet file, a `datasets` folder, or a hub dataset id."
    )
    split: str = Field(
        default="train", description="Split of a hub dataset or a DatasetDict folder."
    )
    name: str | None = Field(
        default=None, description="Configuration of a hub dataset (e.g. 'main' for openai/gsm8k)."
    )
    prompt_column: str = Field(
        default="prompt", description="Column holding the prompt: a string or chat messages."
    )
    reference_column: str = Field(
        default="reference", description="Column the rewards check against (e.g. answer, solution)."
    )
    system_prompt: str | None = Field(
        default=None, description="If set, prompts become chat messages with this system turn."
    )
    limit: int | None = Field(default=None, ge=1, description="Use only the first N rows.")


class SamplesConfig(BaseModel):
    """Periodic samples written to `<output_dir>/<path>` while training."""

    model_config = ConfigDict(extra="forbid")

    every: int = Field(
        default=10, ge=1, description="Write the latest batch every N optimizer steps."
    )
    max_rows: int = Field(default=16, ge=1, description="At most this many completions per write.")
    path: str = Field(default="samples.jsonl", description="File name inside output_dir.")


class GRPORunConfig(BaseModel):
    """A `rewardkit train grpo` run."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Policy to train: a hub id or a local model folder.")
    dataset: DatasetConfig
    reward: dict[str, Any] | str = Field(
        description="A reward spec inline (checked by `rewardkit.spec.load_spec`), or the path "
        "to a spec file."
    )
    output_dir: str = Field(description="Checkpoints, the final model and samples go here.")
    reward_mode: Literal["combined", "per_reward"] = Field(
        default="combined",
        description="One TRL reward function for the whole spec, or one per spec entry "
        "(TRL then logs each and applies the spec weights as GRPOConfig.reward_weights).",
    )
    samples: SamplesConfig = Field(default_factory=SamplesConfig)
    audit: AuditConfig | None = Field(
        default=None,
        description="Score held-out answers by the proxy and a gold reward every N steps and "
        "flag divergence (reward hacking); see docs/audit.md.",
    )
    grpo: dict[str, Any] = Field(
        default_factory=dict, description="Options for trl.GRPOConfig, passed through."
    )


def load_run_config(path: str | Path) -> GRPORunConfig:
    """Read and validate a run config; relative paths are resolved against its folder."""
    path = Path(path)
    config, base = load_config(path, GRPORunConfig, "model, dataset, reward, output_dir")
    if isinstance(config.reward, dict):
        try:
            load_spec(config.reward)
        except ConfigError as exc:
            raise ConfigError(f"{path}: reward: {exc}") from exc
    if config.audit is not None and isinstance(config.audit.gold, dict):
        try:
            load_spec(config.audit.gold)
        except ConfigError as exc:
            raise ConfigError(f"{path}: audit.gold: {exc}") from exc
    return _resolve_paths(config, base)


def _resolve_paths(config: GRPORunConfig, base: Path) -> GRPORunConfig:
    def local(value: str) -> str:
        return local_path(base, value)

    reward = config.reward
    if isinstance(reward, str) and not Path(reward).is_absolute():
        reward = str(base / reward)
    output_dir = config.output_dir
    if not Path(output_dir).is_absolute():
        output_dir = str(base / output_dir)
    dataset = config.dataset.model_copy(update={"path": local(config.dataset.path)})
    audit = config.audit
    if audit is not None:
        gold = audit.gold
        spec_file = isinstance(gold, str) and (
            (base / gold).is_file() or Path(gold).suffix in (".yaml", ".yml", ".json", ".toml")
        )
        if isinstance(gold, str) and spec_file and not Path(gold).is_absolute():
            gold = str(base / gold)
        audit = audit.model_copy(update={"prompts": local(audit.prompts), "gold": gold})
    return config.model_copy(
        update={
            "model": local(config.model),
            "dataset": dataset,
            "reward": reward,
            "output_dir": output_dir,
            "audit": audit,
        }
    )


# --- GRPOConfig ----------------------------------------------------------------------------


def build_grpo_config(config: GRPORunConfig, spec: RewardSpec) -> Any:
    """`trl.GRPOConfig` from the `grpo:` mapping, unknown keys reported with suggestions."""
    trl = _require("trl")
    options = dict(config.grpo)
    if config.reward_mode == "per_reward":
        weights = [e.weight for e in spec.rewards]
        if "reward_weights" in options and list(options["reward_weights"]) != weights:
            raise ConfigError(
                "grpo.reward_weights: in per_reward mode the weights come from the spec; "
                "set each entry's `weight` instead"
            )
        options["reward_weights"] = weights
    elif "reward_weights" in options:
        raise ConfigError(
            "grpo.reward_weights: in combined mode there is one reward function; "
            "weights belong in the spec"
        )
    return trainer_args(trl.GRPOConfig, config.output_dir, options, "grpo", "trl.GRPOConfig")


def _require(module: str) -> Any:
    return require(module, "rewardkit train grpo")


# --- dataset -------------------------------------------------------------------------------


def load_train_dataset(config: DatasetConfig) -> Any:
    """A `datasets.Dataset` with a `prompt` column (plus every other column, for the rewards)."""
    dataset = load_dataset(
        _require("datasets"), config.path, config.split, name=config.name, require_rows=True
    )
    columns = list(dataset.column_names)
    if config.prompt_column not in columns:
        raise InputError(
            f"dataset has no prompt column {config.prompt_column!r}; columns: {columns}"
        )
    if config.prompt_column != "prompt":
        if "prompt" in columns:
            raise InputError(
                f"dataset has both 'prompt' and prompt_column {config.prompt_column!r}; rename one"
            )
        dataset = dataset.rename_column(config.prompt_column, "prompt")
    if config.limit is not None:
        dataset = dataset.select(range(min(config.limit, len(dataset))))
    if config.system_prompt is not None:
        system = {"role": "system", "content": config.system_prompt}

        def with_system(row: dict[str, Any]) -> dict[str, Any]:
            prompt = row["prompt"]
            turns = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
            return {"prompt": [system, *turns]}

        dataset = dataset.map(with_system)
    return dataset


# --- periodic samples ----------------------------------------------------------------------


class SampleLog:
    """Keeps the latest batch each reward function saw; the callback writes it every N steps.

    In per_reward mode every function sees the same completions, so the functions' results
    line up row by row and the written `reward` is TRL's weighted sum of them.
    """

    def __init__(self, path: Path, every: int, max_rows: int, weights: dict[str, float]) -> None:
        self.path = path
        self.every = every
        self.max_rows = max_rows
        self.weights = weights
        self._latest: dict[str, tuple[list[Sample], list[RewardReport]]] = {}

    def record(self, name: str, samples: list[Sample], reports: list[RewardReport]) -> None:
        self._latest[name] = (samples, reports)

    def rows(self, step: int) -> list[dict[str, Any]]:
        if not self._latest:
            return []
        names = list(self._latest)
        samples = self._latest[names[0]][0]
        rows: list[dict[str, Any]] = []
        for i, sample in enumerate(samples[: self.max_rows]):
            per_func = {
                name: self._latest[name][1][i] for name in names if i < len(self._latest[name][1])
            }
            values = {name: r.reward for name, r in per_func.items()}
            scored = [
                self.weights.get(name, 1.0) * v for name, v in values.items() if v is not None
            ]
            components: dict[str, float | None] = {}
            reasons = []
            for report in per_func.values():
                for label, result in report.components.items():
                    components[label] = result.value if isinstance(result, Score) else None
                if report.reason:
                    reasons.append(report.reason)
            rows.append(
                {
                    "step": step,
                    "prompt": sample.prompt,
                    "completion": sample.response,
                    "reference": _jsonable(sample.reference),
                    "reward": sum(scored) if scored else None,
                    "components": components,
                    **({"unscored_reason": "; ".join(reasons)} if reasons else {}),
                }
            )
        return rows

    def write(self, step: int) -> int:
        rows = self.rows(step)
        if rows:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        return len(rows)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _sample_callback(log: SampleLog) -> Any:
    transformers = _require("transformers")

    class WriteSamples(transformers.TrainerCallback):  # type: ignore[name-defined]
        """Writes the latest batch's prompts, completions and rewards every N steps."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero and state.global_step % log.every == 0:
                log.write(state.global_step)

    return WriteSamples()


# --- the run -------------------------------------------------------------------------------


@dataclass
class GRPORunResult:
    """What a run did: where things are and the reward curve TRL logged."""

    output_dir: Path
    global_step: int
    rewards: list[float] = field(default_factory=list)  # mean reward per logged step
    samples_path: Path | None = None
    resumed_from: str | None = None
    log_history: list[dict[str, Any]] = field(default_factory=list)
    audit: dict[str, Any] | None = None  # the `kind: audit` document, when audit: is set


def train_grpo(config: GRPORunConfig, *, resume: bool = False) -> GRPORunResult:
    """Train with GRPO; `resume=True` continues from the last checkpoint in output_dir."""
    spec = load_spec(config.reward)
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
    args = build_grpo_config(config, spec)
    dataset = load_train_dataset(config.dataset)
    auditor = _auditor(config, spec) if config.audit is not None else None

    funcs: Sequence[RewardFunc | AsyncRewardFunc] = reward_funcs(
        spec, reference_column=config.dataset.reference_column, mode=config.reward_mode
    )
    weights = (
        {f.__name__: e.weight for f, e in zip(funcs, spec.rewards, strict=True)}
        if config.reward_mode == "per_reward"
        else {}
    )
    log = SampleLog(
        output_dir / config.samples.path, config.samples.every, config.samples.max_rows, weights
    )
    for func in funcs:
        func.recorder = log.record

    tokenizer = transformers.AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    trainer = trl.GRPOTrainer(
        model=config.model,
        reward_funcs=list(funcs),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[_sample_callback(log)],
    )
    if auditor is not None:
        from rewardkit.pipelines.audit.callback import audit_callback

        trainer.add_callback(audit_callback(auditor, trainer))
    trainer.train(resume_from_checkpoint=last if resume else None)
    trainer.save_model(str(output_dir))
    history = list(trainer.state.log_history)
    return GRPORunResult(
        output_dir=output_dir,
        global_step=trainer.state.global_step,
        rewards=[float(h["reward"]) for h in history if "reward" in h],
        samples_path=log.path if log.path.exists() else None,
        resumed_from=last if resume else None,
        log_history=history,
        audit=auditor.document() if auditor is not None else None,
    )


def _auditor(config: GRPORunConfig, spec: RewardSpec) -> Any:
    """The held-out prompts and both scorers, checked before any training starts."""
    from rewardkit.pipelines.audit.callback import PolicyAuditor
    from rewardkit.pipelines.audit.record import spec_scorer
    from rewardkit.registry import resolve_factory

    audit = config.audit
    assert audit is not None
    try:
        gold = resolve_reward_spec(audit.gold)
        for entry in gold.rewards:  # an unknown name fails now, not at the first audit
            resolve_factory(entry.reward)
    except ConfigError as exc:
        raise ConfigError(f"audit.gold: {exc}") from exc
    reference_column = audit.reference_column or config.dataset.reference_column
    heldout = load_train_dataset(
        config.dataset.model_copy(
            update={
                "path": audit.prompts,
                "prompt_column": audit.prompt_column or config.dataset.prompt_column,
                "reference_column": reference_column,
                "limit": audit.limit,
                "split": config.dataset.split,
            }
        )
    )
    return PolicyAuditor(
        config=audit,
        rows=list(heldout),
        reference_column=reference_column,
        proxy=spec_scorer(spec),
        gold=spec_scorer(gold),
        output_dir=Path(config.output_dir),
    )
