"""`rewardkit score` vs `rewardkit score --ray` on the math reward, on this machine.

    python benchmarks/bench_ray.py [--samples 2000] [--quick]

Rows, measured in this one run on the same synthetic GSM8K-style completions (half right,
half wrong, a few without a boxed answer):

* `rewardkit score --reward math` in a fresh process (the baseline);
* `rewardkit score --reward math --ray` in a fresh process: it starts a local Ray instance
  (what a one-off run on a laptop pays);
* the same `--ray` command with Ray already running (what a job submitted to a standing
  cluster pays: `ray job submit ... -- rewardkit score --ray`).

Every run's output must be byte-identical to the baseline's, or the benchmark fails. On one
small machine Ray can only add overhead (actor start-up, serialisation, scheduling): the
point of `--ray` is more machines, which this benchmark does not have.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rewardkit.cli.main import main as cli_main


def make_rows(n: int, seed: int = 0) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        answer = a * b
        said = answer if i % 2 == 0 else answer + rng.randint(1, 9)
        steps = f"We need {a} times {b}. {a} * {b} = {said}."
        tail = "" if i % 25 == 0 else f" The answer is \\boxed{{{said}}}."
        rows.append(
            {
                "id": f"q{i}",
                "prompt": f"What is {a} times {b}?",
                "response": f"<think>{steps}</think>{steps}{tail}",
                "reference": str(answer),
            }
        )
    return rows


def run_cli(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rewardkit.cli.main", *args],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="200 samples")
    opts = parser.parse_args()
    n = 200 if opts.quick else opts.samples
    import ray

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")]
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        src = folder / "samples.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in make_rows(n)), encoding="utf-8")
        common = ["score", str(src), "--reward", "math", "--no-progress"]

        local = folder / "local.jsonl"
        t_local = run_cli([*common, "-o", str(local)], env)
        cold = folder / "cold.jsonl"
        t_cold = run_cli([*common, "-o", str(cold), "--ray"], env)

        ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        warm = folder / "warm.jsonl"
        start = time.perf_counter()
        assert cli_main([*common, "-o", str(warm), "--ray"]) == 0
        t_warm = time.perf_counter() - start
        cpus = int(ray.cluster_resources().get("CPU", 0))
        ray.shutdown()

        for other in (cold, warm):
            if other.read_bytes() != local.read_bytes():
                raise SystemExit(f"{other.name} differs from the local output")

    print(f"math reward, {n} samples, {cpus} CPUs, outputs byte-identical\n")
    print("| run | seconds | samples/s | × local time |")
    print("|---|---|---|---|")
    for name, seconds in [
        ("`rewardkit score`", t_local),
        ("`rewardkit score --ray`, starts Ray", t_cold),
        ("`rewardkit score --ray`, Ray already up", t_warm),
    ]:
        print(f"| {name} | {seconds:.1f} | {n / seconds:.0f} | {seconds / t_local:.2f} |")


if __name__ == "__main__":
    main()
