"""What each part of `rewardkit judge` costs the client, measured by taking it out.

    python benchmarks/bench_judge_parts.py             # 20,000 queries, 2 rounds
    python benchmarks/bench_judge_parts.py --quick     # 2,000 queries, 1 round

The judge pipeline (`pipelines.judge_file`, in process: no interpreter start) runs against
the fake OpenAI server (no delay, its own process), once as shipped and once per row with
one part replaced by a stand-in that does nothing: the verdict parser returns a fixed
verdict, the cache is off, the output dicts are cut to two keys, the per-request hashes (the
fence nonce of the prompt, the sample seed, the seeded `Random` that draws display orders)
return constants. The difference in client CPU per query is what that part costs *inside the
running pipeline*, where every part runs with caches the others have just evicted: a part
costs there several times what it costs in a tight loop (compare `bench_parsing.py`). Each
variant runs in a fresh process, the rounds interleave the variants, and the table keeps each
variant's lowest CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_judge_client import write_input

from rewardkit.testing.fake_openai import FakeOpenAIProcess

VARIANTS = {
    "as shipped (cache on)": "",
    "no cache": "nocache",
    "parser stubbed": "parse",
    "output dicts stubbed": "todict",
    "nonces stubbed": "nonce",
    "all four stubbed": "nocache,parse,todict,nonce",
}

# Run in a child process: the stand-ins patch modules, which must not leak between rows.
_CHILD = r"""
import json, resource, sys
from pathlib import Path
import aiohttp  # imported before the clock starts, as the raw loop's is
import rewardkit.judges.data as data
import rewardkit.judges.grm as grm
from rewardkit.judges.parsing import ParsedJudgment
from rewardkit.pipelines.judge_file import JudgeOptions, judge_file

parts, url, source, out = sys.argv[1].split(","), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
if "parse" in parts:
    fixed = ParsedJudgment((7, 3), None, None, "principles", "critique", ((0, 1), (3, 4)))
    grm.parse_judgment = lambda text, n, responses=(), nonce=None: fixed
if "todict" in parts:
    data.JudgeResult.to_dict = lambda self: {"id": self.id, "error": self.error}
if "nonce" in parts:  # the fence and seed hashes, and the seeded Random for display orders
    import random, types
    shared = random.Random(0)
    grm.make_nonce = lambda *parts: "0123456789ab"
    grm.random = types.SimpleNamespace(Random=lambda seed: shared)
cache = None if "nocache" in parts else out.with_suffix(".cache.sqlite")
options = JudgeOptions(input=source, output=out, model="fake-judge", base_url=(url,),
                       cache=cache, progress=False)
before = resource.getrusage(resource.RUSAGE_SELF)
summary = judge_file(options)
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
print(json.dumps({"cpu": cpu, "seconds": summary.seconds, "judged": summary.judged,
                  "errors": summary.errors}))
"""


def run_variant(parts: str, url: str, source: Path, out: Path) -> dict[str, float]:
    out.unlink(missing_ok=True)
    out.with_suffix(".cache.sqlite").unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, parts, url, str(source), str(out)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"variant {parts!r} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["errors"]:
        raise SystemExit(f"variant {parts!r}: {result['errors']} queries had errors")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2,000 queries, one round")
    parser.add_argument("--rounds", type=int, help="rounds (default 2, 1 with --quick)")
    args = parser.parse_args()
    n = 2_000 if args.quick else 20_000
    rounds = args.rounds or (1 if args.quick else 2)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-parts-") as tmp, FakeOpenAIProcess() as server:
        source = Path(tmp) / "in.jsonl"
        write_input(source, n)
        for index in range(rounds):
            for name, parts in VARIANTS.items():
                print(f"round {index + 1}: {name} ...", file=sys.stderr, flush=True)
                result = run_variant(parts, server.base_url, source, Path(tmp) / "out.jsonl")
                assert result["judged"] == n
                us = result["cpu"] / n * 1e6
                best[name] = min(best.get(name, us), us)
    shipped = best["as shipped (cache on)"]
    print(f"\n{n} queries, in process, fake server without delay; lowest of {rounds} round(s)")
    print(f"{'judge pipeline':<26} {'client CPU us/q':>16} {'part costs us/q':>16}")
    for name, us in best.items():
        saved = "" if name == "as shipped (cache on)" else f"{shipped - us:16.0f}"
        print(f"{name:<26} {us:>16.0f} {saved:>16}")


if __name__ == "__main__":
    main()
