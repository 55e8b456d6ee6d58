"""The validated settings of one `rewardkit sample` run (the CLI and library boundary).

Each concern is its own small model with `extra="forbid"`: where completions come from
(`PolicyConfig`), how they are drawn (`SamplingConfig`), what is read from each prompt row
(`InputConfig`), what is kept (`KeepConfig`, `FilterConfig`, `DedupConfig`) and what is
written (`OutputConfig`). `SampleRunConfig` holds them all plus the reward spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rewardkit.spec import RewardSpec

__all__ = [
    "DedupConfig",
    "FilterConfig",
    "InputConfig",
    "KeepConfig",
    "OutputConfig",
    "PolicyConfig",
    "SampleRunConfig",
    "SamplingConfig",
]

BackendName = Literal["http", "llama_cpp", "transformers", "mock"]


class PolicyConfig(BaseModel):
    """Where completions come from: any backend `rewardkit.backends.build_backend` builds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: BackendName = Field(
        default="http", description="http (OpenAI-compatible), llama_cpp, transformers or mock"
    )
    model: str | None = Field(
        default=None,
        description="served model name (http), local path (transformers) or GGUF (llama_cpp)",
    )
    base_url: tuple[str, ...] = Field(
        default=(), description="OpenAI-compatible base URLs, balanced (http only)"
    )
    api_key: str | None = Field(default=None, description="API key (http; default $OPENAI_API_KEY)")
    timeout: float = Field(default=600.0, gt=0, description="seconds per request attempt (http)")
    retries: int = Field(
        default=5, ge=0, description="retries per request on 429/5xx/timeouts (http)"
    )
    concurrency: int = Field(default=16, ge=1, description="prompts (and requests) in flight")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="further backend constructor options (e.g. n_ctx, outputs)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> PolicyConfig:
        if self.backend == "http" and not self.base_url:
            raise ValueError("the http policy needs a base URL (--base-url http://HOST:PORT/v1)")
        if self.backend != "http" and self.base_url:
            raise ValueError(f"--base-url applies to the http policy only, not {self.backend}")
        if self.backend in ("http", "transformers") and not self.model:
            raise ValueError(f"the {self.backend} policy needs a model (--policy MODEL)")
        return self

    @property
    def label(self) -> str:
        """How rows name the policy: `backend:model`."""
        return f"{self.backend}:{self.model or 'default'}"


class SamplingConfig(BaseModel):
    """How completions are drawn: `n` per prompt, in one request per prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(default=4, ge=1, description="completions per prompt")
    temperature: float = Field(default=0.6, ge=0, description="sampling temperature (R1 used 0.6)")
    top_p: float = Field(default=0.95, gt=0, le=1, description="nucleus sampling")
    max_tokens: int = Field(default=4096, ge=1, description="completion budget in tokens")
    seed: int | None = Field(
        default=None, description="base seed; each prompt and sample index derives its own"
    )
    system_prompt: str | None = Field(
        default=None, description="system turn put before every prompt"
    )


class InputConfig(BaseModel):
    """What is read from each prompt row."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_column: str = Field(default="prompt", description="a string or chat messages")
    reference_column: str = Field(default="reference", description="what the rewards check against")
    limit: int | None = Field(default=None, ge=1, description="use only the first N rows")


KeepPolicy = Literal["correct", "above", "best", "top_k"]


class KeepConfig(BaseModel):
    """Which scored, readable, unique completions become SFT rows.

    * `correct`: every completion with reward >= `threshold` (R1's rejection sampling);
    * `above`: every completion with reward >= `min_reward` (graded rewards, e.g. a judge);
    * `best`: the one highest-reward completion per prompt (best-of-n), gated by `min_reward`;
    * `top_k`: the `k` highest per prompt, gated by `min_reward`.
    Ties go to the lower sample index.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: KeepPolicy = Field(default="correct", description="correct, above, best or top_k")
    threshold: float = Field(
        default=1.0, description="reward counted as correct (keep and metrics)"
    )
    min_reward: float | None = Field(default=None, description="gate for above/best/top_k")
    k: int = Field(default=1, ge=1, description="completions kept per prompt by top_k")

    @model_validator(mode="after")
    def _consistent(self) -> KeepConfig:
        if self.policy == "above" and self.min_reward is None:
            raise ValueError("--keep above needs --min-reward (the reward a completion must reach)")
        return self


class FilterConfig(BaseModel):
    """R1's readability filters; None (or False) turns one off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    language: str | None = Field(
        default=None, description="target language (default: the prompt's)"
    )
    min_language_consistency: float | None = Field(
        default=0.9,
        ge=0,
        le=1,
        description="share of words in the target language, reasoning and summary each",
    )
    max_paragraph_chars: int | None = Field(
        default=3000, ge=1, description="longest paragraph allowed"
    )
    code_blocks: bool = Field(
        default=True, description="reject fenced code in answers to non-code prompts"
    )
    summary: Literal["think", "special_token", "off"] = Field(
        default="think",
        description="require a non-empty summary after </think> (or |special_token|)",
    )
    summary_token: str = Field(
        default="|special_token|", min_length=1, description="delimiter for summary=special_token"
    )
    truncated: bool = Field(default=True, description="reject completions cut off by max_tokens")


class DedupConfig(BaseModel):
    """Duplicate completions of one prompt: the higher-reward copy stays."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exact: bool = Field(default=True, description="drop completions equal after normalisation")
    near_threshold: float | None = Field(
        default=0.9, gt=0, le=1, description="drop completions whose shingle Jaccard reaches this"
    )
    ngram: int = Field(default=5, ge=1, description="character shingle size for near-duplicates")


class OutputConfig(BaseModel):
    """What the run writes into its output folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["jsonl", "parquet", "datasets"] = Field(
        default="jsonl", description="SFT dataset format"
    )
    pass_k: tuple[int, ...] = Field(
        default=(), description="k values for pass@k (default: 1 and powers of 2 up to n)"
    )
    bootstrap: int = Field(
        default=1000, ge=0, description="bootstrap resamples for confidence intervals (0: none)"
    )
    progress: bool = Field(default=True, description="tqdm progress bar on stderr")


class SampleRunConfig(BaseModel):
    """One `rewardkit sample` run."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    prompts: Path = Field(description="JSONL, Parquet or datasets folder of prompts")
    output: Path = Field(description="folder: samples.jsonl, sft.*, summary.json, metrics.json")
    spec: RewardSpec = Field(description="the rewards every completion is scored by")
    policy: PolicyConfig
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    input: InputConfig = Field(default_factory=InputConfig)
    keep: KeepConfig = Field(default_factory=KeepConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    out: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _pass_k_fits(self) -> SampleRunConfig:
        too_big = [k for k in self.out.pass_k if k < 1 or k > self.sampling.n]
        if too_big:
            raise ValueError(
                f"--pass-k values must be between 1 and n={self.sampling.n}, got {too_big}"
            )
        return self

    @property
    def pass_k(self) -> tuple[int, ...]:
        if self.out.pass_k:
            return tuple(sorted(set(self.out.pass_k)))
        ks, k = [1], 2
        while k <= self.sampling.n:
            ks.append(k)
            k *= 2
        if self.sampling.n not in ks:
            ks.append(self.sampling.n)
        return tuple(ks)
