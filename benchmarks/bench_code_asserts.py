"""Assert tests judged outside the program: HumanEval's 164 through the code reward.

    python benchmarks/bench_code_asserts.py [--quick] [--parallel N]

Each problem is scored twice, as the canonical solution (must pass) and as the prompt with
a `pass` body (must fail); the baseline is one plain sandboxed run of the same canonical
program, the least any sandboxed verdict costs. The table prints totals, the time per
sample and the ratio to the baseline.
Needs ../shared/data/code/HumanEval.jsonl.gz (exits 0 with a note when absent).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rewardkit.rules.code import CodeReward
from rewardkit.sandbox import run_code
from rewardkit.types import Sample

HUMANEVAL = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "code" / "HumanEval.jsonl.gz"
)


def fence(src: str) -> str:
    return f"```python\n{src}\n```"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first 40 problems")
    parser.add_argument("--parallel", type=int, default=2, help="programs at a time")
    args = parser.parse_args()
    if not HUMANEVAL.exists():
        print(f"skipped: {HUMANEVAL} is not present")
        return
    with gzip.open(HUMANEVAL, "rt") as f:
        problems = [json.loads(line) for line in f]
    if args.quick:
        problems = problems[:40]
    reward = CodeReward(max_parallel=args.parallel)

    def samples(body_of):
        return [
            Sample(
                p["prompt"],
                fence(p["prompt"] + body_of(p)),
                {"asserts": p["test"] + f"\ncheck({p['entry_point']})\n"},
            )
            for p in problems
        ]

    reward.score(samples(lambda p: p["canonical_solution"])[0])  # start the evaluator pool
    t = time.perf_counter()
    with ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(lambda p: run_code(p["prompt"] + p["canonical_solution"]), problems))
    baseline = time.perf_counter() - t
    rows: list[tuple[str, float, str]] = [("one plain run_code (baseline)", baseline, "")]
    for label, body_of, want in [
        ("canonical solutions", lambda p: p["canonical_solution"], 1.0),
        ("`pass` bodies", lambda p: "    pass\n", 0.0),
    ]:
        t = time.perf_counter()
        results = reward.score_batch(samples(body_of))
        elapsed = time.perf_counter() - t
        right = sum(getattr(r, "value", None) == want for r in results)
        rows.append((label, elapsed, f"{right}/{len(results)}"))
    n = len(problems)
    print(f"HumanEval, {n} problems, {args.parallel} at a time")
    print(f"{'':32} {'total s':>8} {'ms/sample':>10} {'x baseline':>11} {'as expected':>12}")
    for label, elapsed, right in rows:
        print(
            f"{label:32} {elapsed:8.2f} {1000 * elapsed / n:10.1f} "
            f"{elapsed / baseline:11.2f} {right:>12}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
