"""Inference-time scaling of the pointwise judge, on a simulated judge of known accuracy.

Each query is a pair: one better response, one worse. The simulated judge scores the
better one higher (7 vs 4) with probability p per sample, independently, and reversed
otherwise. Everything else is the real pipeline: prompt rendering with fenced responses,
shuffled display orders grouped into requests, parsing, mapping back to input order,
sum voting, meta-RM filtering. Columns:

- vote       PointwiseJudge accuracy at k samples (ties count half)
- theory     P(Bin(k, p) > k/2) + P(Bin(k, p) = k/2) / 2, what sum voting should give
- meta       a simulated meta RM that knows the truth through noise (rating = correct +
             N(0, sigma)) keeps the top half of the k judgments before voting
- bias/shuf  a judge with position bias (p+b when the better response is shown first,
             p-b when second), responses shuffled between samples (SPCT)
- bias/fix   the same biased judge, responses always in input order

    python benchmarks/bench_judge_scaling.py [--quick] [--p 0.65] [--queries 500]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rewardkit.backends.base import Completion, GenerateRequest
from rewardkit.judges import JudgeConfig, JudgeQuery, Judgment, PointwiseJudge

KS = (1, 2, 4, 8, 16, 32)
_FENCED = re.compile(r"\[BEGIN RESPONSE (\d+) (\w+)\]\n(.*?)\n\[END RESPONSE \1 \2\]", re.S)
OUT = Path(__file__).resolve().parent / "out"


class SimulatedJudge:
    """A backend whose per-sample accuracy is p (plus a position bias b, if any)."""

    model = "simulated"

    def __init__(self, p: float, bias: float = 0.0) -> None:
        self.p = p
        self.bias = bias
        self.requests = 0

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        self.requests += 1
        shown = [m.group(3) for m in _FENCED.finditer(request.messages[-1]["content"])]
        better_first = "[better]" in shown[0]
        p = self.p + (self.bias if better_first else -self.bias)
        rng = random.Random(request.seed)
        out = []
        for _ in range(request.n):
            correct = rng.random() < p
            first_high = correct == better_first
            scores = "7, 4" if first_high else "4, 7"
            out.append(
                Completion(
                    "Specific Criteria: accuracy (70%), clarity (30%).\n"
                    "Analysis: simulated.\n"
                    f"Scores: \\boxed{{{scores}}}",
                    "stop",
                )
            )
        return out

    async def aclose(self) -> None:
        return None


class SimulatedMetaRM:
    """Rates a judgment by whether it agrees with the truth, blurred by Gaussian noise."""

    def __init__(self, sigma: float, seed: int = 0) -> None:
        self.sigma = sigma
        self.rng = random.Random(seed)

    async def rate(self, query: JudgeQuery, judgments: Sequence[Judgment]) -> list[float]:
        better = 0 if "[better]" in query.responses[0] else 1
        ratings = []
        for judgment in judgments:
            assert judgment.scores is not None
            by_index = dict(zip(judgment.indices, judgment.scores, strict=True))
            correct = by_index[better] > by_index[1 - better]
            ratings.append(float(correct) + self.rng.gauss(0.0, self.sigma))
        return ratings


def theory(p: float, k: int) -> float:
    """Accuracy of majority voting over k independent samples of accuracy p, ties half."""
    total = 0.0
    for wins in range(k + 1):
        prob = math.comb(k, wins) * p**wins * (1 - p) ** (k - wins)
        if 2 * wins > k:
            total += prob
        elif 2 * wins == k:
            total += prob / 2
    return total


def make_queries(n: int, seed: int) -> list[JudgeQuery]:
    rng = random.Random(seed)
    queries = []
    for i in range(n):
        pair = [f"answer {i} [better]", f"answer {i} [worse]"]
        rng.shuffle(pair)  # the better response sits first in half the queries
        queries.append(JudgeQuery(f"question {i}", (pair[0], pair[1]), id=f"q{i}"))
    return queries


async def accuracy(judge: PointwiseJudge, queries: Sequence[JudgeQuery]) -> float:
    results = await asyncio.gather(*(judge.judge(q) for q in queries))
    score = 0.0
    for query, result in zip(queries, results, strict=True):
        better = 0 if "[better]" in query.responses[0] else 1
        a, b = result.rewards[better], result.rewards[1 - better]
        if a is None or b is None:
            continue  # counts as wrong: never happens with this judge
        score += 1.0 if a > b else 0.5 if a == b else 0.0
    return score / len(queries)


async def run(args: argparse.Namespace) -> list[dict[str, float]]:
    queries = make_queries(args.queries, args.seed)
    rows = []
    for k in KS:
        row: dict[str, float] = {"k": k, "theory": theory(args.p, k)}
        judge_backend = SimulatedJudge(args.p)
        start = time.perf_counter()
        row["vote"] = await accuracy(
            PointwiseJudge(judge_backend, JudgeConfig(samples=k, seed=args.seed)), queries
        )
        elapsed = time.perf_counter() - start
        row["requests"] = judge_backend.requests / len(queries)
        row["judgments_per_s"] = k * len(queries) / elapsed
        keep = max(1, k // 2)
        row["meta"] = await accuracy(
            PointwiseJudge(
                SimulatedJudge(args.p),
                JudgeConfig(samples=k, seed=args.seed, keep=keep),
                meta_rm=SimulatedMetaRM(args.sigma, args.seed),
            ),
            queries,
        )
        row["bias_shuffle"] = await accuracy(
            PointwiseJudge(
                SimulatedJudge(args.p, args.bias), JudgeConfig(samples=k, seed=args.seed)
            ),
            queries,
        )
        row["bias_fixed"] = await accuracy(
            PointwiseJudge(
                SimulatedJudge(args.p, args.bias),
                JudgeConfig(samples=k, seed=args.seed, shuffle=False),
            ),
            queries,
        )
        rows.append(row)
        print(f"  k={k:<2} done in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return rows


def print_table(rows: list[dict[str, float]], args: argparse.Namespace) -> None:
    base = rows[0]
    print(
        f"\nJudge scaling: {args.queries} pairs, per-sample accuracy p={args.p}, "
        f"meta-RM noise sigma={args.sigma} (keeps top half), position bias b={args.bias}"
    )
    header = (
        f"{'k':>3} {'req/q':>5} {'vote':>7} {'theory':>7} {'vote/th':>7} {'meta':>7} "
        f"{'meta/vote':>9} {'vote/k1':>7} {'meta/k1':>7} {'bias/shuf':>9} {'bias/fix':>8} "
        f"{'shuf/fix':>8} {'judg/s':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{int(r['k']):>3} {r['requests']:>5.1f} {r['vote']:>7.3f} {r['theory']:>7.3f} "
            f"{r['vote'] / r['theory']:>7.3f} {r['meta']:>7.3f} {r['meta'] / r['vote']:>9.3f} "
            f"{r['vote'] / base['vote']:>7.3f} {r['meta'] / base['vote']:>7.3f} "
            f"{r['bias_shuffle']:>9.3f} {r['bias_fixed']:>8.3f} "
            f"{r['bias_shuffle'] / r['bias_fixed']:>8.3f} {r['judgments_per_s']:>8.0f}"
        )


def plot(rows: list[dict[str, float]], args: argparse.Namespace) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'rewardkit[plot]'): no plot", file=sys.stderr)
        return None
    ks = [r["k"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(ks, [r["theory"] for r in rows], "k--", label=f"binomial majority, p={args.p}")
    ax.plot(ks, [r["vote"] for r in rows], "o-", label="vote (sum of scores)")
    ax.plot(ks, [r["meta"] for r in rows], "s-", label=f"meta RM top half (sigma={args.sigma})")
    ax.plot(
        ks, [r["bias_shuffle"] for r in rows], "^-", label=f"biased judge b={args.bias}, shuffled"
    )
    ax.plot(
        ks, [r["bias_fixed"] for r in rows], "v:", label=f"biased judge b={args.bias}, fixed order"
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.set_xlabel("k (sampled judgments per query)")
    ax.set_ylabel("pairwise accuracy")
    ax.set_title(f"Judge inference-time scaling ({args.queries} simulated pairs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "judge_scaling.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="150 pairs instead of 500")
    parser.add_argument("--queries", type=int, default=None)
    parser.add_argument("--p", type=float, default=0.65, help="per-sample judge accuracy")
    parser.add_argument("--sigma", type=float, default=0.8, help="meta-RM noise")
    parser.add_argument("--bias", type=float, default=0.25, help="position bias")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    if args.queries is None:
        args.queries = 150 if args.quick else 500
    if not (args.p - args.bias >= 0 and args.p + args.bias <= 1):
        parser.error("--p ± --bias must stay within [0, 1]")
    start = time.perf_counter()
    rows = asyncio.run(run(args))
    print_table(rows, args)
    path = None if args.no_plot else plot(rows, args)
    if path is not None:
        print(f"\nplot: {path}")
    print(f"total {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
