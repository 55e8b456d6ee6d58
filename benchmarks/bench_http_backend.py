"""What HTTPBackend costs per request, against a raw aiohttp loop and the openai SDK.

    python benchmarks/bench_http_backend.py            # 10,000 requests at concurrency 64
    python benchmarks/bench_http_backend.py --quick    # 1,000

The fake OpenAI server runs in its own process on loopback and answers at once, so each
row measures client overhead only. Rows, all with the same request bodies and a bound of
64 in flight:

1. raw aiohttp: one session, a semaphore, orjson/json in and out — the practical limit.
2. `HTTPBackend.generate`: the same plus retries bookkeeping, balancing, parsing into
   `Completion`s.
3. `HTTPBackend` against two fake servers (round-robin), to show balancing costs nothing.
4. `openai.AsyncOpenAI` (its default httpx transport), when installed.
5. `HTTPBackend` with n=4 against a server that ignores `n` (llama-cpp-python's
   behaviour): 4 requests per call, reported per completion.

Cores are shared with the fake servers, so only ratios from one run mean anything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import aiohttp

from rewardkit.backends.base import GenerateRequest
from rewardkit.backends.http import HTTPBackend
from rewardkit.testing.fake_openai import FakeOpenAIProcess

CONCURRENCY = 64


def requests(n: int, samples: int = 1) -> list[GenerateRequest]:
    return [
        GenerateRequest(
            messages=(
                {"role": "system", "content": "You are a careful judge."},
                {"role": "user", "content": f"Question {i}\nResponse 1: 4\nResponse 2: 5"},
            ),
            n=samples,
            max_tokens=256,
        )
        for i in range(n)
    ]


async def run_raw(url: str, reqs: list[GenerateRequest]) -> None:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(r: GenerateRequest) -> str:
            body = {
                "model": "m",
                "messages": list(r.messages),
                "n": r.n,
                "max_tokens": r.max_tokens,
                "temperature": r.temperature,
            }
            async with semaphore, session.post(url + "/chat/completions", json=body) as resp:
                data = json.loads(await resp.read())
            return str(data["choices"][0]["message"]["content"])

        await asyncio.gather(*(one(r) for r in reqs))


async def run_backend(backend: HTTPBackend, reqs: list[GenerateRequest]) -> None:
    results = await asyncio.gather(*(backend.generate(r) for r in reqs))
    await backend.aclose()
    assert all(len(out) == r.n for out, r in zip(results, reqs, strict=True))


async def run_openai(url: str, reqs: list[GenerateRequest]) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(r: GenerateRequest) -> None:
        async with semaphore:
            await client.chat.completions.create(
                model="m",
                messages=list(r.messages),
                n=r.n,
                max_tokens=r.max_tokens,  # type: ignore[arg-type]
            )

    await asyncio.gather(*(one(r) for r in reqs))
    await client.close()


def timed(fn: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    asyncio.run(fn())  # type: ignore[arg-type]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 requests instead of 10,000")
    parser.add_argument("-n", type=int, help="number of requests")
    args = parser.parse_args()
    n = args.n or (1_000 if args.quick else 10_000)
    reqs = requests(n)
    rows: list[tuple[str, int, float]] = []
    with FakeOpenAIProcess() as a, FakeOpenAIProcess() as b, FakeOpenAIProcess("--ignore-n") as c:
        timed(lambda: run_raw(a.base_url, reqs[:200]))  # warm up the server processes
        rows.append(("raw aiohttp loop", n, timed(lambda: run_raw(a.base_url, reqs))))
        rows.append(("HTTPBackend", n, timed(lambda: run_backend(HTTPBackend(a.base_url), reqs))))
        rows.append(
            (
                "HTTPBackend, 2 servers round-robin",
                n,
                timed(lambda: run_backend(HTTPBackend([a.base_url, b.base_url]), reqs)),
            )
        )
        try:
            import openai  # noqa: F401

            rows.append(("openai.AsyncOpenAI", n, timed(lambda: run_openai(a.base_url, reqs))))
        except ImportError:
            pass
        quarter = requests(n // 4, samples=4)
        rows.append(
            (
                "HTTPBackend n=4, server ignores n",
                len(quarter) * 4,
                timed(lambda: run_backend(HTTPBackend(c.base_url), quarter)),
            )
        )
    base = rows[0][1] / rows[0][2]
    print(f"\nHTTP client overhead: concurrency {CONCURRENCY}, fake servers in own processes")
    print(f"{'client':<38} {'completions':>11} {'seconds':>8} {'per s':>8} {'vs raw':>7}")
    for name, count, seconds in rows:
        rate = count / seconds
        print(f"{name:<38} {count:>11} {seconds:>8.2f} {rate:>8.0f} {rate / base:>6.2f}x")


if __name__ == "__main__":
    main()
