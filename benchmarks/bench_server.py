"""Reward service throughput and latency vs calling the same reward in-process.

A load generator on loopback runs C concurrent clients, each sending R requests of S
samples (GSM8K-like generated problems, half right, half wrong), against a real
`rewardkit serve` subprocess, on both endpoints; the baseline runs the same batches through
`Scorer.ascore` in-process with the same concurrency. One run, one table:

    python benchmarks/bench_server.py            # 16 clients x 20 requests x 32 samples
    python benchmarks/bench_server.py --quick    # 8 clients x 5 requests x 32 samples

Overhead per sample = 1/server_rate - 1/in_process_rate at the same concurrency (HTTP, JSON,
validation, batching); ratios are given against both in-process rows.
One in-process row scores the batches one at a time, as a trainer scoring its own batches
would; the other uses the clients' concurrency. The
load generator shares the machine's cores with the server, so on a small box the server
rows also pay for the clients. Each row is the best of `--rounds` interleaved runs, after a
warm-up that boots the reward's worker pool.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from rewardkit.scoring import Scorer
from rewardkit.types import Sample

NAMES = ["Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana"]
ITEMS = ["apples", "marbles", "stickers", "books", "coins", "pencils"]
CHATML = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"


def make_samples(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """GSM8K-like problems with a worked response; every other response is off by one."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        a, b, c = rng.randint(2, 500), rng.randint(2, 500), rng.randint(2, 9)
        answer = (a + b) * c
        question = (
            f"{name} has {a} {item} and gets {b} more. Then {name} multiplies the pile "
            f"{c} times over. How many {item} does {name} have?"
        )
        given = answer if i % 2 == 0 else answer + 1
        response = (
            f"<think>{name} starts with {a} and gets {b}, so {a} + {b} = {a + b}. "
            f"Multiplying by {c} gives {a + b} * {c} = {given}.</think>\n"
            f"{name} has {a + b} {item} before multiplying, so the total is "
            f"{a + b} \\times {c} = {given:,}. The answer is \\boxed{{{given}}}."
        )
        rows.append({"prompt": question, "response": response, "reference": f"#### {answer}"})
    return rows


@dataclass
class Result:
    name: str
    samples: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.samples / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run_clients(
    clients: int, requests: int, batches: list[Any], call: Any, max_seconds: float
) -> tuple[int, float, list[float]]:
    """`clients` workers each make up to `requests` calls; returns samples, wall time, latencies."""
    latencies: list[float] = []
    done = 0
    stop_at = time.perf_counter() + max_seconds

    async def worker(w: int) -> None:
        nonlocal done
        for r in range(requests):
            if time.perf_counter() > stop_at:
                return
            batch = batches[(w * requests + r) % len(batches)]
            start = time.perf_counter()
            scored = await call(batch)  # not `done += await ...`: that reads `done` before awaiting
            done += scored
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    return done, time.perf_counter() - start, latencies


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_ready(
    session: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode}")
        try:
            async with session.get(f"{base}/health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("server did not start within 60 s")


async def bench_server(
    args: argparse.Namespace, rows: list[dict[str, Any]], window_ms: float
) -> list[Result]:
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "rewardkit.cli.main",
        "serve",
        "--reward",
        args.reward,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--batch-window-ms",
        str(window_ms),
        "--max-inflight",
        str(args.max_inflight),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        connector = aiohttp.TCPConnector(limit=args.clients * 2)
        async with aiohttp.ClientSession(connector=connector) as session:
            await _wait_ready(session, base, proc)
            batches = [rows[i : i + args.samples] for i in range(0, len(rows), args.samples)]
            native = [{"samples": b} for b in batches]
            openrlhf = [
                {
                    "query": [
                        CHATML.format(q=r["prompt"]) + r["response"] + "<|im_end|>" for r in b
                    ],
                    "prompts": [CHATML.format(q=r["prompt"]) for r in b],
                    "labels": [r["reference"] for r in b],
                }
                for b in batches
            ]

            async def post(path: str, body: dict[str, Any]) -> int:
                async with session.post(base + path, json=body) as resp:
                    data = await resp.json()
                    if resp.status != 200:
                        raise SystemExit(f"{path}: HTTP {resp.status}: {data}")
                    return len(data["rewards"] if "rewards" in data else data["results"])

            phases = (("/get_reward", openrlhf), ("/v1/rewards", native))
            for path, bodies in phases:  # warm-up: the reward's worker pool boots on first use
                await run_clients(args.clients, 2, bodies, lambda b, p=path: post(p, b), 30)
            best: dict[str, Result] = {}
            for _ in range(args.rounds):  # interleaved rounds, best kept: a shared box is noisy
                for path, bodies in phases:
                    n, secs, lat = await run_clients(
                        args.clients,
                        args.requests,
                        bodies,
                        lambda b, p=path: post(p, b),
                        args.max_seconds,
                    )
                    result = Result(f"server {path} (window {window_ms:g} ms)", n, secs, lat)
                    if path not in best or result.rate > best[path].rate:
                        best[path] = result
            results = list(best.values())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return results


async def bench_in_process(args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[Result]:
    samples = [Sample(r["prompt"], r["response"], r["reference"]) for r in rows]
    batches = [samples[i : i + args.samples] for i in range(0, len(samples), args.samples)]
    with Scorer.for_reward(args.reward) as scorer:

        async def call(batch: list[Sample]) -> int:
            return len(await scorer.ascore(batch))

        await run_clients(args.clients, 2, batches, call, 30)  # warm-up: worker pools start
        sequential: Result | None = None
        concurrent: Result | None = None
        for _ in range(args.rounds):
            # The baseline: what a trainer does when it scores its own batches, one at a time.
            n, secs, lat = await run_clients(
                1, args.clients * args.requests, batches, call, args.max_seconds
            )
            result = Result("in-process, one batch at a time", n, secs, lat)
            if sequential is None or result.rate > sequential.rate:
                sequential = result
            n, secs, lat = await run_clients(
                args.clients, args.requests, batches, call, args.max_seconds
            )
            result = Result(f"in-process, {args.clients} concurrent", n, secs, lat)
            if concurrent is None or result.rate > concurrent.rate:
                concurrent = result
    assert sequential is not None and concurrent is not None
    return [sequential, concurrent]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short run (CI smoke)")
    parser.add_argument("--reward", default="math", help="reward to serve (default: math)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=20, help="requests per client")
    parser.add_argument("--samples", type=int, default=32, help="samples per request")
    parser.add_argument(
        "--rounds", type=int, default=2, help="interleaved rounds; the best is kept"
    )
    parser.add_argument("--max-inflight", type=int, default=4, help="server's --max-inflight")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time bound per phase")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.requests, args.max_seconds, args.rounds = 8, 5, 20.0, 1
    rows = make_samples(args.clients * args.requests * args.samples)

    async def everything() -> list[Result]:
        results = await bench_in_process(args, rows)
        results += await bench_server(args, rows, window_ms=5.0)
        if not args.quick:
            results += await bench_server(args, rows, window_ms=0.0)
        return results

    results = asyncio.run(everything())
    sequential, concurrent = results[0], results[1]
    print(
        f"\nreward={args.reward}  clients={args.clients}  requests/client={args.requests}  "
        f"samples/request={args.samples}  cpus={os.cpu_count()}"
    )
    header = (
        f"{'mode':<38} {'samples/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'overhead µs/sample':>19} {'x 1-at-a-time':>14} {'x concurrent':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        # Overhead against the in-process run with the same concurrency: what HTTP costs.
        same = sequential if r is sequential else concurrent
        overhead = (1 / r.rate - 1 / same.rate) * 1e6
        print(
            f"{r.name:<38} {r.rate:>10.0f} {r.pct(0.5):>8.1f} {r.pct(0.99):>8.1f} "
            f"{overhead:>19.0f} {r.rate / sequential.rate:>14.2f} {r.rate / concurrent.rate:>13.2f}"
        )
    print(
        f"latency is per request of {args.samples} samples (per Scorer.ascore call in-process); "
        "overhead = 1/rate - 1/rate of in-process at the same concurrency"
    )


if __name__ == "__main__":
    main()
