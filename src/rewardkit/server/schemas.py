"""Request and response bodies of the reward service (pydantic; they also make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rewardkit.io import sample_from_record
from rewardkit.types import Sample

__all__ = [
    "ErrorBody",
    "GetRewardRequest",
    "GetRewardResponse",
    "GroupResult",
    "HealthResponse",
    "NativeSample",
    "RewardResult",
    "RewardsRequest",
    "RewardsResponse",
    "SampleResult",
]


class GetRewardRequest(BaseModel):
    """OpenRLHF's remote reward request: one entry per rollout, lists of equal length."""

    model_config = ConfigDict(extra="forbid")

    query: list[str] = Field(
        description="Prompt + response as the trainer decoded it, special tokens included."
    )
    prompts: list[str] | None = Field(
        default=None, description="The prompt of each query; used to cut the response out."
    )
    labels: list[Any] | None = Field(
        default=None, description="Reference of each query (e.g. the gold answer)."
    )
    datasources: list[str | None] | None = Field(
        default=None,
        description="Data source of each query (sent by some OpenRLHF forks); becomes the "
        "`data_source` field that reward specs route on.",
    )

    @model_validator(mode="after")
    def _same_lengths(self) -> GetRewardRequest:
        n = len(self.query)
        for name in ("prompts", "labels", "datasources"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(
                    f"'{name}' has {len(values)} items but 'query' has {n}; "
                    "send one entry per query"
                )
        return self


class GetRewardResponse(BaseModel):
    """What OpenRLHF reads: a number per query, and per-query logs."""

    rewards: list[float] = Field(description="Reward per query; unscored ones get the fill value.")
    scores: list[float] = Field(description="Same as `rewards` (OpenRLHF filters on it).")
    extra_logs: dict[str, list[float]] = Field(
        description="Per-query values logged by the trainer: `rewardkit/unscored` (1.0 when "
        "no reward could be given) and `rewardkit/<reward>` for each reward of the spec."
    )


class NativeSample(BaseModel):
    """One prompt with one response, or with a group of responses (e.g. GRPO's n samples)."""

    # Any other key is kept as a sample field, which reward specs route on (`when:`); this is
    # the one boundary that allows extra keys, because arbitrary columns are the point.
    model_config = ConfigDict(extra="allow")

    prompt: str | list[dict[str, Any]] = Field(
        default="", description="Prompt text, or chat messages (the last user turn is used)."
    )
    response: str | None = Field(default=None, description="The response to reward.")
    responses: list[str] | None = Field(
        default=None, min_length=1, description="Several responses to the same prompt."
    )
    reference: Any = Field(default=None, description="What the reward checks against.")
    id: str | int | None = Field(default=None, description="Echoed back in the result.")

    @model_validator(mode="after")
    def _one_response_kind(self) -> NativeSample:
        if (self.response is None) == (self.responses is None):
            raise ValueError("give exactly one of 'response' (a string) or 'responses' (a list)")
        return self

    @property
    def size(self) -> int:
        return 1 if self.responses is None else len(self.responses)

    def to_samples(self, number: int) -> list[Sample]:
        """One `Sample` per response; `number` (1-based) stands in for a missing id."""
        record = {
            **(self.model_extra or {}),
            "prompt": self.prompt,
            "reference": self.reference,
            "id": self.id,
        }
        texts = [self.response] if self.responses is None else self.responses
        # The same conversion as input files get: chat prompts, fields for routing.
        return [sample_from_record({**record, "response": text}, number) for text in texts]


class RewardsRequest(BaseModel):
    """Native request: rewardkit samples."""

    model_config = ConfigDict(extra="forbid")

    samples: list[NativeSample] = Field(description="Samples to reward, scored as one batch.")


class RewardResult(BaseModel):
    """The reward of one response; `reward` is null when it could not be given."""

    reward: float | None = Field(description="Combined reward, or null when unscored.")
    reason: str | None = Field(description="Why `reward` is null; null when scored.")
    details: dict[str, Any] = Field(
        description="Per-reward breakdown: score, reason code, weight, message."
    )


class SampleResult(RewardResult):
    """Result of a sample sent with `response`."""

    id: str | int | None = None


class GroupResult(BaseModel):
    """Result of a sample sent with `responses`: one result per response, in order."""

    id: str | int | None = None
    responses: list[RewardResult]


class RewardsResponse(BaseModel):
    """Native response: one result per input sample, in order."""

    results: list[SampleResult | GroupResult]
    scored: int = Field(description="Responses that got a reward.")
    unscored: int = Field(description="Responses that did not (see each `reason`).")


class HealthResponse(BaseModel):
    status: str
    rewards: list[str] = Field(description="Labels of the rewards in the served spec.")
    version: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx body: a machine-readable code and a message that says what to fix."""

    error: str
    message: str
    detail: list[dict[str, Any]] | None = None
