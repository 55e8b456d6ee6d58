"""`rewardkit eval`: a judge's accuracy on labelled preference data, and its bias probes.

    rewardkit eval DATA... -o OUTDIR [--judge pointwise|pairwise|classifier|length]
                   [--spec FILE | the judge options of `rewardkit judge`]
    rewardkit eval probes DATA... -o OUTDIR [--probes position,verbosity,...] [judge options]

DATA: files, folders or Hub ids in any format `rewardkit.pipelines.eval.data` reads
(`--format auto` detects it). The judge samples `--samples` (k_max) judgments per item once;
Voting@k and MetaRM@k for k = 1, 2, 4, ... k_max are estimated from them. Every judge call
goes through a SQLite cache in OUTDIR, so rerunning after a crash asks nothing twice.
OUTDIR gets results.json, items.jsonl, curve.csv, PNG plots and report.html.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, NoReturn

from rewardkit.cli._spec_args import add_spec_arguments, spec_from_args
from rewardkit.errors import ConfigError

__all__ = ["add_arguments", "build_judge", "run"]

JUDGES = ("pointwise", "pairwise", "classifier", "length")
# Options of `rewardkit judge` that do not apply here (eval has its own data and OUTDIR).
_NOT_REUSED = frozenset({"input", "output", "retry_errors"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rewardkit.cli import judge as judge_cli
    from rewardkit.pipelines.eval.data import FORMATS
    from rewardkit.pipelines.eval.probes import PROBES

    def one_line_error(message: str) -> NoReturn:
        parser.exit(2, f"rewardkit eval: error: {message} (see rewardkit eval --help)\n")

    parser.error = one_line_error  # type: ignore[method-assign]
    parser.add_argument(
        "data",
        nargs="+",
        metavar="DATA",
        help="preference data: files, folders or Hub ids; `probes DATA...` runs the bias probes",
    )
    parser.add_argument(
        "-o", "--output-dir", required=True, metavar="OUTDIR", help="results folder"
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="auto", help="data format (default: detect)"
    )
    parser.add_argument("--split", default="test", help="split of a datasets folder or Hub id")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N items per input file")
    parser.add_argument(
        "--judge",
        choices=JUDGES,
        default="pointwise",
        help="pointwise (SPCT GRM), pairwise (both orders), classifier (--model is a sequence "
        "classifier reward model), length (longer wins: a baseline)",
    )
    add_spec_arguments(parser, reward=False)
    parser.add_argument("--device", default="cpu", help="device of a classifier reward model")
    parser.add_argument(
        "--meta-keep",
        type=float,
        default=0.5,
        metavar="F",
        help="MetaRM@k keeps this fraction of the k judgments (default 0.5)",
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000, metavar="B", help="bootstrap resamples"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the estimators")
    parser.add_argument("--no-plot", action="store_true", help="no PNG plots")
    parser.add_argument(
        "--probes",
        default=",".join(PROBES),
        metavar="LIST",
        help=f"probes to run (default all): {','.join(PROBES)}",
    )
    # The judge options are `rewardkit judge`'s own definitions, not a copy of them.
    group = parser.add_argument_group("judge options (as in rewardkit judge)")
    judge_cli.add_judge_options(group, skip=_NOT_REUSED)


class _Closers:
    """What the run opened and must close: caches (they commit what they buffer on close)."""

    def __init__(self) -> None:
        self.caches: list[Any] = []

    def close(self) -> None:
        for cache in self.caches:
            cache.close()


def _cached(backend: Any, args: argparse.Namespace, outdir: Path, closers: _Closers) -> Any:
    from rewardkit.pipelines.eval.scorers import CostMeter

    if not args.no_cache:
        from rewardkit.store import CachedBackend, JudgeCache

        cache = JudgeCache(Path(args.cache) if args.cache else outdir / "judge.cache.sqlite")
        closers.caches.append(cache)
        backend = CachedBackend(backend, cache)
    return CostMeter(backend)


def build_judge(args: argparse.Namespace, outdir: Path, closers: _Closers) -> Any:
    """The judge under evaluation, from --spec, --judge and the judge options."""
    from rewardkit.judges import PointwiseJudge
    from rewardkit.pipelines.eval import scorers

    if getattr(args, "keep", None) is not None:
        raise ConfigError(
            "eval estimates MetaRM@k for every k: give --meta-keep (a share of k), not --keep"
        )
    if args.no_cache and args.cache:
        raise ConfigError("--cache and --no-cache contradict each other; give one")
    if args.spec and (args.model or args.base_url or args.judge in ("classifier", "length")):
        raise ConfigError("give --spec or a judge (--judge, --model, --base-url ...), not both")
    if args.spec:
        from rewardkit.judges import JudgeReward
        from rewardkit.registry import build_reward
        from rewardkit.scoring import Scorer

        spec = spec_from_args(args)
        assert spec is not None
        entry = spec.rewards[0]
        if len(spec.rewards) == 1 and entry.reward == "judge":
            # One judge: evaluate it as a judge (k samples, the k-curve), not as a scalar.
            reward = build_reward(entry.reward, **entry.args)
            assert isinstance(reward, JudgeReward)
            meter = _cached(reward.backend, args, outdir, closers)
            if args.judge == "pairwise":
                return scorers.PairwiseEvalJudge(meter, reward.config, meter)
            return scorers.PointwiseEvalJudge(
                PointwiseJudge(meter, reward.config, reward.meta_rm), meter
            )
        return scorers.SpecJudge(Scorer(spec))
    if args.judge == "length":
        return scorers.LengthJudge()
    if args.judge == "classifier":
        if not args.model:
            raise ConfigError(
                "--judge classifier needs --model (a sequence classifier folder or Hub id)"
            )
        return scorers.ClassifierJudge(args.model, device=args.device)
    from rewardkit.cli import judge as judge_cli
    from rewardkit.pipelines.judge_file import build_judge as build_judge_file

    # `rewardkit judge`'s own validation and build; eval writes no judge JSONL of its own.
    args.input, args.output, args.retry_errors = args.data[0], str(outdir / "judge.jsonl"), False
    options = judge_cli.options_from_args(args).model_copy(update={"cache": None, "keep": None})
    parts = build_judge_file(options)
    meter = _cached(parts.backend, args, outdir, closers)
    if args.judge == "pairwise":
        return scorers.PairwiseEvalJudge(meter, parts.judge.config, meter)
    return scorers.PointwiseEvalJudge(
        PointwiseJudge(meter, parts.judge.config, parts.meta_rm), meter
    )


def run(args: argparse.Namespace) -> int:
    from rewardkit.pipelines.eval.data import load_items
    from rewardkit.pipelines.eval.run import EvalSettings

    probes = args.data[0] == "probes"
    data = args.data[1:] if probes else args.data
    if not data:
        raise ConfigError("give the data to probe: rewardkit eval probes DATA -o OUTDIR")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    outdir = Path(args.output_dir)
    if outdir.exists() and not outdir.is_dir():
        raise ConfigError(f"-o {outdir} is a file; give a folder")
    settings = EvalSettings(
        bootstrap=args.bootstrap, seed=args.seed, meta_keep=args.meta_keep, plot=not args.no_plot
    )
    loaded = load_items(data, args.format, split=args.split, limit=args.limit)
    outdir.mkdir(parents=True, exist_ok=True)
    closers = _Closers()
    try:
        judge = build_judge(args, outdir, closers)
        if probes:
            return asyncio.run(_probes(args, loaded.items, judge, outdir, settings))
        return asyncio.run(_eval(args, loaded, judge, outdir, settings))
    finally:
        closers.close()


async def _eval(
    args: argparse.Namespace, loaded: Any, judge: Any, outdir: Path, settings: Any
) -> int:
    from rewardkit.pipelines.eval.run import run_eval

    results = await run_eval(
        loaded.items,
        judge,
        outdir,
        settings,
        concurrency=args.concurrency,
        progress=not args.no_progress,
        loaded=loaded,
        extra={"data": list(args.data)},
    )
    lo, hi = results["ci"]
    skipped = sum(results.get("skipped", {}).values())
    print(
        f"rewardkit eval: {judge.name} accuracy {results['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] "
        f"n={results['n']} k={results['k_max']} ties {results['ties']:.3f} "
        f"invalid {results['invalid']:.3f}"
        + (f", {skipped} rows not evaluated" if skipped else "")
        + f" -> {outdir / 'results.json'}",
        file=sys.stderr,
    )
    return 0


async def _probes(
    args: argparse.Namespace, items: Any, judge: Any, outdir: Path, settings: Any
) -> int:
    from rewardkit.pipelines.eval.probes import run_probes, write_probes

    names = [p.strip() for p in args.probes.split(",") if p.strip()]
    try:
        rows = await run_probes(
            items,
            judge,
            probes=names,
            concurrency=args.concurrency,
            resamples=settings.bootstrap,
            seed=settings.seed,
        )
    finally:
        await judge.aclose()
    write_probes(outdir, judge.name, rows, plot=settings.plot)
    for row in rows:
        state = "FLAGGED" if row.flagged else ("-" if row.flagged is None else "ok")
        rate = "n/a" if row.rate is None else f"{row.rate:.3f}"
        control = "" if row.control is None else f" vs control {row.control:.3f}"
        print(
            f"rewardkit eval probes: {row.name}: {rate}{control} (n={row.n}) {state}",
            file=sys.stderr,
        )
    return 0
