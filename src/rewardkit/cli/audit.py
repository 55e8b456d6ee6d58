"""`rewardkit audit`: catch reward hacking in a GRPO run; pairwise win rates vs a baseline.

    rewardkit audit RUN_DIR --gold math -o OUTDIR
        Scores RUN_DIR/samples.jsonl (written by `rewardkit train grpo`) step by step with
        the gold reward, next to the proxy reward recorded with each sample; tracks the
        hacking features; flags a rising proxy with a flat or falling gold. Writes
        OUTDIR/results.json (kind: audit), OUTDIR/audit.csv and OUTDIR/audit.png.

    rewardkit audit winrate ANSWERS BASELINE --base-url URL --model NAME -o OUTDIR
        Arena-Hard-style: a pairwise judge compares each prompt's two answers in both
        orders; raw and length-controlled win rates with bootstrap CIs go to
        OUTDIR/results.json (kind: winrate), every judgment to OUTDIR/judgments.jsonl.

Exit status: 0; 1 when the audit flags divergence (so CI can fail on it); 2 on a usage or
input error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

from rewardkit.errors import ConfigError

__all__ = ["add_arguments", "run"]

EXIT_FLAGGED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__.split("\n\nExit status")[0] if __doc__ else None
    parser.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        metavar="RUN_DIR ... | winrate ...",
        help="`rewardkit audit RUN_DIR --help` or `rewardkit audit winrate --help` for options",
    )


def _one_line(parser: argparse.ArgumentParser) -> None:
    def error(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")

    parser.error = error  # type: ignore[method-assign]


def _divergence_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("divergence rule (docs/audit.md)")
    group.add_argument("--window", type=int, default=3, metavar="W", help="points per side (3)")
    group.add_argument("--delta", type=float, default=0.1, help="least proxy rise to flag (0.1)")
    group.add_argument(
        "--gold-tolerance",
        type=float,
        default=0.02,
        metavar="T",
        help="largest gold rise that still counts as flat (0.02)",
    )
    group.add_argument(
        "--baseline",
        choices=["window", "start"],
        default="window",
        help="compare the last W points with the W before them (window) or the first W (start)",
    )


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rewardkit audit",
        description="Audit a GRPO run's saved samples against a gold reward.",
    )
    _one_line(parser)
    parser.add_argument("run", metavar="RUN_DIR", help="a run's output_dir, or its samples JSONL")
    parser.add_argument(
        "--gold",
        required=True,
        metavar="SPEC",
        help="gold reward: a registered name (math), or a spec file (YAML/TOML/JSON)",
    )
    parser.add_argument(
        "--proxy",
        metavar="SPEC",
        help="rescore with this proxy spec instead of the rewards recorded in the samples",
    )
    parser.add_argument("-o", "--output", metavar="OUTDIR", help="default: RUN_DIR/audit")
    parser.add_argument("--no-plot", action="store_true", help="skip audit.png")
    _divergence_options(parser)
    return parser


def winrate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rewardkit audit winrate",
        description="Pairwise win rate of ANSWERS against BASELINE, judged in both orders, "
        "with bootstrap CIs and a length-controlled rate (Arena-Hard style control).",
    )
    _one_line(parser)
    parser.add_argument("answers", metavar="ANSWERS", help="the policy's answers (JSONL)")
    parser.add_argument("baseline", metavar="BASELINE", help="the baseline's answers (JSONL)")
    parser.add_argument(
        "--questions", metavar="FILE", help="prompts by id, when the answer files lack them"
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N paired prompts")
    judge = parser.add_argument_group("judge")
    judge.add_argument(
        "--backend",
        choices=["http", "transformers", "llama_cpp"],
        default="http",
        help="http: an OpenAI-compatible server (default)",
    )
    judge.add_argument("--base-url", action="append", default=[], metavar="URL")
    judge.add_argument("--model", help="served model name, local path or GGUF")
    judge.add_argument("--mode", choices=["helpfulness", "harmlessness"], default="helpfulness")
    judge.add_argument("--samples", type=int, default=1, help="judgments per order (1)")
    judge.add_argument("--temperature", type=float, default=0.0)
    judge.add_argument("--max-tokens", type=int, default=1024)
    judge.add_argument("--concurrency", type=int, default=16)
    judge.add_argument("--timeout", type=float, default=120.0)
    judge.add_argument("--retries", type=int, default=5)
    judge.add_argument("--api-key", help="default: $OPENAI_API_KEY")
    stats = parser.add_argument_group("statistics")
    stats.add_argument("--bootstrap", type=int, default=1000, metavar="B", help="resamples")
    stats.add_argument("--confidence", type=float, default=0.95)
    stats.add_argument("--seed", type=int, default=0)
    return parser


def run(args: argparse.Namespace) -> int:
    rest = list(args.args)
    if not rest:
        print(
            "usage: rewardkit audit RUN_DIR --gold SPEC [-o OUTDIR]\n"
            "       rewardkit audit winrate ANSWERS BASELINE --model M [--base-url URL] -o OUTDIR",
            file=sys.stderr,
        )
        return 2
    if rest[0] == "winrate":
        return _winrate(winrate_parser().parse_args(rest[1:]))
    return _audit(run_parser().parse_args(rest))


def _divergence(ns: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from rewardkit.pipelines.audit.divergence import DivergenceConfig

    try:
        return DivergenceConfig(
            window=ns.window, delta=ns.delta, gold_tolerance=ns.gold_tolerance, baseline=ns.baseline
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"--{'-'.join(str(p) for p in err['loc'])}: {err['msg']}") from None


def _audit(ns: argparse.Namespace) -> int:
    from rewardkit.pipelines.audit.config import resolve_reward_spec
    from rewardkit.pipelines.audit.record import spec_scorer
    from rewardkit.pipelines.audit.runner import audit_run

    rule = _divergence(ns)
    gold = resolve_reward_spec(ns.gold)
    proxy = resolve_reward_spec(ns.proxy) if ns.proxy else None
    run_path = Path(ns.run)
    out = (
        Path(ns.output)
        if ns.output
        else (run_path if run_path.is_dir() else run_path.parent) / "audit"
    )
    result = audit_run(
        run_path,
        spec_scorer(gold),
        out,
        proxy=spec_scorer(proxy) if proxy is not None else None,
        divergence=rule,
        plot=not ns.no_plot,
        meta={
            "gold_spec": gold.model_dump(),
            **({"proxy_spec": proxy.model_dump()} if proxy else {}),
        },
    )
    points = result.points
    print(f"{'step':>6} {'proxy':>8} {'gold':>8} {'n':>4}  length  repetition  master_key")
    for p in points:

        def fmt(v: float | None) -> str:
            return "    -   " if v is None else f"{v:8.3f}"

        f = p.features
        print(
            f"{p.step:>6} {fmt(p.proxy_mean)} {fmt(p.gold_mean)} {p.n:>4}  "
            f"{f['length_words']:6.1f}  {f['repetition']:10.3f}  {f['master_key']:10.3f}"
        )
    unscored = sum(sum(p.unscored.values()) for p in points)
    if unscored:
        print(f"{unscored} completion scores left unscored (reasons per step in results.json)")
    print(result.divergence.message())
    written = [result.results_path, result.csv_path] + (
        [result.plot_path] if result.plot_path else []
    )
    print("wrote " + ", ".join(str(p) for p in written))
    return EXIT_FLAGGED if result.divergence.flagged else 0


def _winrate(ns: argparse.Namespace) -> int:
    from rewardkit.pipelines.audit.answers import load_answers, load_questions, pair_answers
    from rewardkit.pipelines.audit.record import write_json

    if ns.backend == "http" and not ns.base_url:
        raise ConfigError(
            "--base-url is required with --backend http (e.g. http://127.0.0.1:8000/v1)"
        )
    if not ns.model:
        raise ConfigError("--model is required (the served model name, a local path or a GGUF)")
    if not 0 < ns.confidence < 1:
        raise ConfigError(f"--confidence must be between 0 and 1, got {ns.confidence}")
    if ns.bootstrap < 1 or ns.samples < 1 or ns.concurrency < 1:
        raise ConfigError("--bootstrap, --samples and --concurrency must be at least 1")
    questions = load_questions(Path(ns.questions)) if ns.questions else None
    pairs, skipped = pair_answers(
        load_answers(Path(ns.answers)), load_answers(Path(ns.baseline)), questions, limit=ns.limit
    )
    report, judged = asyncio.run(_judge(ns, pairs))
    report.skipped = skipped
    report.meta = {
        "answers": str(ns.answers),
        "baseline": str(ns.baseline),
        "judge": {"backend": ns.backend, "model": ns.model, "mode": ns.mode, "samples": ns.samples},
    }
    document = report.to_dict()
    out = Path(ns.output)
    write_json(out / "results.json", document)
    with (out / "judgments.jsonl").open("w", encoding="utf-8") as handle:
        for row in judged:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    _print_winrate(document)
    print(f"wrote {out / 'results.json'}, {out / 'judgments.jsonl'}")
    return 0


async def _judge(ns: argparse.Namespace, pairs: list[Any]) -> tuple[Any, list[dict[str, Any]]]:
    from rewardkit.backends import build_backend
    from rewardkit.judges import JudgeConfig, PairwiseJudge
    from rewardkit.pipelines.audit.winrate import WinRateReport, judge_battles

    if ns.backend == "http":
        backend = build_backend(
            "http",
            base_url=list(ns.base_url),
            model=ns.model,
            concurrency=ns.concurrency,
            timeout=ns.timeout,
            max_retries=ns.retries,
            api_key=ns.api_key,
        )
    else:
        backend = build_backend(ns.backend, model=ns.model)
    config = JudgeConfig(
        mode=ns.mode, samples=ns.samples, temperature=ns.temperature, max_tokens=ns.max_tokens
    )
    try:
        judge = PairwiseJudge(backend, config)
        battles, invalid, results = await judge_battles(judge, pairs, concurrency=ns.concurrency)
    finally:
        await backend.aclose()
    report = WinRateReport(
        battles, len(pairs), invalid, n_boot=ns.bootstrap, alpha=1 - ns.confidence, seed=ns.seed
    )
    return report, [r.to_dict() for r in results]


def _print_winrate(doc: dict[str, Any]) -> None:
    conf = round(100 * doc["confidence"])
    print(f"{doc['prompts']} prompts, {doc['battles']} valid judgments", end="")
    if doc["invalid_judgments"]:
        print(f", invalid: {doc['invalid_judgments']}", end="")
    if doc["skipped_prompts"]:
        print(f", left out: {doc['skipped_prompts']}", end="")
    print()
    if doc["win_rate"] is None:
        print("no valid judgment: no win rate")
        return
    lo, hi = doc["ci"]
    print(f"win rate            {doc['win_rate']:.3f}  [{lo:.3f}, {hi:.3f}] ({conf}% CI)")
    lc = doc["length_controlled"]
    lo, hi = lc["ci"]
    print(f"length-controlled   {lc['win_rate']:.3f}  [{lo:.3f}, {hi:.3f}]")
    order = doc["by_order"]
    print(
        "policy shown first  "
        + (f"{order['policy_first']:.3f}" if order["policy_first"] is not None else "-")
        + "   second "
        + (f"{order['policy_second']:.3f}" if order["policy_second"] is not None else "-")
    )
