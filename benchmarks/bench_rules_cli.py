"""Throughput of the format, language and length rules, and of `rewardkit score` around them.

    python benchmarks/bench_rules_cli.py [--quick]

Rows, all measured in this one run on the same synthetic responses:

* each rule's `score_batch`, per sample, with its ratio to `think_format` (the cheapest);
* language consistency on short (~60 words) vs long (~2,000 words) chains of thought;
* `rewardkit score` end to end (read JSONL, score, write JSONL with fsync per chunk) vs
  `Scorer.score` on the same samples already in memory: the CLI's own overhead.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rewardkit.cli.main import main as cli_main
from rewardkit.registry import build_reward
from rewardkit.scoring import Scorer
from rewardkit.types import Sample

EN = "Let me think about this step by step. Each box holds twelve eggs so three boxes hold".split()  # noqa: SIM905
ZH = list("所以我们先计算每盒的鸡蛋数量然后乘以盒子的数量")
FR = "Donc la réponse est la somme des deux nombres que nous avons trouvés".split()  # noqa: SIM905
MATH = ["$x^2 + 3x = 10$", "12 * 3 = 36", "\\frac{1}{2}", "total_eggs"]


def make_response(rng: random.Random, words: int) -> str:
    parts: list[str] = []
    while len(parts) < words:
        pick = rng.random()
        if pick < 0.7:
            parts.extend([*EN[: rng.randint(4, len(EN))], "."])
        elif pick < 0.8:
            parts.append("".join(ZH[: rng.randint(4, len(ZH))]) + "。")
        elif pick < 0.9:
            parts.extend([*FR[: rng.randint(4, len(FR))], "."])
        else:
            parts.append(rng.choice(MATH))
    return "<think>\n" + " ".join(parts) + "\n</think>\nThe answer is \\boxed{36}."


def per_sample(fn: Callable[[], object], n: int, repeat: int) -> float:
    """Best-of-`repeat` seconds per sample, after one untimed warm-up run."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, one repeat")
    args = parser.parse_args()
    n = 300 if args.quick else 3000
    repeat = 1 if args.quick else 3
    rng = random.Random(0)
    short = [
        Sample(prompt="How many eggs?", response=make_response(rng, 60), id=str(i))
        for i in range(n)
    ]
    long_n = max(n // 20, 10)
    long = [
        Sample(prompt="How many eggs?", response=make_response(rng, 2000), id=str(i))
        for i in range(long_n)
    ]

    rewards = {
        "think_format": build_reward("think_format"),
        "summary_format": build_reward("summary_format"),
        "overlong_penalty (chars)": build_reward(
            "overlong_penalty", max_length=4000, buffer_length=1000
        ),
        "repetition_penalty (3-gram)": build_reward("repetition_penalty"),
        "language_consistency (en)": build_reward("language_consistency", target="en"),
        "language_consistency (from prompt)": build_reward("language_consistency"),
    }
    rows: list[tuple[str, float]] = []
    for name, reward in rewards.items():
        rows.append(
            (f"{name}, ~60 words", per_sample(lambda r=reward: r.score_batch(short), n, repeat))
        )
    lang = rewards["language_consistency (en)"]
    rows.append(
        (
            "language_consistency (en), ~2000 words",
            per_sample(lambda: lang.score_batch(long), long_n, repeat),
        )
    )

    # The CLI end to end vs the engine alone, same samples and reward.
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.jsonl"
        src.write_text(
            "".join(
                json.dumps({"id": s.id, "prompt": s.prompt, "response": s.response}) + "\n"
                for s in short
            ),
            encoding="utf-8",
        )
        spec = {
            "rewards": [
                {"reward": "language_consistency", "args": {"target": "en"}},
                {"reward": "think_format"},
            ]
        }
        with Scorer(spec) as scorer:
            engine = per_sample(lambda: scorer.score(short), n, repeat)
        runs = itertools.count()

        def run_cli() -> None:
            out = Path(tmp) / f"out{next(runs)}.jsonl"  # a fresh output: no resume skipping
            spec_path = Path(tmp) / "spec.json"
            spec_path.write_text(json.dumps(spec), encoding="utf-8")
            stderr, sys.stderr = sys.stderr, open(Path(tmp) / "stderr.txt", "w")  # noqa: SIM115
            try:
                assert (
                    cli_main(
                        [
                            "score",
                            str(src),
                            "-o",
                            str(out),
                            "--spec",
                            str(spec_path),
                            "--no-progress",
                        ]
                    )
                    == 0
                )
            finally:
                sys.stderr.close()
                sys.stderr = stderr

        cli = per_sample(run_cli, n, repeat)
    rows.append(("Scorer.score (language + format), in memory", engine))
    rows.append(("rewardkit score (same spec), JSONL in and out", cli))

    base = rows[0][1]
    print(f"samples: {n} short, {long_n} long; best of {repeat}")
    print(f"{'what':<52} {'us/sample':>10} {'samples/s':>11} {'x think_format':>15}")
    for name, seconds in rows:
        print(f"{name:<52} {seconds * 1e6:>10.1f} {1 / seconds:>11.0f} {seconds / base:>15.1f}")
    print(f"\nCLI overhead over the engine: {cli / engine:.2f}x")


if __name__ == "__main__":
    main()
