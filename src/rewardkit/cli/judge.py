"""`rewardkit judge`: score responses with an SPCT-style LLM judge, resumably.

    rewardkit judge in.jsonl -o out.jsonl --base-url http://127.0.0.1:8000/v1 --model qwen

The run itself is `rewardkit.pipelines.judge_file.judge_file`; this module only turns the
command line into its `JudgeOptions`, whose fields define the flags. Exit status: the
rule `rewardkit score` follows too (`rewardkit.cli._exit`): 0 when every line this run
wrote is clean, 1 when some hold an `error`, 2 when the run could not proceed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError

from rewardkit.backends.transport import DEFAULT_MAX_RESPONSE_BYTES
from rewardkit.cli._exit import EXIT_STATUS_HELP, exit_status
from rewardkit.cli._options import add_model_arguments, values_from_args
from rewardkit.errors import ConfigError
from rewardkit.pipelines.judge_file import JudgeOptions, judge_file

__all__ = ["add_arguments", "add_judge_options", "options_from_args", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    def one_line_error(message: str) -> NoReturn:
        # argparse prints the whole usage block first; one line that says what to fix is kinder.
        parser.exit(2, f"rewardkit judge: error: {message} (see rewardkit judge --help)\n")

    parser.error = one_line_error  # type: ignore[method-assign]
    parser.epilog = EXIT_STATUS_HELP
    add_judge_options(parser)


def add_judge_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, skip: frozenset[str] = frozenset()
) -> None:
    """The flags of `JudgeOptions` (less `skip`), for `rewardkit judge` and `rewardkit eval`."""
    add_model_arguments(parser, JudgeOptions, skip=skip)
    # Command-line sugar: the options hold one `cache` path, or None for no cache.
    parser.add_argument("--no-cache", action="store_true", help="do not cache judge calls")


def options_from_args(args: argparse.Namespace) -> JudgeOptions:
    """Turn parsed arguments into `JudgeOptions`, with one-line errors for user mistakes."""
    if not args.model and args.backend == "llama_cpp":
        from rewardkit.backends.models import require_default_judge_model

        args.model = require_default_judge_model()  # the best packaged GGUF installed
    if not args.model:
        raise ConfigError("--model is required (the served model name, a local path or a GGUF)")
    if args.backend == "http" and not args.base_url:
        raise ConfigError(
            "--base-url is required with --backend http (e.g. http://127.0.0.1:8000/v1)"
        )
    if args.backend != "http" and args.base_url:
        raise ConfigError(f"--base-url applies to --backend http only, not {args.backend}")
    if args.backend != "http" and getattr(args, "transport", "auto") != "auto":
        raise ConfigError(f"--transport applies to --backend http only, not {args.backend}")
    if args.backend != "http" and getattr(args, "server_kind", "auto") != "auto":
        raise ConfigError(f"--server-kind applies to --backend http only, not {args.backend}")
    cap = getattr(args, "max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES)
    if args.backend != "http" and cap != DEFAULT_MAX_RESPONSE_BYTES:
        raise ConfigError(
            f"--max-response-bytes applies to --backend http only, not {args.backend}"
        )
    if args.keep is not None and not args.meta_rm:
        raise ConfigError("--keep needs --meta-rm (the model that ranks the judgments)")
    if args.no_cache and args.cache:
        raise ConfigError("--cache and --no-cache contradict each other; give one")
    values = values_from_args(args, JudgeOptions)
    values["cache"] = None if args.no_cache else Path(args.cache or f"{args.output}.cache.sqlite")
    values["principles"] = _text_or_file(args.principles)
    values["template"] = _read_file(args.template, "--template") if args.template else None
    try:
        return JudgeOptions(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "option"
        raise ConfigError(f"{name}: {error['msg']}") from None


def _text_or_file(value: str | None) -> str | None:
    if value is None:
        return None
    path = Path(value)
    if len(value) < 4096 and "\n" not in value and path.is_file():
        return _read_file(value, "--principles")
    return value


def _read_file(value: str, option: str) -> str:
    try:
        return Path(value).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {value}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    summary = judge_file(options_from_args(args))
    print(f"rewardkit judge: {summary.describe()}", file=sys.stderr)
    return exit_status(summary.error_lines)
