"""Rejection sampling and distillation data: `rewardkit sample` (see `run` for the files).

Small modules, one job each: `config` (settings), `policy` (draw and score), `filters`
(R1's readability filters), `dedup`, `select` (keep policies), `metrics` (pass@k, cons@n),
`writer` (SFT dataset, summary), `run` (the whole pass).
"""

from __future__ import annotations

from rewardkit.pipelines.sample.config import (
    DedupConfig,
    FilterConfig,
    InputConfig,
    KeepConfig,
    OutputConfig,
    PolicyConfig,
    SampleRunConfig,
    SamplingConfig,
)
from rewardkit.pipelines.sample.run import SampleResult, run_sample, run_sample_sync

__all__ = [
    "DedupConfig",
    "FilterConfig",
    "InputConfig",
    "KeepConfig",
    "OutputConfig",
    "PolicyConfig",
    "SampleResult",
    "SampleRunConfig",
    "SamplingConfig",
    "run_sample",
    "run_sample_sync",
]
