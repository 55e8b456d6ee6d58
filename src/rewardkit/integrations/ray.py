"""Score a Ray Dataset with a reward spec: the same `Scorer`, spread over a Ray cluster.

    import ray
    from rewardkit.integrations.ray import score_dataset

    ds = ray.data.read_parquet("s3://bucket/completions/")      # prompt, response, reference, ...
    scored = score_dataset(ds, "spec.yaml", concurrency=8)       # + reward, reason, details, error
    scored.write_parquet("s3://bucket/scored/")

`ScoreBatch` is the `map_batches` callable: a class, so each Ray actor builds its `Scorer`
(rewards, worker pools, judge sessions) once and keeps it for every batch; it pickles as
its spec alone. Each input row gets exactly one output row, in the same batch, with:

* `reward`  — the combined reward, or null when the sample is unscored or unreadable;
* `reason`  — why `reward` is null (an unscored reason code, as `rewardkit score` writes);
* `details` — the per-reward breakdown as a JSON string (`{}` for an unreadable row);
* `error`   — why the row could not become a sample (no `response`, a bad prompt), else null.

Rows are read as `rewardkit score` reads them (`id`, `prompt`, `response`, `reference`, every
other column a routing field); pandas, pyarrow and numpy batches are accepted.

`RayScorer` is a `Scorer` whose batches run on a pool of Ray actors, one `Scorer` each:
`rewardkit sample --ray` passes it to the sampling pipeline, which awaits one batch (a
prompt's n completions) per call, so many prompts are scored at once across the cluster.

`rewardkit score --ray` (`run_score`) writes the same JSONL as `rewardkit score`. Its driver
reads the input with rewardkit's own reader, not `ray.data.read_json`: Ray's reader (Ray 2.60,
measured) aborts the whole dataset on one malformed line, cannot hold a `prompt` column that
is a string in one row and chat messages in the next, and turns a 24-digit id into a float —
and ids, duplicate ids and resume need the one global view the driver has anyway. Reading is
cheap next to scoring; the driver sends windows of samples to a pool of `ScoreBatch` actors
and writes their results in input order, so a rerun resumes as the local path does.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewardkit.errors import ConfigError, InputError, MissingDependencyError, RewardkitError
from rewardkit.io import RowKeys, load_json_line, row_id, sample_from_record
from rewardkit.scoring import RewardReport, Scorer
from rewardkit.spec import RewardSpec, load_spec
from rewardkit.store.results import _dump_line
from rewardkit.types import Sample

if TYPE_CHECKING:
    import argparse

    import ray.data

__all__ = [
    "OUTPUT_COLUMNS",
    "SAMPLE_COLUMN",
    "RayScorer",
    "ScoreBatch",
    "pack_sample",
    "run_score",
    "score_dataset",
]

#: The columns `ScoreBatch` adds (after `prefix`).
OUTPUT_COLUMNS = ("reward", "reason", "details", "error")
#: A column holding a whole sample as JSON (how `rewardkit score --ray` ships samples
#: it has already read): exact text, no re-reading of chat messages. JSON, never pickle:
#: a column of an input file must not be able to run code.
SAMPLE_COLUMN = "__rewardkit_sample"
#: Rows per Ray execution in `rewardkit score --ray` (results are written as they stream in).
WINDOW = 50_000

SpecSource = RewardSpec | str | Path | dict[str, Any]


def _require_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("ray", "ray", "scoring on Ray") from exc
    return ray


class ScoreBatch:
    """`Dataset.map_batches` callable: scores one batch under a spec; one Scorer per actor."""

    def __init__(self, spec: SpecSource, *, prefix: str = "") -> None:
        self.spec = load_spec(spec)
        self.prefix = prefix
        self._scorer = Scorer(self.spec)

    # Ray ships the class and its constructor arguments; a pickled instance (e.g. in a task)
    # must carry only the spec, never pools or HTTP sessions.
    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec.model_dump(mode="json"), "prefix": self.prefix}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["spec"], prefix=state["prefix"])  # type: ignore[misc]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.prefix + name for name in OUTPUT_COLUMNS)

    def __call__(self, batch: Any) -> Any:
        records, names = _records(batch)
        clash = sorted(set(names) & set(self.columns))
        if clash:
            raise ConfigError(
                f"the dataset already has column(s) {clash}; pass prefix= (e.g. 'rk_') "
                "to name rewardkit's columns apart"
            )
        items = [_to_sample(record, i) for i, record in enumerate(records)]
        samples = [item for item in items if isinstance(item, Sample)]
        reports = iter(self._scorer.score(samples) if samples else [])
        values: dict[str, list[Any]] = {name: [] for name in OUTPUT_COLUMNS}
        for item in items:
            if isinstance(item, Sample):
                _add_report(values, next(reports))
            else:
                _add_error(values, item)
        return _with_columns(batch, {self.prefix + k: v for k, v in values.items()})

    def close(self) -> None:
        self._scorer.close()


def _add_report(values: dict[str, list[Any]], report: RewardReport) -> None:
    values["reward"].append(report.reward)
    values["reason"].append(None if report.reward is not None else report.reason)
    values["details"].append(_json(report.details()))
    values["error"].append(None)


def _add_error(values: dict[str, list[Any]], message: str) -> None:
    values["reward"].append(None)
    values["reason"].append(None)
    values["details"].append("{}")
    values["error"].append(message)


def _json(value: Any) -> str:
    """As `rewardkit score` writes it: odd values as strings, NaN as null."""
    return _dump_line(value).decode("utf-8").rstrip("\n")


def _to_sample(record: dict[str, Any], index: int) -> Sample | str:
    """The row's sample, or why it has none."""
    packed = record.get(SAMPLE_COLUMN)
    if isinstance(packed, str | bytes):
        data = load_json_line(packed if isinstance(packed, bytes) else packed.encode("utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("response"), str):
            return f"row {index + 1}: {SAMPLE_COLUMN} is not a packed sample"
        return Sample(
            prompt=str(data.get("prompt") or ""),
            response=data["response"],
            reference=data.get("reference"),
            id=None if data.get("id") is None else str(data["id"]),
            fields=dict(data.get("fields") or {}),
        )
    try:
        return sample_from_record(record, index + 1)
    except InputError as exc:
        # sample_from_record names the line; in a dataset the row's id says more.
        message = str(exc).removeprefix(f"line {index + 1}: ")
        return f"id {row_id(record, index + 1)!r}: {message}"


def pack_sample(sample: Sample) -> str:
    """A sample as the JSON `SAMPLE_COLUMN` holds."""
    return _json(asdict(sample))


# --- batch formats -------------------------------------------------------------------


def _records(batch: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a pyarrow, pandas or numpy (dict of arrays) batch as plain Python dicts."""
    module = type(batch).__module__
    if module.startswith("pyarrow"):
        return batch.to_pylist(), list(batch.column_names)
    if module.startswith("pandas"):
        names = [str(c) for c in batch.columns]
        columns = [batch[c].tolist() for c in batch.columns]
        return [
            dict(zip(names, map(_plain, row), strict=True)) for row in zip(*columns, strict=True)
        ], names
    if isinstance(batch, dict):
        names = list(batch)
        columns = [list(batch[name]) for name in names]
        rows = zip(*columns, strict=True) if columns else iter(())
        return [dict(zip(names, map(_plain, row), strict=True)) for row in rows], names
    raise ConfigError(
        f"cannot score a batch of type {type(batch).__name__}; use "
        "batch_format='pyarrow', 'pandas' or 'numpy'"
    )


def _plain(value: Any) -> Any:
    """numpy/pandas values as Python ones: nested lists stay lists, a missing value is None."""
    if value is None:
        return None
    kind = type(value).__module__
    if kind == "numpy":
        if hasattr(value, "tolist"):  # arrays and numpy scalars
            value = value.tolist()
            if isinstance(value, list):
                return [_plain(v) for v in value]
    elif kind.startswith("pandas") and _is_missing(value):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None  # pandas and numpy have no null for floats: NaN stands for "missing"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _is_missing(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _with_columns(batch: Any, values: dict[str, list[Any]]) -> Any:
    """The batch with rewardkit's columns added, in the batch's own format."""
    module = type(batch).__module__
    if module.startswith("pyarrow"):
        import pyarrow as pa

        for name, column in values.items():
            kind = pa.float64() if name.endswith("reward") else pa.string()
            batch = batch.append_column(name, pa.array(column, type=kind))
        return batch
    if module.startswith("pandas"):
        import pandas as pd

        out = batch.copy()
        for name, column in values.items():
            # A nullable float: an unscored row is <NA>, not NaN.
            if name.endswith("reward"):  # nullable: an unscored row is <NA>, not NaN
                out[name] = pd.Series(pd.array(column, dtype="Float64"), index=out.index)
            else:  # object, not pandas 3's inferred str dtype (which turns None into NaN)
                out[name] = pd.Series(column, dtype=object, index=out.index)
        return out
    import numpy as np

    out = dict(batch)
    for name, column in values.items():
        if name.endswith("reward"):  # numpy has no null float: NaN, and `reason` says why
            out[name] = np.array([math.nan if v is None else v for v in column], dtype=float)
        else:
            out[name] = np.array(column, dtype=object)
    return out


# --- library entry point ------------------------------------------------------------


def score_dataset(
    ds: ray.data.Dataset,
    spec: SpecSource,
    *,
    batch_size: int = 256,
    concurrency: int | tuple[int, int] | None = None,
    num_cpus: float = 1.0,
    batch_format: str = "pyarrow",
    prefix: str = "",
) -> ray.data.Dataset:
    """`ds` with `reward`, `reason`, `details` and `error` columns (lazy, as Ray Data is).

    `concurrency`: actors (an int, or `(min, max)` to autoscale); default: one per CPU of
    the cluster but one (left to the tasks reading `ds`), at most 64. Each actor reserves
    `num_cpus`. Rule rewards that bring a
    process pool (math, code) start it inside every actor: give them `workers:` in the
    spec to match `num_cpus`, or the actors on one node oversubscribe its cores.
    """
    ray = _require_ray()
    if batch_format not in ("pyarrow", "pandas", "numpy"):
        raise ConfigError(
            f"batch_format must be 'pyarrow', 'pandas' or 'numpy', not {batch_format!r}"
        )
    if batch_size < 1:
        raise ConfigError("batch_size must be at least 1")
    resolved = load_spec(spec)
    Scorer(resolved).close()  # an unknown reward or a bad option fails here, not in an actor
    if concurrency is None:
        # One CPU stays free: actors holding every CPU starve the read tasks feeding them
        # (measured: read_parquet into 2 actors on a 2-CPU Ray never finishes).
        concurrency = max(1, min(_actor_slots(ray, num_cpus) - 1, 64))
    if isinstance(concurrency, tuple):
        pool = ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    else:
        pool = ray.data.ActorPoolStrategy(size=concurrency)
    return ds.map_batches(
        ScoreBatch,
        fn_constructor_kwargs={"spec": resolved.model_dump(mode="json"), "prefix": prefix},
        batch_size=batch_size,
        batch_format=batch_format,
        compute=pool,
        num_cpus=num_cpus,
    )


def _actor_slots(ray: Any, num_cpus: float) -> int:
    """How many actors of `num_cpus` the cluster holds."""
    return int(ray.cluster_resources().get("CPU", 1) // max(num_cpus, 0.01))


def unwrap(exc: BaseException) -> BaseException:
    """The rewardkit error inside a Ray task error (a setup error raised in an actor)."""
    seen = 0
    while seen < 8 and not isinstance(exc, RewardkitError):
        cause = getattr(exc, "cause", None) or exc.__cause__
        if cause is None:
            break
        exc, seen = cause, seen + 1
    return exc


# --- `rewardkit score --ray` -----------------------------------------------------------


def _connect(ray: Any, quiet: bool) -> bool:
    """Join the cluster named by RAY_ADDRESS (as `ray job submit` sets), or start a local
    one. True when this call started Ray (and so should shut it down)."""
    if ray.is_initialized():
        return False
    ray.init(
        address=os.environ.get("RAY_ADDRESS") or None,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=not quiet,
    )
    return True


def run_score(args: argparse.Namespace) -> int:
    """`rewardkit score --ray`: the lines `rewardkit score` writes, scored by Ray actors."""
    from rewardkit.cli import score as cli  # its reading, keys and lines, shared as they are
    from rewardkit.cli._exit import exit_status
    from rewardkit.io import iter_rows
    from rewardkit.store.results import ResultWriter, check_output_path

    ray = _require_ray()
    started = time.perf_counter()
    input_path, output_path, spec = cli.checked_args(args)
    Scorer(spec).close()  # a bad spec fails here, before Ray starts and before OUTPUT exists
    check_output_path(output_path)
    keys = RowKeys.of(input_path)
    counts = cli._Counts()
    show = not args.no_progress and sys.stderr.isatty()
    owns = _connect(ray, quiet=not show)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # lines come back in input order
    context.enable_progress_bars = show
    logging.getLogger("ray.data").setLevel(logging.INFO if show else logging.WARNING)
    try:
        with ResultWriter(output_path) as writer, cli._progress(None, False) as bar:
            windows = cli._chunks(iter_rows(input_path), keys, writer.done, counts, bar, WINDOW)
            for window in windows:
                for lines in _score_window(ray, window, spec, args.chunk_size):
                    writer.write(lines)
                    for line in lines:
                        if "error" in line:
                            counts.errors += 1
                        elif line["reward"] is None:
                            counts.unscored += 1
                        else:
                            counts.scored += 1
    except Exception as exc:
        inner = unwrap(exc)
        if isinstance(inner, RewardkitError) and inner is not exc:
            raise inner from None
        raise
    finally:
        if owns:
            ray.shutdown()
    print(counts.summary(time.perf_counter() - started, output_path), file=sys.stderr)
    return exit_status(counts.errors)


def _score_window(
    ray: Any, window: Sequence[Sample | dict[str, Any]], spec: RewardSpec, batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    """Output lines of one window, in input order, a Ray batch at a time."""
    position = 0

    def error_lines() -> list[dict[str, Any]]:  # the unreadable rows before the next sample
        nonlocal position
        lines = []
        while position < len(window) and not isinstance(window[position], Sample):
            lines.append(window[position])
            position += 1
        return lines  # type: ignore[return-value]

    samples = [item for item in window if isinstance(item, Sample)]
    if samples:
        ds = ray.data.from_items([{SAMPLE_COLUMN: pack_sample(s)} for s in samples])
        # Samples sit in the object store (no read tasks): the actors may take every CPU.
        actors = max(1, min(_actor_slots(ray, 1.0), 64, math.ceil(len(samples) / batch_size)))
        scored = score_dataset(ds, spec, batch_size=batch_size, concurrency=actors)
        batches: Iterable[Any] = scored.iter_batches(batch_size=batch_size, batch_format="pyarrow")
        for batch in batches:
            lines: list[dict[str, Any]] = []
            for row in batch.select(list(OUTPUT_COLUMNS)).to_pylist():
                lines.extend(error_lines())
                sample = window[position]
                position += 1
                lines.append(_line(str(getattr(sample, "id", "")), row))
            yield lines
    rest = error_lines()
    if rest:
        yield rest


def _line(key: str, row: dict[str, Any]) -> dict[str, Any]:
    """The JSONL line of one scored row, as `rewardkit score` writes it."""
    if row["error"] is not None:  # cannot happen for a sample the driver read: keep it anyway
        return {"id": key, "reward": None, "details": {}, "error": row["error"]}
    out: dict[str, Any] = {
        "id": key,
        "reward": row["reward"],
        "details": load_json_line(row["details"].encode("utf-8")),
    }
    if row["reward"] is None:
        out["reason"] = row["reason"]
    return out


# --- `rewardkit sample --ray` ----------------------------------------------------------


class _ScorerActor:
    """One Scorer in one Ray actor process."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.scorer = Scorer(spec)

    def score(self, samples: list[Sample]) -> list[RewardReport]:
        return self.scorer.score(samples)

    def close(self) -> None:
        self.scorer.close()


class RayScorer(Scorer):
    """A `Scorer` whose `score`/`ascore` run on `actors` Ray actors (round robin).

    The rewards are also built here, once, so a bad spec fails before any actor starts;
    their pools stay cold (nothing is scored locally). `close()` stops the actors, and
    Ray itself when this scorer started it.
    """

    def __init__(self, spec: SpecSource, *, actors: int | None = None, quiet: bool = True) -> None:
        if actors is not None and actors < 1:
            raise ConfigError("actors must be at least 1")
        super().__init__(spec)
        ray = _require_ray()
        self._ray = ray
        self._owns = _connect(ray, quiet=quiet)
        count = actors if actors is not None else max(1, min(_actor_slots(ray, 1.0), 64))
        remote = ray.remote(num_cpus=1)(_ScorerActor)
        state = self.spec.model_dump(mode="json")
        self._actors = [remote.remote(state) for _ in range(count)]
        self._turn = 0

    def _next_actor(self) -> Any:
        actor = self._actors[self._turn % len(self._actors)]
        self._turn += 1
        return actor

    def score(self, samples: Sequence[Sample]) -> list[RewardReport]:
        if not samples:
            return []
        return self._get(self._next_actor().score.remote(list(samples)))

    async def ascore(self, samples: Sequence[Sample]) -> list[RewardReport]:
        if not samples:
            return []
        try:
            return list(await self._next_actor().score.remote(list(samples)))
        except Exception as exc:
            raise _inner(exc) from None

    def _get(self, ref: Any) -> list[RewardReport]:
        try:
            return list(self._ray.get(ref))
        except Exception as exc:
            raise _inner(exc) from None

    def warm_up(self) -> None:
        self._ray.get([actor.score.remote([]) for actor in self._actors])

    def close(self) -> None:
        actors, self._actors = self._actors, []
        for actor in actors:
            self._ray.kill(actor)
        super().close()
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns = False


def _inner(exc: Exception) -> Exception:
    """A rewardkit error raised in an actor, as itself; anything else as it came."""
    inner = unwrap(exc)
    return inner if isinstance(inner, RewardkitError) else exc
