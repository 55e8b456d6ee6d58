"""`rewardkit spct rft DATA -o OUT [judge options]`: SPCT rejective fine-tuning data.

    rewardkit spct rft pairs.jsonl -o rft/ --backend llama_cpp --model smollm2-135m
    rewardkit spct rft rows.jsonl --labels gold.jsonl -o rft/ --base-url URL --model judge

The judge options are `rewardkit judge`'s own (same parser, same backend construction);
`--samples`, `--meta-rm`, `--keep` and `--retry-errors` do not apply (use `--n-rft`).
Judge calls are cached in OUT/judge.cache.sqlite by default, and every trajectory is
appended to OUT/samples.jsonl: rerunning the command resumes. See docs/spct.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import NoReturn

from rewardkit.errors import ConfigError

__all__ = ["add_arguments", "add_train_arguments", "run", "run_train"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rewardkit.cli import judge as judge_cli

    sub = parser.add_subparsers(dest="spct_command", metavar="STAGE")
    rft = sub.add_parser(
        "rft",
        help="sample judge trajectories and keep those that agree with the labels",
        description="SPCT rejective fine-tuning data: N_RFT judgments per labelled item, "
        "accepted when they pick the labelled best strictly (or match the rating).",
    )
    judge_cli.add_arguments(rft)  # DATA, -o and every judge/backend option

    def one_line_error(message: str) -> NoReturn:
        rft.exit(2, f"rewardkit spct rft: error: {message} (see rewardkit spct rft --help)\n")

    rft.error = one_line_error  # type: ignore[method-assign]
    for action in rft._actions:
        if action.dest == "output":
            action.help = "output folder (sft.jsonl, rejected.jsonl, summary.json, ...; resumable)"
        elif action.dest == "input":
            action.help = "labelled items: JSONL / JSON array / Parquet (see docs/spct.md)"
    rft.add_argument(
        "--n-rft",
        type=int,
        default=3,
        metavar="N",
        help="trajectories per item (SPCT's N_RFT, default 3)",
    )
    rft.add_argument(
        "--hinted",
        action="store_true",
        help="for items with no correct trajectory, sample N more with the best "
        "response named in the prompt (flagged in the output; off by default)",
    )
    rft.add_argument(
        "--labels",
        metavar="GOLD_JSONL",
        help="take labels from a `rewardkit judge` output over DATA (best = argmax)",
    )
    rft.add_argument("--limit", type=int, metavar="N", help="use only the first N usable items")
    rft.add_argument("--seed", type=int, default=0, help="display orders and request seeds")
    parser.set_defaults(_spct_parser=parser)


def run(args: argparse.Namespace) -> int:
    if args.spct_command != "rft":
        args._spct_parser.print_help()
        return 2
    return asyncio.run(_rft(args))


async def _rft(args: argparse.Namespace) -> int:
    from rewardkit.cli import judge as judge_cli
    from rewardkit.pipelines.judge_file import build_judge
    from rewardkit.pipelines.spct.rft import RFTConfig, run_rft

    for flag, given in (
        ("--samples", args.samples != 1),
        ("--meta-rm", args.meta_rm is not None),
        ("--keep", args.keep is not None),
        ("--retry-errors", args.retry_errors),
    ):
        if given:
            hint = "; use --n-rft" if flag == "--samples" else ""
            raise ConfigError(f"{flag} does not apply to spct rft{hint}")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out} is a file; spct rft writes a folder")
    if args.labels is not None and not Path(args.labels).is_file():
        raise ConfigError(f"--labels {args.labels}: no such file")
    if not args.no_cache and not args.cache:
        args.cache = str(out / "judge.cache.sqlite")
    config = RFTConfig(
        n_rft=args.n_rft,
        hinted=args.hinted,
        concurrency=args.concurrency,
        seed=args.seed,
        limit=args.limit,
        progress=not args.no_progress,
    )
    options = judge_cli.options_from_args(args)
    out.mkdir(parents=True, exist_ok=True)
    # The judge exactly as `rewardkit judge` builds it: backend, cache, template, mode.
    parts = build_judge(options)
    try:
        summary = await run_rft(options.input, parts.judge, out, config, labels=args.labels)
    finally:
        await parts.aclose()
    report = summary.to_dict()
    print(
        f"rewardkit spct rft: {summary.items} items, {summary.trajectories} trajectories, "
        f"{summary.correct} correct ({summary.correct_rate:.0%}); {summary.sft_rows} SFT rows "
        f"({summary.hinted_sft_rows} hinted); items {json.dumps(report['item_status'])}; "
        f"skipped rows {json.dumps(report['skipped'])} -> {out}",
        file=sys.stderr,
    )
    if summary.backend_errors:
        print(
            f"rewardkit spct rft: {summary.backend_errors} requests failed "
            f"({summary.last_backend_error}); rerun to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


# -- `rewardkit train judge-sft | judge-grpo | meta-rm` (registered by cli/train.py) ---------

_TRAIN = {
    "judge-sft": (
        "SPCT: fine-tune a judge on `spct rft` rows (TRL SFTTrainer)",
        "Supervised fine-tuning of a judge on rejective fine-tuning data (docs/spct.md).",
        "YAML run config (model, dataset, output_dir, sft)",
    ),
    "judge-grpo": (
        "SPCT: rule-based online RL of a judge (GRPO + judge_agreement)",
        "Train a judge with GRPO; reward +1 when its verdict agrees with the label, else -1.",
        "YAML run config (model, dataset, output_dir, beta, grpo)",
    ),
    "meta-rm": (
        "SPCT: train the meta RM that picks which judgments vote",
        "Train a one-logit classifier (BCE) on MetaRMRecord JSONL; load it with --meta-rm.",
        "YAML run config (model, data, output_dir, train)",
    ),
}


def add_train_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, (help_text, description, config_help) in _TRAIN.items():
        command = sub.add_parser(name, help=help_text, description=description)
        command.add_argument("--config", required=True, help=config_help)
        command.add_argument(
            "--resume",
            action="store_true",
            help="continue from the last checkpoint in output_dir (starts fresh if there is none)",
        )


def run_train(args: argparse.Namespace) -> int:
    command = args.train_command
    if command == "judge-sft":
        from rewardkit.pipelines.spct.sft import load_judge_sft_config, train_judge_sft

        sft = train_judge_sft(load_judge_sft_config(args.config), resume=args.resume)
        print(f"trained {sft.global_step} steps; {_curve('loss', sft.losses)}")
        print(f"model and checkpoints: {sft.output_dir}")
        return 0
    if command == "judge-grpo":
        from rewardkit.pipelines.spct.grpo import load_judge_grpo_config, train_judge_grpo

        result = train_judge_grpo(load_judge_grpo_config(args.config), resume=args.resume)
        if args.resume and result.resumed_from is None:
            print("rewardkit train judge-grpo: no checkpoint found; trained from the start")
        print(f"trained {result.global_step} steps; {_curve('reward', result.rewards)}")
        print(f"model and checkpoints: {result.output_dir}")
        if result.samples_path is not None:
            print(f"samples: {result.samples_path}")
        return 0
    from rewardkit.pipelines.spct.meta_rm import load_meta_rm_config, train_meta_rm

    meta = train_meta_rm(load_meta_rm_config(args.config), resume=args.resume)
    print(
        f"trained {meta.global_step} steps on {meta.train_records} judgments; "
        f"{_curve('loss', meta.losses)}"
    )
    if meta.eval_accuracy is not None:
        print(
            f"held-out accuracy {meta.eval_accuracy:.3f} on {meta.eval_records} judgments "
            f"(majority label {meta.eval_majority:.3f})"
        )
    print(f"meta RM: {meta.output_dir}  (use: rewardkit judge ... --meta-rm {meta.output_dir})")
    return 0


def _curve(name: str, values: list[float]) -> str:
    if not values:
        return f"no {name} logged"
    k = max(1, len(values) // 4)
    first, last = sum(values[:k]) / k, sum(values[-k:]) / k
    return f"mean {name} first {k} logged steps {first:.3f}, last {k} {last:.3f}"
