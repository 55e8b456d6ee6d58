"""The SFT dataset, the acceptance summary and the metrics a sampling run writes.

SFT rows are chat `messages` (what TRL's `SFTTrainer` reads): the prompt's turns and the
completion as the assistant turn. Provenance travels in flat columns of fixed type so
Arrow-based readers (`datasets.load_dataset("json")`, Parquet) infer one schema:

    {"messages": [...], "id": "q7#2", "prompt_id": "q7", "sample_index": 2,
     "data_source": "gsm8k", "reward": 1.0, "rewards": "{\"math\": 1.0}",
     "reasons": "{\"math\": \"correct\"}", "policy": "http:qwen", "sampling": "{...}"}

(`rewards`, `reasons` and `sampling` are JSON strings: their keys differ between specs
and routes, and a column whose struct changes row by row breaks Arrow's schema.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from rewardkit.errors import MissingDependencyError
from rewardkit.pipelines.sample.records import Candidate

__all__ = ["acceptance_table", "sft_row", "write_json", "write_sft"]


def sft_row(candidate: Candidate) -> dict[str, Any]:
    rewards = {label: d.get("score") for label, d in candidate.details.items()}
    reasons = {label: d.get("reason") for label, d in candidate.details.items()}
    return {
        "messages": [*candidate.prompt, {"role": "assistant", "content": candidate.completion}],
        "id": candidate.key,
        "prompt_id": candidate.prompt_id,
        "sample_index": candidate.index,
        "data_source": candidate.data_source,
        "reward": candidate.reward,
        "rewards": json.dumps(rewards, ensure_ascii=False, sort_keys=True),
        "reasons": json.dumps(reasons, ensure_ascii=False, sort_keys=True),
        "policy": candidate.policy,
        "sampling": json.dumps(candidate.sampling, sort_keys=True),
    }


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    _atomic_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_sft(
    rows: Sequence[dict[str, Any]], folder: Path, fmt: Literal["jsonl", "parquet", "datasets"]
) -> Path:
    """Write the SFT rows as `sft.jsonl`, `sft.parquet` or the `datasets` folder `sft/`.

    Rewritten whole on every run (from the raw samples), so it always matches them."""
    if fmt == "jsonl":
        path = folder / "sft.jsonl"
        _atomic_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return path
    try:
        import pyarrow as pa
    except ImportError as exc:
        raise MissingDependencyError("pyarrow", "data", f"--format {fmt}") from exc
    table = (
        pa.Table.from_pylist(list(rows))
        if rows
        else pa.table({"messages": pa.array([], pa.null())})
    )
    if fmt == "parquet":
        import pyarrow.parquet as pq

        path = folder / "sft.parquet"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        return path
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError("datasets", "data", "--format datasets") from exc
    path = folder / "sft"
    datasets.Dataset(table).save_to_disk(str(path))
    return path


def acceptance_table(summary: dict[str, Any]) -> str:
    """The summary's stages as a fixed-width table: stage, rejected, remaining, share kept."""
    total = summary["samples"]
    lines = [f"{'stage':<22}{'rejected':>10}{'remaining':>11}{'kept %':>9}"]
    remaining = total
    for stage, rejected in summary["rejected"].items():
        remaining -= rejected
        share = 100.0 * remaining / total if total else 0.0
        lines.append(f"{stage:<22}{rejected:>10}{remaining:>11}{share:>8.1f}%")
    lines.append(f"{'kept':<22}{'':>10}{summary['kept']:>11}")
    if summary.get("filter_failures"):
        fails = ", ".join(f"{k} {v}" for k, v in summary["filter_failures"].items())
        lines.append(f"filters failed, counted on every scored sample: {fails}")
    return "\n".join(lines)
