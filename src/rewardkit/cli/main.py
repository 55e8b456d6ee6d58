"""Entry point of the `rewardkit` command.

Subcommands are imported only when chosen, so `rewardkit score` never pays for torch or
FastAPI. Every subcommand module exposes `add_arguments(parser)` and `run(args) -> int`.
The library raises; this is the one place that turns a `RewardkitError` into a one-line
message and an exit status, and a Ctrl-C into exit 130 without a traceback (see
`rewardkit.cli._exit.Interrupts`; only this module's own imports, kept light, come before).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Sequence

from rewardkit import __version__
from rewardkit.cli._exit import EXIT_INTERRUPTED, Interrupts, interrupted_message
from rewardkit.errors import RewardkitError

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "score": ("rewardkit.cli.score", "score samples with rule rewards or a reward spec"),
    "judge": ("rewardkit.cli.judge", "score responses with an SPCT-style LLM judge"),
    "serve": ("rewardkit.cli.serve", "serve rewards over HTTP (OpenRLHF protocol and native)"),
    "train": ("rewardkit.cli.train", "train a policy with GRPO on rewardkit rewards"),
    "sample": (
        "rewardkit.cli.sample",
        "rejection-sample a policy: SFT data, acceptance and pass@k",
    ),
    "spct": ("rewardkit.cli.spct", "SPCT judge training data: rejective fine-tuning (rft)"),
    "rewards": ("rewardkit.cli.rewards", "list the registered rewards"),
    "eval": ("rewardkit.cli.eval", "measure a judge on labelled preference data; probe its biases"),
    "report": ("rewardkit.cli.report", "one HTML page for eval, probe and audit result folders"),
    "audit": ("rewardkit.cli.audit", "catch reward hacking in a run; pairwise win rates"),
}

EXIT_USAGE = 2


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rewardkit", description="Reward signals for LLM post-training."
    )
    parser.add_argument("--version", action="version", version=f"rewardkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # import only the subcommand being run
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `rewardkit` command; its exit status. With `argv` None this is the program
    (`sys.argv`), and Ctrl-C is handled as `Interrupts` says; called with `argv`, as tests
    do, SIGINT handling is left alone and a KeyboardInterrupt still becomes exit 130."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), "")
    interrupts = Interrupts(command) if argv is None else None
    try:
        # Inside the try: importing a subcommand (numpy, pydantic...) takes a while, and a
        # Ctrl-C then must not print a traceback either.
        parser = build_parser(args_list)
        args = parser.parse_args(args_list)
        if not getattr(args, "_run", None):
            parser.print_help()
            return EXIT_USAGE
        with interrupts.raising() if interrupts else contextlib.nullcontext():
            return int(args._run(args) or 0)
    except RewardkitError as exc:
        print(f"rewardkit {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(interrupted_message(command), file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
