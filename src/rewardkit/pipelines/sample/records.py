"""One sampled completion as it lives in the raw samples file, and back.

A line of `samples.jsonl` is either a scored completion or a generation error:

    {"id": "q7#2", "prompt_id": "q7", "index": 2, "prompt": [...messages], "completion": "...",
     "finish_reason": "stop", "reward": 1.0, "unscored": null, "details": {...},
     "answer": "18", "code_task": false, "fields": {"data_source": "gsm8k"},
     "reference": "18", "policy": "http:qwen", "sampling": {...}}
    {"id": "q7#3", "prompt_id": "q7", "index": 3, "error": "BackendTimeoutError: ..."}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Candidate", "sample_key"]


def sample_key(prompt_id: str, index: int) -> str:
    """The id of sample `index` of prompt `prompt_id` in the raw file (what resume skips)."""
    return f"{prompt_id}#{index}"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A sampled completion and what the spec said about it."""

    prompt_id: str
    index: int
    completion: str = ""
    prompt: list[dict[str, Any]] = field(default_factory=list)
    prompt_text: str = ""
    finish_reason: str | None = None
    reward: float | None = None
    unscored: str | None = None  # why `reward` is None
    details: dict[str, Any] = field(default_factory=dict)
    answer: str | None = None  # the extracted final answer (math), for majority voting
    code_task: bool = False
    fields: dict[str, Any] = field(default_factory=dict)
    reference: Any = None
    policy: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # generation failed: no completion

    @property
    def key(self) -> str:
        return sample_key(self.prompt_id, self.index)

    @property
    def data_source(self) -> str:
        value = self.fields.get("data_source", self.fields.get("dataset"))
        return "all" if value is None else str(value)

    def to_line(self) -> dict[str, Any]:
        if self.error is not None:
            return {
                "id": self.key,
                "prompt_id": self.prompt_id,
                "index": self.index,
                "error": self.error,
            }
        return {
            "id": self.key,
            "prompt_id": self.prompt_id,
            "index": self.index,
            "prompt": self.prompt,
            "prompt_text": self.prompt_text,
            "completion": self.completion,
            "finish_reason": self.finish_reason,
            "reward": self.reward,
            "unscored": self.unscored,
            "details": self.details,
            "answer": self.answer,
            "code_task": self.code_task,
            "fields": self.fields,
            "reference": self.reference,
            "policy": self.policy,
            "sampling": self.sampling,
        }

    @classmethod
    def from_line(cls, line: dict[str, Any]) -> Candidate:
        return cls(
            prompt_id=str(line["prompt_id"]),
            index=int(line["index"]),
            completion=str(line.get("completion") or ""),
            prompt=list(line.get("prompt") or []),
            prompt_text=str(line.get("prompt_text") or ""),
            finish_reason=line.get("finish_reason"),
            reward=line.get("reward"),
            unscored=line.get("unscored"),
            details=dict(line.get("details") or {}),
            answer=line.get("answer"),
            code_task=bool(line.get("code_task")),
            fields=dict(line.get("fields") or {}),
            reference=line.get("reference"),
            policy=str(line.get("policy") or ""),
            sampling=dict(line.get("sampling") or {}),
            error=line.get("error"),
        )
