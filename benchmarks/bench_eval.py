"""The k-curve of `rewardkit eval` costs the judge calls of k_max only.

    python benchmarks/bench_eval.py [--quick]

One run at k_max = 8 (Voting@1, 2, 4, 8 estimated from subsets of its samples) against four
separate runs at k = 1, 2, 4, 8, on the same pairs with the same scripted judge (a mock
backend that is right 70% of the time per sample and takes 2 ms per request). Rows: judge
requests, samples generated and seconds, each with its ratio to the one k_max run; then the
accuracy each separate run measured beside the one-run estimate at that k.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from rewardkit.backends.base import GenerateRequest
from rewardkit.backends.mock import MockBackend
from rewardkit.judges import JudgeConfig, PointwiseJudge
from rewardkit.pipelines.eval import CostMeter, EvalItem, EvalSettings, PointwiseEvalJudge, run_eval

_FENCED = re.compile(r"\[BEGIN RESPONSE (\d+) (\w+)\]\n(.*?)\n\[END RESPONSE \1 \2\]", re.S)
K_MAX = 8
DELAY = 0.002


def answer(request: GenerateRequest, index: int) -> str:
    texts = [m.group(3) for m in _FENCED.finditer(request.messages[-1]["content"])]
    wrong = int(hashlib.sha256(f"{request.seed}/{index}".encode()).hexdigest(), 16) % 10 >= 7
    scores = [(3 if "good" in t else 8) if wrong else (8 if "good" in t else 3) for t in texts]
    return "Analysis: compared.\nScores: \\boxed{" + ", ".join(map(str, scores)) + "}"


def items(n: int) -> list[EvalItem]:
    return [
        EvalItem(
            f"q{i}",
            f"Question {i}: which answer is right?",
            (f"a good answer to {i}", f"a bad answer to {i}"),
            (True, False),
        )
        for i in range(n)
    ]


def one_run(
    data: list[EvalItem], k: int, outdir: Path
) -> tuple[dict[str, Any], MockBackend, float]:
    backend = MockBackend(answer, delay=DELAY)
    meter = CostMeter(backend)
    judge = PointwiseEvalJudge(PointwiseJudge(meter, JudgeConfig(samples=k)), meter)
    started = time.perf_counter()
    results = asyncio.run(
        run_eval(
            data,
            judge,
            outdir,
            EvalSettings(bootstrap=200, plot=False),
            concurrency=8,
            progress=False,
        )
    )
    return results, backend, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer items")
    args = parser.parse_args()
    n = 60 if args.quick else 300
    data = items(n)
    with tempfile.TemporaryDirectory() as tmp:
        curve_results, curve_backend, curve_seconds = one_run(data, K_MAX, Path(tmp) / "curve")
        separate = {k: one_run(data, k, Path(tmp) / f"k{k}") for k in (1, 2, 4, 8)}
    curve_samples = sum(r.n for r in curve_backend.requests)
    sep_requests = sum(b.calls for _, b, _ in separate.values())
    sep_samples = sum(sum(r.n for r in b.requests) for _, b, _ in separate.values())
    sep_seconds = sum(s for _, _, s in separate.values())
    print(
        f"k-curve cost: {n} pairs, scripted judge right 70% per sample, {DELAY * 1000:.0f} ms/request\n"
    )
    print(f"{'':38} {'requests':>9} {'samples':>9} {'seconds':>8}")
    print(
        f"{'one run at k_max=8 (curve 1,2,4,8)':38} {curve_backend.calls:>9} {curve_samples:>9} {curve_seconds:>8.2f}"
    )
    print(
        f"{'separate runs at k=1,2,4,8 (sum)':38} {sep_requests:>9} {sep_samples:>9} {sep_seconds:>8.2f}"
    )
    print(
        f"{'ratio separate / one run':38} {sep_requests / curve_backend.calls:>9.2f} "
        f"{sep_samples / curve_samples:>9.2f} {sep_seconds / curve_seconds:>8.2f}"
    )
    print(
        f"\n{'k':>3} {'estimated Voting@k (one run)':>30} {'separate run at k':>18} {'curve requests@k':>17} {'run requests':>13}"
    )
    for point in curve_results["curve"]:
        k = point["k"]
        results, backend, _ = separate[k]
        print(
            f"{k:>3} {point['voting']:>30.3f} {results['accuracy']:>18.3f} {point['requests']:>17} {backend.calls:>13}"
        )


if __name__ == "__main__":
    main()
