"""Sandbox overhead per execution against a bare `subprocess.run` of the same program.

    python benchmarks/bench_sandbox.py [--quick] [--runs N]

Both sides run the same interpreter with the same flags in the same process, alternating,
so machine load hits both alike; the table prints medians and the ratio sandbox/bare.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rewardkit.rules.code import CodeReward
from rewardkit.sandbox import SandboxLimits, isolation_report, run_code
from rewardkit.types import Sample

PROGRAMS = {
    "print(1)": ("print(1)", ""),
    "stdin->stdout": (
        "import sys\nnums = [int(x) for x in sys.stdin.read().split()]\nprint(sum(nums), max(nums))\n",
        " ".join(str(i) for i in range(2000)) + "\n",
    ),
    "bash echo": ("echo hello", ""),
}
LANGUAGE = {"print(1)": "python", "stdin->stdout": "python", "bash echo": "bash"}


def bare(source: str, stdin: str, language: str, workdir: Path) -> float:
    if language == "python":
        path = workdir / "main.py"
        argv = [sys.executable, "-I", "-B", str(path)]
    else:
        path = workdir / "main.sh"
        argv = ["bash", str(path)]
    path.write_text(source)
    t = time.perf_counter()
    subprocess.run(argv, input=stdin.encode(), capture_output=True, check=True, timeout=30)
    return time.perf_counter() - t


def sandboxed(source: str, stdin: str, language: str, limits: SandboxLimits) -> tuple[float, float]:
    """Wall time of `run_code`, and the part the handler spent on namespaces/mounts/init."""
    t = time.perf_counter()
    result = run_code(source, language=language, stdin=stdin, limits=limits)
    elapsed = time.perf_counter() - t
    if not result.ok:
        raise SystemExit(f"sandboxed run failed: {result}")
    return elapsed, float(result.details.get("setup_seconds") or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 runs per program")
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    runs = 10 if args.quick else args.runs
    report = isolation_report()
    print(f"isolation layers: {', '.join(report.layers)}; runs per cell: {runs}")
    limits = SandboxLimits(wall_seconds=30, cpu_seconds=30)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (source, stdin) in PROGRAMS.items():
            language = LANGUAGE[name]
            bare(source, stdin, language, Path(tmp))  # warm both paths
            sandboxed(source, stdin, language, limits)
            b, s, setup = [], [], []
            for _ in range(runs):
                b.append(bare(source, stdin, language, Path(tmp)))
                elapsed, set_up = sandboxed(source, stdin, language, limits)
                s.append(elapsed)
                setup.append(set_up)
            mb, ms = statistics.median(b), statistics.median(s)
            rows.append(
                (
                    name,
                    mb * 1000,
                    ms * 1000,
                    (ms - mb) * 1000,
                    statistics.median(setup) * 1000,
                    ms / mb,
                )
            )
    print(
        f"{'program':<16}{'bare ms':>10}{'sandbox ms':>12}{'overhead ms':>13}{'of it setup':>13}{'ratio':>8}"
    )
    for name, mb, ms, over, set_up, ratio in rows:
        print(f"{name:<16}{mb:>10.1f}{ms:>12.1f}{over:>13.1f}{set_up:>13.1f}{ratio:>7.2f}x")

    batch(8 if args.quick else 32)


def batch(n: int) -> None:
    """CodeReward.score_batch: one program at a time against the default pool, same samples."""
    tests = {"tests": [{"input": f"{i} {i + 1}\n", "output": f"{2 * i + 1}\n"} for i in range(3)]}
    response = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    samples = [Sample("p", response, tests) for _ in range(n)]
    serial, pooled = CodeReward(max_parallel=1), CodeReward()
    serial.score_batch(samples[:2])  # warm the supervisor
    t = time.perf_counter()
    results = serial.score_batch(samples)
    one = time.perf_counter() - t
    t = time.perf_counter()
    results += pooled.score_batch(samples)
    many = time.perf_counter() - t
    assert all(getattr(r, "value", None) == 1.0 for r in results), results[:2]
    print(f"\nscore_batch of {n} samples x 3 stdin tests")
    print(f"{'max_parallel':<16}{'seconds':>10}{'runs/s':>10}{'speedup':>9}")
    for label, secs in (("1", one), (str(pooled.max_parallel), many)):
        print(f"{label:<16}{secs:>10.2f}{3 * n / secs:>10.1f}{one / secs:>8.2f}x")


if __name__ == "__main__":
    main()
