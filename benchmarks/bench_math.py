"""Math reward throughput: raw Math-Verify vs MathReward with hard deadlines, and start methods.

    python benchmarks/bench_math.py            # all GSM8K test answers, best of 3
    python benchmarks/bench_math.py --quick    # 300 samples, one repeat

Samples are GSM8K test problems (../shared/data/gsm8k/test.jsonl beside the repo) with a
generated right response ("<worked solution> The answer is \\boxed{N}.") and a wrong one
(N+1), scored against the whole reference solution. Every row scores the same samples in
this one run; the ratio is throughput over raw Math-Verify (parse + verify, no timeouts, one
process = one core). Target: MathReward on one worker >= 0.8x raw per core. On a shared
machine wall-clock rates mostly measure the neighbours, so the table also gives CPU time
per sample (this process plus the reward's workers, from /proc) and the per-core ratio
from it. Every row runs in
freshly forked, equally warm processes, and rows are interleaved within each repeat: SymPy
caches what it has seen, so re-scoring the same samples in the same process would flatter
whichever row came second.

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


def raw_math_verify(samples: list[Sample]) -> tuple[float, float, list[bool]]:
    """What people write without a deadline: parse gold, parse response, verify. Returns
    (wall s, CPU s, verdicts), measured inside the process that runs it."""
    from math_verify import parse, verify

    start, cpu = time.perf_counter(), time.process_time()
    out = []
    for s in samples:
        gold = parse(s.reference, parsing_timeout=None)
        pred = parse(s.response, parsing_timeout=None)
        out.append(bool(verify(gold, pred, timeout_seconds=None)))
    return time.perf_counter() - start, time.process_time() - cpu, out


def fresh_reward(workers: int) -> MathReward:
    """A reward whose workers are freshly forked (warm from the fork server, but with no
    SymPy or gold cache from earlier rows), started before the clock runs."""
    reward = MathReward(workers=workers)
    reward.score_batch([Sample("", "The answer is \\boxed{3}", "3")] * workers)
    return reward


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; Linux /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def measure(reward: MathReward, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall s, CPU s of this process and the reward's workers, result) of `fn()`."""
    pids = reward._get_pool().worker_pids()
    before = sum(_cpu_of(pid) for pid in pids) + time.process_time()
    start = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    cpu = sum(_cpu_of(pid) for pid in pids) + time.process_time() - before
    return wall, cpu, result


def throughput_table(samples: list[Sample], repeats: int) -> None:
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    few = samples[: max(50, len(samples) // 4)]
    # The raw baseline runs in a worker forked from the same warm fork server, so it
    # starts from the same imports, warm-up and empty caches as MathReward's workers.
    # It must be importable there: this file's directory is on sys.path, as `bench_math`.
    import bench_math

    names = [
        "raw Math-Verify, 1 process (1 core)",
        "MathReward.score_batch, 1 worker",
        "MathReward.score one by one, 1 worker",
        f"MathReward.score_batch, {cores} workers",
    ]
    sizes = [len(samples), len(samples), len(few), len(samples)]
    wall, cpu = [float("inf")] * 4, [float("inf")] * 4
    verdicts: list[list[bool]] = [[], [], [], []]

    def keep(row: int, w: float, c: float) -> None:
        wall[row], cpu[row] = min(wall[row], w), min(cpu[row], c)

    for _ in range(repeats):  # rows interleaved, so load drift hits all of them alike
        with DeadlinePool(1, preload=_PRELOAD) as pool:
            pool.run(abs, 1, timeout=None)
            w, c, verdicts[0] = pool.run(bench_math.raw_math_verify, samples, timeout=None)
        keep(0, w, c)
        for row, workers, batch in ((1, 1, True), (2, 1, False), (3, cores, True)):
            reward = fresh_reward(workers)
            if batch:
                w, c, res = measure(reward, lambda: reward.score_batch(samples))  # noqa: B023
                verdicts[row] = [r.value == 1.0 for r in res]
            else:
                w, c, _ = measure(reward, lambda: [reward.score(s) for s in few])  # noqa: B023
            keep(row, w, c)
            reward.close()

    reward = fresh_reward(cores)
    towers = [Sample("", TOWER, "18")] * max(1, len(samples) // 100)
    mixed = samples + towers
    start = time.perf_counter()
    res = reward.score_batch(mixed)
    t_mixed = time.perf_counter() - start
    reward.close()
    timeouts = sum(isinstance(r, Score) and r.reason == "timeout" for r in res)

    raw_rate, raw_cpu = sizes[0] / wall[0], cpu[0] / sizes[0]
    print(f"\nGSM8K, {len(samples)} samples (right + wrong answer per problem), best of {repeats}")
    print(
        f"{'mode':56} {'samples':>7} {'wall s':>7} {'samples/s':>9} {'vs raw':>7}"
        f" {'CPU ms/sample':>13} {'per core vs raw':>15}"
    )
    for name, n, w, c in zip(names, sizes, wall, cpu, strict=True):
        per = c / n
        print(
            f"{name:56} {n:>7} {w:>7.2f} {n / w:>9.1f} {n / w / raw_rate:>6.2f}x"
            f" {1000 * per:>13.2f} {raw_cpu / per:>14.2f}x"
        )
    name = f"  same + {len(towers)} power towers (1 s deadline), {cores} workers"
    n = len(mixed)
    print(f"{name:56} {n:>7} {t_mixed:>7.2f} {n / t_mixed:>9.1f} {n / t_mixed / raw_rate:>6.2f}x")
    expected = [i % 2 == 0 for i in range(len(samples))]
    raw_right = sum(a == b for a, b in zip(verdicts[0], expected, strict=True))
    ours_right = sum(a == b for a, b in zip(verdicts[1], expected, strict=True))
    print(
        f"\nCPU ms/sample counts this process and the workers; 'per core vs raw' is raw's CPU per"
        f" sample over the row's.\ncorrect verdicts: MathReward {ours_right}/{len(samples)}, raw"
        f" Math-Verify {raw_right}/{len(samples)}. Power towers timed out: {timeouts}/{len(towers)}."
    )


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
    print(
        f"\nStart methods, each in a fresh process (1 worker, math preload + warm-up; best of {repeats})"
    )
    print(f"{'start method':14} {'first result (s)':>17} {'next call after a kill (s)':>28}")
    for method in ("forkserver", "fork", "spawn"):
        runs = []
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, __file__, "--probe-start-method", method],
                capture_output=True,
                text=True,
                check=True,
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
