"""`rewardkit sample PROMPTS -o OUT --policy MODEL -n N (--spec FILE | --reward NAME)`.

Rejection sampling (R1's SFT data), distillation data with a strong policy, and a policy
evaluation (pass@1, pass@k, cons@n) from the same samples:

    rewardkit sample prompts.jsonl -o runs/rs --backend http --base-url http://127.0.0.1:8000/v1 \\
        --policy my-model -n 16 --reward math --keep correct

OUT is a folder (see `rewardkit.pipelines.sample.run`); rerun the same command to resume.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from rewardkit.cli._spec_args import add_spec_arguments, parse_reward_args, spec_from_args
from rewardkit.errors import ConfigError

__all__ = ["add_arguments", "config_from_args", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    def one_line_error(message: str) -> NoReturn:
        parser.exit(2, f"rewardkit sample: error: {message} (see rewardkit sample --help)\n")

    parser.error = one_line_error  # type: ignore[method-assign]
    parser.add_argument(
        "prompts", metavar="PROMPTS", help="JSONL, Parquet or datasets folder of prompts"
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="output folder (rerun to resume)"
    )
    add_spec_arguments(parser)

    policy = parser.add_argument_group("policy (built like `rewardkit judge` builds its backend)")
    policy.add_argument(
        "--backend", choices=["http", "llama_cpp", "transformers", "mock"], default="http"
    )
    policy.add_argument(
        "--policy",
        metavar="MODEL",
        help="served model name (http), local path (transformers) or GGUF (llama_cpp)",
    )
    policy.add_argument(
        "--base-url",
        action="append",
        default=[],
        metavar="URL",
        help="OpenAI-compatible base URL (repeat to balance load)",
    )
    policy.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY)")
    policy.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds per request attempt (http)",
    )
    policy.add_argument(
        "--retries", type=int, default=5, metavar="R", help="retries per request (http)"
    )
    policy.add_argument(
        "--concurrency", type=int, default=16, metavar="C", help="prompts in flight (default 16)"
    )
    policy.add_argument(
        "--policy-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="further backend option, e.g. n_ctx=2048",
    )

    sampling = parser.add_argument_group("sampling")
    sampling.add_argument(
        "-n", type=int, default=4, metavar="N", help="completions per prompt (default 4)"
    )
    sampling.add_argument("--temperature", type=float, default=0.6, metavar="T")
    sampling.add_argument("--top-p", type=float, default=0.95, metavar="P")
    sampling.add_argument("--max-tokens", type=int, default=4096, metavar="N")
    sampling.add_argument("--seed", type=int, metavar="S")
    sampling.add_argument("--system-prompt", metavar="TEXT")
    sampling.add_argument("--prompt-column", default="prompt", metavar="COL")
    sampling.add_argument("--reference-column", default="reference", metavar="COL")
    sampling.add_argument("--limit", type=int, metavar="N", help="only the first N prompts")

    keep = parser.add_argument_group("what is kept")
    keep.add_argument("--keep", choices=["correct", "above", "best", "top_k"], default="correct")
    keep.add_argument(
        "--threshold", type=float, default=1.0, help="reward counted as correct (default 1.0)"
    )
    keep.add_argument("--min-reward", type=float, help="gate for --keep above/best/top_k")
    keep.add_argument(
        "--top-k", type=int, default=1, metavar="K", help="kept per prompt by --keep top_k"
    )
    keep.add_argument(
        "--language", help="target language for the language-mixing filter (default: the prompt's)"
    )
    keep.add_argument("--min-language-consistency", type=float, default=0.9, metavar="F")
    keep.add_argument("--max-paragraph-chars", type=int, default=3000, metavar="N")
    keep.add_argument("--summary", choices=["think", "special_token", "off"], default="think")
    keep.add_argument(
        "--allow-code-blocks", action="store_true", help="keep code blocks in non-code answers"
    )
    keep.add_argument(
        "--keep-truncated", action="store_true", help="keep completions cut off by --max-tokens"
    )
    keep.add_argument("--no-filters", action="store_true", help="turn every readability filter off")
    keep.add_argument(
        "--near-dup",
        type=float,
        default=0.9,
        metavar="J",
        help="shingle Jaccard for near-duplicates (0: off)",
    )

    out = parser.add_argument_group("output")
    out.add_argument("--format", choices=["jsonl", "parquet", "datasets"], default="jsonl")
    out.add_argument("--pass-k", type=int, action="append", default=[], metavar="K")
    out.add_argument("--bootstrap", type=int, default=1000, metavar="B")
    out.add_argument("--no-progress", action="store_true")
    out.add_argument(
        "--ray",
        action="store_true",
        help="score completions on Ray actors (the cluster in $RAY_ADDRESS, else a local one)",
    )


def config_from_args(args: argparse.Namespace) -> Any:
    """`SampleRunConfig` from parsed arguments; a user mistake is a one-line `ConfigError`."""
    from rewardkit.pipelines.sample import SampleRunConfig

    spec = spec_from_args(args)
    if spec is None:  # argparse requires one of them; reached only with a hand-built Namespace
        raise ConfigError("give --reward NAME or --spec FILE")
    off = args.no_filters
    data: dict[str, Any] = {
        "prompts": Path(args.prompts),
        "output": Path(args.output),
        "spec": spec,
        "policy": {
            "backend": args.backend,
            "model": args.policy,
            "base_url": tuple(args.base_url),
            "api_key": args.api_key,
            "timeout": args.timeout,
            "retries": args.retries,
            "concurrency": args.concurrency,
            "options": parse_reward_args(args.policy_option),
        },
        "sampling": {
            "n": args.n,
            "temperature": args.temperature,
            "top_p": args.top_p,
            "max_tokens": args.max_tokens,
            "seed": args.seed,
            "system_prompt": args.system_prompt,
        },
        "input": {
            "prompt_column": args.prompt_column,
            "reference_column": args.reference_column,
            "limit": args.limit,
        },
        "keep": {
            "policy": args.keep,
            "threshold": args.threshold,
            "min_reward": args.min_reward,
            "k": args.top_k,
        },
        "filters": {
            "language": args.language,
            "min_language_consistency": None if off else args.min_language_consistency,
            "max_paragraph_chars": None if off else args.max_paragraph_chars,
            "summary": "off" if off else args.summary,
            "code_blocks": not (off or args.allow_code_blocks),
            "truncated": not (off or args.keep_truncated),
        },
        "dedup": {"near_threshold": args.near_dup or None},
        "out": {
            "format": args.format,
            "pass_k": tuple(args.pass_k),
            "bootstrap": args.bootstrap,
            "progress": not args.no_progress,
        },
    }
    try:
        return SampleRunConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "option"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{where}: {message}") from None


def run(args: argparse.Namespace) -> int:
    from rewardkit.pipelines.sample.run import run_sample
    from rewardkit.pipelines.sample.writer import acceptance_table

    config = config_from_args(args)
    scorer = None
    if getattr(args, "ray", False):
        from rewardkit.integrations.ray import RayScorer

        scorer = RayScorer(config.spec, quiet=args.no_progress)
    try:
        result = asyncio.run(run_sample(config, scorer=scorer))
    finally:
        if scorer is not None:  # run_sample closes it too, unless it failed before starting
            scorer.close()
    summary = result.summary
    print(acceptance_table(summary), file=sys.stderr)
    for name, entry in result.metrics.items():
        shown = [f"{k} {v['value']:.3f}" for k, v in entry.items() if isinstance(v, dict)]
        print(f"{name}: {entry['prompts']} prompts, " + ", ".join(shown), file=sys.stderr)
    print(
        f"rewardkit sample: {result.drawn} drawn, {result.failed} failed, "
        f"{summary['kept']} kept of {summary['samples']} -> {result.sft_path}",
        file=sys.stderr,
    )
    for problem in result.input_errors[:5]:
        print(f"  input: {problem['error']}", file=sys.stderr)
    if result.input_errors:
        print(
            f"  {len(result.input_errors)} prompt rows not sampled (see summary.json)",
            file=sys.stderr,
        )
    return 1 if result.failed or result.input_errors else 0
