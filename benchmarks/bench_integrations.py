"""What the trainer adapters cost over calling the Scorer directly, and what caching saves.

    python benchmarks/bench_integrations.py            # 4,000 samples (40,000 for the cheap spec)
    python benchmarks/bench_integrations.py --quick    # 400 (4,000)

Two specs — math + think_format (the R1 recipe), and think_format alone (no worker pool, so
the rows show the adapters' own overhead) — over the same samples, rows measured in one run:

1. `Scorer.score` on the whole batch — the engine itself, the baseline.
2. TRL `reward_funcs(...)[0]` called as GRPOTrainer calls it (one batch, columns, metrics).
3. TRL per_reward mode: two functions, each scoring its own entry (what TRL then sums).
4. verl `compute_score_batch` (BatchRewardManager).
5. verl `compute_score` once per sample (NaiveRewardManager), Scorer cached per process.
6. verl-style per-sample calls that build a fresh Scorer every time (no cache; a handful of
   samples, reported per sample). For rule rewards this costs little — math shares one
   process-wide worker pool — the cache matters for judges, whose backends hold sessions.

Ratios are samples/s relative to row 1; the two cores are shared, so only ratios from one
run mean anything.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from rewardkit.integrations import verl
from rewardkit.integrations._common import close_scorers
from rewardkit.integrations.trl import reward_funcs
from rewardkit.scoring import Scorer
from rewardkit.spec import load_spec
from rewardkit.types import Sample

SPECS: dict[str, dict[str, Any]] = {
    "math + think_format": {
        "rewards": [{"reward": "math"}, {"reward": "think_format", "weight": 0.2}]
    },
    # a cheap rule with no worker pool: the rows then show the adapters' own overhead
    "think_format only": {"rewards": [{"reward": "think_format"}]},
}


def data(n: int) -> tuple[list[str], list[str], list[str]]:
    prompts = [f"What is {i} + {i}?" for i in range(n)]
    completions = [
        f"<think>{i} plus {i} is {2 * i}</think> The answer is \\boxed{{{2 * i + (i % 3 == 0)}}}."
        for i in range(n)
    ]
    answers = [str(2 * i) for i in range(n)]
    return prompts, completions, answers


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="400 samples instead of 4,000")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; best time kept")
    args = parser.parse_args()
    n = 400 if args.quick else 4000
    for title, spec_data in SPECS.items():
        # the cheap spec needs ten times the samples for timings well above the noise
        run(title, spec_data, n if "math" in title else 10 * n, args.rounds)


def run(title: str, spec_data: dict[str, Any], n: int, rounds: int) -> None:
    prompts, completions, answers = data(n)
    samples = [Sample(p, c, a) for p, c, a in zip(prompts, completions, answers, strict=True)]
    spec = load_spec(spec_data)

    scorer = Scorer(spec)
    scorer.score(samples[:50])  # warm: worker pools started, Math-Verify imported
    [combined] = reward_funcs(spec, reference_column="solution")
    per_reward = reward_funcs(spec, reference_column="solution", mode="per_reward")
    for func in (combined, *per_reward):
        func(prompts=prompts[:50], completions=completions[:50], solution=answers[:50])
    verl.compute_score_batch(["gsm8k"] * 50, completions[:50], answers[:50], None, spec=spec_data)

    metrics: list[float] = []
    k = 5

    def uncached() -> None:
        for c, a in zip(completions[:k], answers[:k], strict=True):
            with Scorer(spec) as fresh:
                fresh.score([Sample("", c, a, fields={"data_source": "gsm8k"})])

    cases: list[tuple[str, Callable[[], object], int]] = [
        ("Scorer.score, one batch (baseline)", lambda: scorer.score(samples), n),
        (
            "TRL combined function",
            lambda: combined(
                prompts=prompts,
                completions=completions,
                completion_ids=None,
                solution=answers,
                log_metric=lambda k, v: metrics.append(v),
            ),
            n,
        ),
        (
            "TRL per_reward (2 functions)",
            lambda: [
                f(prompts=prompts, completions=completions, solution=answers) for f in per_reward
            ],
            n,
        ),
        (
            "verl compute_score_batch",
            lambda: verl.compute_score_batch(
                ["gsm8k"] * n, completions, answers, None, spec=spec_data
            ),
            n,
        ),
        (
            "verl compute_score per sample (cached)",
            lambda: [
                verl.compute_score("gsm8k", c, a, None, spec=spec_data)
                for c, a in zip(completions, answers, strict=True)
            ],
            n,
        ),
        ("per sample, new Scorer each call", uncached, k),
    ]
    # Rounds interleave the rows and keep each row's best time: on shared cores a single
    # pass mostly measures who else was running.
    best = [float("inf")] * len(cases)
    for _ in range(rounds):
        for i, (_, fn, _) in enumerate(cases):
            best[i] = min(best[i], timed(fn))
    rows = [(name, best[i], count) for i, (name, _, count) in enumerate(cases)]
    scorer.close()
    close_scorers()

    base = rows[0][2] / rows[0][1]
    print(f"\n{n} samples, spec: {title}, best of {rounds} interleaved rounds\n")
    print(f"{'row':44} {'samples/s':>12} {'vs baseline':>12}")
    for name, seconds, count in rows:
        rate = count / seconds
        print(f"{name:44} {rate:12.1f} {rate / base:12.3f}")


if __name__ == "__main__":
    main()
