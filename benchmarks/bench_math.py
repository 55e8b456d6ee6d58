"""Math reward throughput: raw Math-Verify vs MathReward with hard deadlines, and start methods.

    python benchmarks/bench_math.py            # all GSM8K test answers, best of 3
    python benchmarks/bench_math.py --quick    # 300 samples, one repeat

Samples are GSM8K test problems (../shared/data/gsm8k/test.jsonl beside the repo) with a
generated right response ("<worked solution> The answer is \\boxed{N}.") and a wrong one
(N+1), scored against the whole reference solution. Every row scores the same samples in
this one run; the ratio is throughput over raw Math-Verify (parse + verify, no timeouts, one
process = one core). Target: MathReward on one worker >= 0.8x raw.

The start-method table times a fresh pool's first result (boot + warm-up) and the next
call after a deadline killed its only worker (the replacement's cost).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rewardkit import Sample, Score
from rewardkit.deadline import DeadlineExceeded, DeadlinePool
from rewardkit.rules.math import _PRELOAD, MathReward

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "gsm8k" / "test.jsonl"
TOWER = r"The answer is $9^{9^{9^{9^{9}}}}$"


def load_samples(path: Path, limit: int | None) -> list[Sample]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    samples = []
    for row in rows[:limit]:
        reasoning, answer = row["answer"].rsplit("####", 1)
        answer = answer.strip()
        reasoning = re.sub(r"<<[^>]*>>", "", reasoning).strip()  # calculator annotations
        wrong = int(answer.replace(",", "")) + 1
        for n in (answer, wrong):
            response = f"{reasoning}\nThe answer is \\boxed{{{n}}}."
            samples.append(Sample(row["question"], response, row["answer"]))
    return samples


def raw_math_verify(samples: list[Sample]) -> list[bool]:
    """What people write without a deadline: parse gold, parse response, verify."""
    from math_verify import parse, verify

    out = []
    for s in samples:
        gold = parse(s.reference, parsing_timeout=None)
        pred = parse(s.response, parsing_timeout=None)
        out.append(bool(verify(gold, pred, timeout_seconds=None)))
    return out


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def throughput_table(samples: list[Sample], repeats: int) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    one, allc = MathReward(workers=1), MathReward(workers=cores)
    warm = samples[:20]
    raw_math_verify(warm)
    one.score_batch(warm)
    allc.score_batch(warm)

    rows: list[tuple[str, int, float, Any]] = []
    t, raw = best_of(repeats, lambda: raw_math_verify(samples))
    rows.append(("raw Math-Verify, 1 process (1 core)", len(samples), t, raw))
    t, res = best_of(repeats, lambda: one.score_batch(samples))
    rows.append(("MathReward.score_batch, 1 worker", len(samples), t, [r.value == 1.0 for r in res]))
    few = samples[: max(50, len(samples) // 4)]
    t, res = best_of(repeats, lambda: [one.score(s) for s in few])
    rows.append(("MathReward.score one by one, 1 worker", len(few), t, None))
    t, res = best_of(repeats, lambda: allc.score_batch(samples))
    rows.append((f"MathReward.score_batch, {cores} workers", len(samples), t, [r.value == 1.0 for r in res]))
    towers = [Sample("", TOWER, "18")] * max(1, len(samples) // 100)
    mixed = samples + towers
    t, res = best_of(1, lambda: allc.score_batch(mixed))
    timeouts = sum(isinstance(r, Score) and r.reason == "timeout" for r in res)
    rows.append((f"  same + {len(towers)} power towers (1 s deadline), {cores} workers", len(mixed), t, None))

    raw_rate = rows[0][1] / rows[0][2]
    print(f"\nGSM8K, {len(samples)} samples (right + wrong answer per problem), best of {repeats}")
    print(f"{'mode':58} {'samples':>8} {'seconds':>8} {'samples/s':>10} {'vs raw/core':>12}")
    for name, n, seconds, _ in rows:
        rate = n / seconds
        print(f"{name:58} {n:>8} {seconds:>8.2f} {rate:>10.1f} {rate / raw_rate:>11.2f}x")
    agree = sum(a == b for a, b in zip(rows[0][3], rows[1][3], strict=True))
    expected = [i % 2 == 0 for i in range(len(samples))]
    ours_right = sum(a == b for a, b in zip(rows[1][3], expected, strict=True))
    raw_right = sum(a == b for a, b in zip(rows[0][3], expected, strict=True))
    print(
        f"\ncorrect verdicts: MathReward {ours_right}/{len(samples)}, raw {raw_right}/{len(samples)}; "
        f"they agree on {agree}. Power towers timed out: {timeouts}/{len(towers)}."
    )
    one.close()
    allc.close()


def probe_start_method(method: str) -> dict[str, float]:
    """In a fresh process: a cold pool's first result, then the call after a kill."""
    from rewardkit.rules.math import _score_item

    probe = ("The answer is \\boxed{18}", "18")
    pool = DeadlinePool(1, start_method=method, preload=_PRELOAD)  # type: ignore[arg-type]
    start = time.perf_counter()
    pool.run(_score_item, probe, timeout=60)
    first = time.perf_counter() - start
    with contextlib.suppress(DeadlineExceeded):
        pool.run(time.sleep, 10, timeout=0.1)
    start = time.perf_counter()
    pool.run(_score_item, probe, timeout=60)
    after = time.perf_counter() - start
    pool.close()
    return {"first": first, "after_kill": after}


def start_method_table(repeats: int) -> None:
    print(f"\nStart methods, each in a fresh process (1 worker, math preload + warm-up; best of {repeats})")
    print(f"{'start method':14} {'first result (s)':>17} {'next call after a kill (s)':>28}")
    for method in ("forkserver", "fork", "spawn"):
        runs = []
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, __file__, "--probe-start-method", method],
                capture_output=True, text=True, check=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        first = min(r["first"] for r in runs)
        after = min(r["after_kill"] for r in runs)
        print(f"{method:14} {first:>17.3f} {after:>28.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 samples, one repeat")
    parser.add_argument("--data", type=Path, default=DATA, help="GSM8K test.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="number of GSM8K problems")
    parser.add_argument("--probe-start-method", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_start_method:
        print(json.dumps(probe_start_method(args.probe_start_method)))
        return 0
    if not args.data.exists():
        print(f"no GSM8K data at {args.data}; pass --data PATH", file=sys.stderr)
        return 2
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # raw mode's "timeout disabled"
    limit = args.limit or (150 if args.quick else None)
    repeats = 1 if args.quick else 3
    throughput_table(load_samples(args.data, limit), repeats)
    start_method_table(1 if args.quick else 2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
