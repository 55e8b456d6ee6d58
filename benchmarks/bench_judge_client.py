"""Client overhead of `rewardkit judge` against the practical limit of a raw aiohttp loop.

    python benchmarks/bench_judge_client.py                # 20,000 queries at concurrency 64
    python benchmarks/bench_judge_client.py --rounds 3     # the same rows three times, interleaved
    python benchmarks/bench_judge_client.py --quick        # 2,000
    python benchmarks/bench_judge_client.py --delay 0.02   # a judge that takes 20 ms per answer

The fake OpenAI server (no delay unless `--delay`) runs in its own process on loopback, so
every row measures how fast a client can push the same judge requests through it:

1. a raw aiohttp loop: the same request bodies, semaphore 64, one session, JSON in and out
   (the practical limit for a Python client).
2. `rewardkit judge` end to end as a subprocess: process start, input parsing, prompt
   rendering, cache lookups and writes, parsing, voting, output writes, progress bar.
3. the same with `--no-cache`, to show what the SQLite cache costs.
4. `HTTPBackend.generate` alone, in process (aiohttp underneath, like the raw loop).
5. the least a judge client can do, in process (`_least_judge.py`): the raw loop plus
   reading each input line, rendering and fencing the prompt, parsing the verdict and
   writing an output line (no cache, retries, voting or progress bar).
6. the same as a CLI of its own, with the least a cache can do (a key set in memory, rows
   appended in batches): the cheapest judge CLI with a cache on aiohttp, so its ratio bounds
   what `rewardkit judge` could reach on this machine.
7. with `--openai`: a bare `openai.AsyncOpenAI` loop with the same requests and semaphore
   (slow: minutes at 20,000).

It also measures the cache on its own: 64 tasks doing lookup + store per request, with the
cache's batched commits versus a commit per store on the event loop, and the longest
the loop was stalled in each case.

The machine's cores are shared with the fake server (and whatever else runs), so only the
ratios measured side by side mean anything; `--rounds N` runs every row N times in turn and
prints each round's ratios, so a burst of load elsewhere shows up as one odd round rather
than one odd row. The CPU columns are the client's own CPU time per query (the rewardkit rows
include process start) and the fake server's, read from /proc: on a machine with two cores,
client + server CPU per query is what bounds every row's throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _least_judge import least_judge

from rewardkit.backends.base import Completion, GenerateRequest
from rewardkit.backends.http import HTTPBackend
from rewardkit.backends.mock import MockBackend
from rewardkit.judges import JudgeConfig, JudgeQuery, PointwiseJudge
from rewardkit.store import JudgeCache, request_digest, sample_key
from rewardkit.testing.fake_openai import FakeOpenAIProcess, spct_text

MODEL = "fake-judge"


def write_input(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            record = {
                "id": f"q{i}",
                "prompt": f"question-{i}: Natalia sold clips to {i} friends in April, and half as "
                "many in May. How many clips did she sell altogether in April and May?",
                "responses": [
                    f"In May she sold {i}/2 clips, so {i} + {i}/2 in total. The answer is {i * 3 // 2}.",
                    f"She sold {i} clips in April and {i} in May: {2 * i}.",
                ],
                "source": "bench",
            }
            handle.write(json.dumps(record) + "\n")


async def judge_requests(path: Path) -> list[GenerateRequest]:
    """The exact requests `rewardkit judge` sends for this input (captured with a mock)."""
    mock = MockBackend(lambda request, index: spct_text([7, 3]), model=MODEL)
    judge = PointwiseJudge(mock, JudgeConfig())
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            await judge.judge(
                JudgeQuery(record["prompt"], tuple(record["responses"]), id=record["id"])
            )
    return mock.requests


def timed_run(cmd: list[str], name: str) -> float:
    """Seconds `cmd` took as a process of its own; exits with its stderr when it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def run_cli(input_path: Path, out: Path, base_url: str, concurrency: int, *extra: str) -> float:
    out.unlink(missing_ok=True)  # every round starts from nothing: no resume, a cold cache
    Path(f"{out}.cache.sqlite").unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "rewardkit.cli.main",
        "judge",
        str(input_path),
        "-o",
        str(out),
        "--base-url",
        base_url,
        "--model",
        MODEL,
        "--concurrency",
        str(concurrency),
        *extra,
    ]
    elapsed = timed_run(cmd, "rewardkit judge")
    lines = out.read_text(encoding="utf-8").splitlines()
    errors = sum(json.loads(line)["error"] is not None for line in lines)
    expected = sum(1 for _ in input_path.open())
    if len(lines) != expected or errors:
        raise SystemExit(f"rewardkit judge wrote {len(lines)} lines, {errors} errors")
    return elapsed


def run_least_cli(
    input_path: Path, out: Path, fields: dict[str, Any], base_url: str, concurrency: int
) -> float:
    """`_least_judge.py` as a process of its own, with its cache: the floor for a judge CLI."""
    cache = out.with_suffix(".cache.sqlite")
    for path in (out, cache, Path(f"{cache}-wal"), Path(f"{cache}-shm")):
        path.unlink(missing_ok=True)
    script = Path(__file__).with_name("_least_judge.py")
    cmd = [sys.executable, str(script), str(input_path), str(out), base_url, str(concurrency)]
    return timed_run([*cmd, json.dumps(fields), str(cache)], "least judge CLI")


async def raw_aiohttp(bodies: list[dict[str, Any]], base_url: str, concurrency: int) -> float:
    import aiohttp

    url = base_url.rstrip("/") + "/chat/completions"
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: dict[str, Any]) -> str:
            async with sem, session.post(url, json=body) as response:
                data = await response.json()
                return str(data["choices"][0]["message"]["content"])

        start = time.perf_counter()
        texts = await asyncio.gather(*(one(b) for b in bodies))
        elapsed = time.perf_counter() - start
    assert all("boxed" in t for t in texts)
    return elapsed


async def backend_loop(requests: list[GenerateRequest], base_url: str, concurrency: int) -> float:
    backend = HTTPBackend(base_url, model=MODEL, concurrency=concurrency)
    start = time.perf_counter()
    batches = await asyncio.gather(*(backend.generate(r) for r in requests))
    elapsed = time.perf_counter() - start
    await backend.aclose()
    assert all("boxed" in c.text for batch in batches for c in batch)
    return elapsed


async def openai_loop(bodies: list[dict[str, Any]], base_url: str, concurrency: int) -> float:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    sem = asyncio.Semaphore(concurrency)
    known = {"model", "messages", "n", "temperature", "top_p", "max_tokens", "seed"}

    async def one(body: dict[str, Any]) -> str:
        async with sem:
            response = await client.chat.completions.create(
                **{k: v for k, v in body.items() if k in known},
                extra_body={k: v for k, v in body.items() if k not in known},
            )
            return response.choices[0].message.content or ""

    start = time.perf_counter()
    texts = await asyncio.gather(*(one(b) for b in bodies))
    elapsed = time.perf_counter() - start
    await client.close()
    assert all("boxed" in t for t in texts)
    return elapsed


async def cache_load(
    path: Path, requests: list[GenerateRequest], batched: bool
) -> tuple[float, float, float]:
    """64 workers doing lookup + store per request, as `rewardkit judge` does.

    Returns (seconds in all, seconds the event loop spent inside cache calls, the longest
    single call): what the loop cannot spend on requests in flight.
    """
    completion = Completion(spct_text([7, 3]), "stop")
    identity = "HTTPBackend:" + MODEL
    if batched:
        cache = JudgeCache(path)

        def lookup(key: str) -> bool:
            return bool(cache.get_many([key]))

        def store(key: str) -> None:
            cache.put_many({key: completion})

    else:  # the naive way: one connection, a commit per store, on the loop
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS c (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID"
        )

        def lookup(key: str) -> bool:
            return conn.execute("SELECT value FROM c WHERE key = ?", (key,)).fetchone() is not None

        def store(key: str) -> None:
            conn.execute("INSERT OR REPLACE INTO c VALUES (?, ?)", (key, completion.text))

    blocked = longest = 0.0

    async def worker(feed: Iterator[GenerateRequest]) -> None:
        nonlocal blocked, longest
        clock = time.perf_counter
        for request in feed:  # 64 workers share one iterator, as in `rewardkit judge`
            key = sample_key(request_digest(identity, request), 0)
            t0 = clock()
            hit = lookup(key)
            spent = clock() - t0
            if not hit:
                await asyncio.sleep(0)  # the judge call would be here
                t0 = clock()
                store(key)
                spent += clock() - t0
            blocked += spent
            longest = max(longest, spent)

    start = time.perf_counter()
    feed = iter(requests)
    await asyncio.gather(*(worker(feed) for _ in range(64)))
    if batched:
        await asyncio.to_thread(cache.flush)
        cache.close()
    else:
        conn.close()
    return time.perf_counter() - start, blocked, longest


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc (0.0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _client_cpu() -> float:
    """CPU seconds (user + system) of this process and its finished children (the CLI runs):
    the client's cost per query, which the wall-clock ratio hides when cores are shared."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2,000 queries instead of 20,000")
    parser.add_argument("--queries", type=int, help="number of queries (overrides --quick)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="run every row this many times")
    parser.add_argument("--openai", action="store_true", help="add the openai SDK row (slow)")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds the fake judge takes per answer"
    )
    args = parser.parse_args()
    n = args.queries or (2_000 if args.quick else 20_000)
    c = args.concurrency

    with tempfile.TemporaryDirectory(prefix="bench-judge-") as tmp:
        root = Path(tmp)
        input_path = root / "in.jsonl"
        write_input(input_path, n)
        requests = asyncio.run(judge_requests(input_path))
        # HTTPBackend's own body builder, so the baselines send byte-for-byte the same fields.
        shaper = HTTPBackend("http://127.0.0.1:9/v1", model=MODEL)
        bodies = [shaper._body(r, r.n, r.seed)[0] for r in requests]
        assert len(bodies) == n
        fields = {k: v for k, v in bodies[0].items() if k not in ("messages", "seed")}

        rounds: list[list[tuple[str, float, float, float]]] = []
        server_args = ("--delay", str(args.delay)) if args.delay else ()
        with FakeOpenAIProcess(*server_args) as server:
            url = server.base_url
            runs: list[tuple[str, Callable[[], float]]] = [
                ("raw aiohttp loop (limit)", lambda: asyncio.run(raw_aiohttp(bodies, url, c))),
                (
                    "rewardkit judge (cache on)",
                    lambda: run_cli(input_path, root / "a.jsonl", url, c),
                ),
                (
                    "rewardkit judge --no-cache",
                    lambda: run_cli(input_path, root / "b.jsonl", url, c, "--no-cache"),
                ),
                ("HTTPBackend alone", lambda: asyncio.run(backend_loop(requests, url, c))),
                (
                    "least judge client (in process)",
                    lambda: asyncio.run(least_judge(input_path, root / "m.jsonl", fields, url, c)),
                ),
                (
                    "least judge CLI, cache on",
                    lambda: run_least_cli(input_path, root / "l.jsonl", fields, url, c),
                ),
            ]
            if args.openai:
                runs.append(
                    ("openai.AsyncOpenAI loop", lambda: asyncio.run(openai_loop(bodies, url, c)))
                )
            asyncio.run(raw_aiohttp(bodies[:500], url, c))  # warm the server up
            for index in range(args.rounds):
                rows: list[tuple[str, float, float, float]] = []
                for name, fn in runs:
                    print(f"round {index + 1}: {name} ...", file=sys.stderr, flush=True)
                    cpu_before = _client_cpu()
                    server_before = _process_cpu(server.proc.pid)
                    seconds = fn()
                    client = _client_cpu() - cpu_before
                    rows.append(
                        (name, seconds, client, _process_cpu(server.proc.pid) - server_before)
                    )
                rounds.append(rows)

        def table(
            title: str, results: list[tuple[str, float, float, float]], baseline: float
        ) -> None:
            print(f"\n{title}")
            print(
                f"{'client':<32} {'seconds':>9} {'queries/s':>10} {'vs raw aiohttp':>15}"
                f" {'client CPU us/q':>16} {'server CPU us/q':>16}"
            )
            for name, seconds, cpu, server_cpu in results:
                rate = n / seconds
                print(
                    f"{name:<32} {seconds:>9.2f} {rate:>10.0f} {rate / baseline:>14.2f}x"
                    f" {cpu / n * 1e6:>16.0f} {server_cpu / n * 1e6:>16.0f}"
                )

        for index, rows in enumerate(rounds, start=1):
            table(
                f"round {index}/{len(rounds)}: {n} queries, concurrency {c}, fake server in its "
                f"own process (delay {args.delay:g} s), {os.cpu_count()} cores shared "
                f"(load {os.getloadavg()[0]:.1f} now)",
                rows,
                n / rows[0][1],
            )
        if len(rounds) > 1:
            print("\nratio to raw aiohttp, per round (and client CPU us/q)")
            for position, (name, _, _, _) in enumerate(rounds[0]):
                cells = [
                    f"{rows[0][1] / rows[position][1]:.2f}x ({rows[position][2] / n * 1e6:.0f})"
                    for rows in rounds
                ]
                print(f"{name:<32} " + "  ".join(cells))

        print(f"\ncache alone: {n} lookups + stores from 64 workers")
        print(
            f"{'cache writes':<32} {'seconds':>9} {'ops/s':>10} {'loop blocked':>13} {'longest':>9}"
        )
        cache_rows = [
            (
                "JudgeCache (batched commits)",
                asyncio.run(cache_load(root / "c1.sqlite", requests, True)),
            ),
            (
                "commit per store, on the loop",
                asyncio.run(cache_load(root / "c2.sqlite", requests, False)),
            ),
        ]
        for name, (seconds, blocked, longest) in cache_rows:
            print(
                f"{name:<32} {seconds:>9.3f} {n / seconds:>10.0f} {blocked:>12.3f}s"
                f" {longest * 1000:>6.1f} ms"
            )


if __name__ == "__main__":
    main()
