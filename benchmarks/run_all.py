"""Run every rewardkit benchmark, one after another, and print each one's table.

    python benchmarks/run_all.py            # full runs
    python benchmarks/run_all.py --quick    # a fast pass (smaller inputs)
    python benchmarks/run_all.py math sandbox   # only these (names without bench_)

Each benchmark measures its ratios side by side in one run; they run one at a time so
they do not compete for the CPU with each other.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "only",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default all): {', '.join(names)}",
    )
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a fast pass")
    args = parser.parse_args()
    unknown = sorted(set(args.only) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    failed = []
    for name in args.only or names:
        command = [
            sys.executable,
            str(HERE / f"bench_{name}.py"),
            *(["--quick"] if args.quick else []),
        ]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
