"""`rewardkit train grpo --config FILE [--resume]`: GRPO through TRL on a rewardkit spec.

Needs the `train` extra (torch, transformers, trl, datasets, accelerate). The config file
is described in `rewardkit.pipelines.grpo`; an example lives in examples/grpo/.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="train_command", metavar="ALGORITHM")
    grpo = sub.add_parser(
        "grpo",
        help="GRPO with TRL's GRPOTrainer",
        description="Train a policy with GRPO (TRL) on the rewards of a rewardkit spec.",
    )
    grpo.add_argument(
        "--config", required=True, help="YAML run config (model, dataset, reward, output_dir, grpo)"
    )
    grpo.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in output_dir (starts fresh if there is none)",
    )
    sft = sub.add_parser("sft", help="SFT with TRL's SFTTrainer (e.g. on `rewardkit sample` data)")
    sft.add_argument(
        "--config", required=True, help="YAML run config (model, dataset, output_dir, sft)"
    )
    sft.add_argument("--resume", action="store_true", help="continue from the last checkpoint")

    from rewardkit.cli.spct import add_train_arguments

    add_train_arguments(sub)  # judge-sft, judge-grpo, meta-rm (SPCT)
    parser.set_defaults(_train_parser=parser)


def run(args: argparse.Namespace) -> int:
    if args.train_command == "sft":
        from rewardkit.pipelines.sft import run_cli

        return run_cli(args.config, resume=args.resume)

    if args.train_command in ("judge-sft", "judge-grpo", "meta-rm"):
        from rewardkit.cli.spct import run_train

        return run_train(args)
    if args.train_command != "grpo":
        args._train_parser.print_help()
        return 2
    from rewardkit.pipelines.grpo import load_run_config, train_grpo

    config = load_run_config(args.config)
    result = train_grpo(config, resume=args.resume)
    if args.resume and result.resumed_from is None:
        print("rewardkit train grpo: no checkpoint found; trained from the start")
    rewards = result.rewards
    if rewards:
        k = max(1, len(rewards) // 4)
        first, last = sum(rewards[:k]) / k, sum(rewards[-k:]) / k
        print(
            f"trained {result.global_step} steps; mean reward first {k} logged steps {first:.3f}, "
            f"last {k} {last:.3f}"
        )
    else:
        print(f"trained {result.global_step} steps")
    print(f"model and checkpoints: {result.output_dir}")
    if result.samples_path is not None:
        print(f"samples: {result.samples_path}")
    if result.audit is not None:
        from rewardkit.pipelines.audit.callback import AUDIT_CSV

        flagged = result.audit["divergence"]
        verdict = (
            f"possible reward hacking from step {flagged['first_step']}"
            if flagged["flagged"]
            else "no divergence between proxy and gold"
        )
        print(f"audit: {verdict}; curves in {result.output_dir / AUDIT_CSV}")
    return 0
