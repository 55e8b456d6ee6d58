"""What the training commands share: YAML run configs, paths, trainer options, checkpoints."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from rewardkit.errors import ConfigError, InputError, MissingDependencyError
from rewardkit.io import iter_rows

M = TypeVar("M", bound=BaseModel)


def load_config(path: str | Path, model: type[M], what: str) -> tuple[M, Path]:
    """Read and validate a YAML config; returns it and the folder relative paths start from."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping ({what})")
    try:
        return model.model_validate(data), path.resolve().parent
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: invalid config: {problems}") from exc


def local_path(base: Path, value: str) -> str:
    """`value` under `base` when that exists (else as given: a hub id or absolute path)."""
    candidate = base / value
    return str(candidate) if not Path(value).is_absolute() and candidate.exists() else value


def output_path(base: Path, value: str) -> str:
    return value if Path(value).is_absolute() else str(base / value)


def require(module: str, feature: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(exc.name or module, "train", feature) from exc


def check_trainer_options(
    cls: type, options: dict[str, Any], section: str, name: str | None = None
) -> None:
    """Refuse keys of the `section:` mapping that `cls` (a trainer config dataclass) does not
    take, offering close matches, and `output_dir`, which the run config owns."""
    if "output_dir" in options:
        raise ConfigError(
            f"{section}.output_dir: set it as output_dir (top level), not under {section}"
        )
    valid = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(options) - valid)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, valid, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"{section}: unknown {name or cls.__name__} option(s): {', '.join(hints)}"
        )


def trainer_args(
    cls: type, output_dir: str, options: dict[str, Any], section: str, name: str | None = None
) -> Any:
    """`cls(output_dir=..., **options)` with unknown keys named (and close matches offered),
    no reporting integrations and, on a CPU, no bf16 unless the options say otherwise."""
    import torch

    check_trainer_options(cls, options, section, name)
    options = dict(options)
    options.setdefault("report_to", "none")
    if not torch.cuda.is_available():
        options.setdefault("bf16", False)  # CPUs run bf16 poorly
    try:
        return cls(output_dir=output_dir, **options)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{section}: {exc}") from exc


def last_checkpoint(output_dir: str, resume: bool) -> str | None:
    """The checkpoint to resume from; refuses to train over one without `resume`."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(output_dir)
    last = get_last_checkpoint(str(folder)) if folder.is_dir() else None
    if last is not None and not resume:
        raise ConfigError(
            f"{folder} already holds checkpoints (last: {Path(last).name}); "
            "pass --resume to continue it, or choose another output_dir"
        )
    return last if resume else None


def load_dataset(
    datasets: Any,
    source: str,
    split: str,
    *,
    name: str | None = None,
    check_record: Callable[[dict[str, Any]], str | None] | None = None,
    require_rows: bool = False,
) -> Any:
    """A `datasets.Dataset` from a `save_to_disk` folder (its `split` when it holds several),
    a local JSONL/Parquet file (each record passed to `check_record`, whose problem is
    raised naming the line), or else a Hub id: the only network access, and only when
    asked for. A local-looking path that does not exist is an error, not a Hub id."""
    path = Path(source)
    if path.is_dir():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise InputError(f"{path} has splits {list(loaded)}, not {split!r}")
            loaded = loaded[split]
        return loaded
    if path.is_file():
        records: list[dict[str, Any]] = []
        for row in iter_rows(path):
            if row.record is None:
                raise InputError(f"{path}: {row.error}")
            problem = None if check_record is None else check_record(row.record)
            if problem is not None:
                raise InputError(f"{path}:{row.line}: {problem}")
            records.append(row.record)
        if require_rows and not records:
            raise InputError(f"{path}: no rows")
        return datasets.Dataset.from_list(records)
    if path.suffix in (".jsonl", ".json", ".parquet") or path.is_absolute():
        raise InputError(f"dataset not found: {path}")
    return datasets.load_dataset(source, name, split=split)
