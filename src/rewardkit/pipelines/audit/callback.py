"""The online audit: a TRL/transformers `TrainerCallback` that audits the policy as it trains.

Every `audit.every` optimizer steps (and once before the first), the policy answers a fixed
held-out prompt set — greedily, or sampled under a fixed seed inside `torch.random.fork_rng`
so the training run's random stream is left exactly as it was — and the answers are scored
by the proxy (the training spec) and the gold reward. Each point is

* logged through `trainer.log` as `audit/proxy_mean`, `audit/gold_mean`, `audit/<feature>`,
  so every logger the trainer reports to (W&B, TensorBoard, `state.log_history`) gets it —
  TRL's own evaluation callbacks log the same way. The call is made while the model is in
  eval mode, which is also when `GRPOTrainer.log` leaves its training metrics alone;
* appended to OUTPUT_DIR/audit.csv and OUTPUT_DIR/audit.json (`kind: audit`).

When the divergence rule first holds, a `RewardHackingWarning` is raised through
`warnings` and the `rewardkit.audit` logger; every flagged step is kept in audit.json.
The audit runs on the main process only (not supported under DeepSpeed ZeRO-3, where
generation needs every rank).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardkit.errors import MissingDependencyError
from rewardkit.pipelines.audit.config import AuditConfig
from rewardkit.pipelines.audit.divergence import report_divergence
from rewardkit.pipelines.audit.record import (
    AuditPoint,
    ScoreFn,
    audit_json,
    detect,
    points_from_json,
    score_point,
    write_csv,
    write_json,
)
from rewardkit.text import prompt_text
from rewardkit.types import Sample

__all__ = ["AUDIT_CSV", "AUDIT_JSON", "PolicyAuditor", "audit_callback", "generate_answers"]

AUDIT_CSV = "audit.csv"
AUDIT_JSON = "audit.json"


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str | list[dict[str, str]]],
    *,
    max_new_tokens: int,
    sampling: str = "greedy",
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
) -> list[str]:
    """The policy's answers to `prompts` (chat prompts go through the chat template).

    The model's train/eval mode, the tokenizer's padding side and the global RNG state are
    restored afterwards, so auditing does not change the training run.
    """
    import torch

    texts = [
        p
        if isinstance(p, str)
        else tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    was_training = model.training
    side = tokenizer.padding_side
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    answers: list[str] = []
    try:
        model.eval()
        tokenizer.padding_side = "left"
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            for start in range(0, len(texts), batch_size):
                batch = texts[start : start + batch_size]
                # As GRPOTrainer tokenizes prompts: the template already holds any BOS.
                encoded = tokenizer(
                    batch, return_tensors="pt", padding=True, add_special_tokens=False
                ).to(model.device)
                output = model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    do_sample=sampling == "sample",
                    temperature=temperature if sampling == "sample" else None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=tokenizer.pad_token_id,
                )
                new_tokens = output[:, encoded["input_ids"].shape[1] :]
                answers.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


@dataclass
class PolicyAuditor:
    """Answers the held-out prompts with the policy and scores them; keeps the curve."""

    config: AuditConfig
    rows: list[Mapping[str, Any]]  # held-out rows: "prompt" plus the reference column
    reference_column: str
    proxy: ScoreFn
    gold: ScoreFn
    output_dir: Path

    def __post_init__(self) -> None:
        self.points: list[AuditPoint] = []
        self.warned = False

    @property
    def csv_path(self) -> Path:
        return self.output_dir / AUDIT_CSV

    @property
    def json_path(self) -> Path:
        return self.output_dir / AUDIT_JSON

    def resume(self, step: int) -> None:
        """Keep the points an earlier run wrote up to `step` (a resumed run continues them)."""
        if self.json_path.is_file():
            document = json.loads(self.json_path.read_text(encoding="utf-8"))
            self.points = [p for p in points_from_json(document) if p.step <= step]
            self.warned = detect(self.points, self.config.divergence).flagged

    def samples(self, answers: Sequence[str]) -> list[Sample]:
        return [
            Sample(
                prompt=prompt_text(row["prompt"]),
                response=answer,
                reference=row.get(self.reference_column),
                id=str(i),
                fields={k: v for k, v in row.items() if k != "prompt"},
            )
            for i, (row, answer) in enumerate(zip(self.rows, answers, strict=True))
        ]

    def audit(self, step: int, model: Any, tokenizer: Any) -> AuditPoint:
        """Generate, score, record and write one point; warn when the rule first holds."""
        c = self.config
        answers = generate_answers(
            model,
            tokenizer,
            [row["prompt"] for row in self.rows],
            max_new_tokens=c.max_new_tokens,
            sampling=c.sampling,
            temperature=c.temperature,
            seed=c.seed,
            batch_size=c.batch_size,
        )
        return self.add(score_point(step, self.samples(answers), self.gold, proxy=self.proxy))

    def add(self, point: AuditPoint) -> AuditPoint:
        self.points = [p for p in self.points if p.step != point.step] + [point]
        self.points.sort(key=lambda p: p.step)
        divergence = detect(self.points, self.config.divergence)
        write_csv(self.csv_path, self.points)
        write_json(self.json_path, audit_json(self.points, divergence, source="grpo"))
        if divergence.flagged and not self.warned:
            self.warned = True
            report_divergence(divergence)
        return point

    def document(self) -> dict[str, Any]:
        return audit_json(self.points, detect(self.points, self.config.divergence), source="grpo")


def audit_logs(point: AuditPoint) -> dict[str, float]:
    """What goes to the trainer's loggers: the two means and the features."""
    logs = {f"audit/{name}": value for name, value in point.features.items()}
    if point.proxy_mean is not None:
        logs["audit/proxy_mean"] = point.proxy_mean
    if point.gold_mean is not None:
        logs["audit/gold_mean"] = point.gold_mean
    return logs


def audit_callback(auditor: PolicyAuditor, trainer: Any) -> Any:
    """A `TrainerCallback` running `auditor` on `trainer` (add it with `trainer.add_callback`)."""
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - the train extra brings it
        raise MissingDependencyError("transformers", "train", "the GRPO audit") from exc

    class AuditCallback(transformers.TrainerCallback):
        """Audits the policy before training and every `every` steps; logs through the trainer."""

        def _run(self, state: Any, control: Any, model: Any, tokenizer: Any) -> None:
            step = state.global_step
            if not state.is_world_process_zero or any(p.step == step for p in auditor.points):
                return
            point = auditor.audit(step, model, tokenizer)
            # In eval mode GRPOTrainer.log passes our values through without taking (and
            # clearing) the training metrics it is gathering for the next regular log.
            # Trainer.log also clears `should_log`, which would skip this step's regular
            # log: keep the flag as it was.
            should_log = control.should_log
            was_training = model.training
            model.eval()
            try:
                trainer.log(audit_logs(point))
            finally:
                model.train(was_training)
                control.should_log = should_log

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            auditor.resume(state.global_step)
            self._run(state, control, kwargs["model"], kwargs["processing_class"])
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step % auditor.config.every == 0:
                self._run(state, control, kwargs["model"], kwargs["processing_class"])
            return control

    return AuditCallback()
