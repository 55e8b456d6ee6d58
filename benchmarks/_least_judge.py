"""The least a judge client can do over aiohttp: `bench_judge_client.py`'s floor rows.

    python benchmarks/_least_judge.py IN OUT BASE_URL CONCURRENCY FIELDS_JSON [CACHE]

Per query: read the input line, fence and render the SPCT prompt with its nonce, send it,
parse the verdict, write an output line; with CACHE, also the least a cache can do: a
sha256 of the request body as its key, a lookup in an in-memory set of known keys, and the
answers appended to SQLite in one `executemany` per 512 rows. No retries, voting, progress
bar, fsync or crash safety. Run as a script it is a whole judge CLI (interpreter start and
imports included), the cheapest one a Python judge with a cache on aiohttp can be: what it
reaches against the raw aiohttp loop bounds what `rewardkit judge` could reach on the same
machine. Only this module's imports are paid: no rewardkit CLI, pydantic or tqdm.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from rewardkit.judges.parsing import parse_judgment
from rewardkit.judges.templates import PromptBuilder, make_nonce

_COMMIT_ROWS = 512


class _LeastCache:
    """Keys held in memory, rows appended in batches: nothing cheaper keeps answers on disk."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS c (key TEXT, value TEXT)")
        self.keys = {row[0] for row in self.conn.execute("SELECT key FROM c")}
        self.pending: list[tuple[str, str]] = []

    def get(self, key: str) -> str | None:
        if key not in self.keys:
            return None
        row = self.conn.execute("SELECT value FROM c WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        self.keys.add(key)
        self.pending.append((key, value))
        if len(self.pending) >= _COMMIT_ROWS:
            self.flush()

    def flush(self) -> None:
        with self.conn:
            self.conn.executemany("INSERT INTO c VALUES (?, ?)", self.pending)
        self.pending = []


async def least_judge(
    input_path: Path,
    out: Path,
    fields: dict[str, Any],
    base_url: str,
    concurrency: int,
    cache_path: Path | None = None,
) -> float:
    """Judge every line of `input_path` into `out`; returns the seconds it took."""
    builder = PromptBuilder.create("helpfulness")
    cache = None if cache_path is None else _LeastCache(cache_path)
    url = base_url.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(raw: bytes) -> bytes:
            record = orjson.loads(raw)
            shown = record["responses"]
            nonce = make_nonce(record["id"], record["prompt"], shown)
            prompt = builder.render(record["prompt"], shown, nonce)
            body = orjson.dumps({**fields, "messages": [{"role": "user", "content": prompt}]})
            key = hashlib.sha256(body).hexdigest() if cache is not None else ""
            text = cache.get(key) if cache is not None else None
            if text is None:
                async with sem, session.post(url, data=body, headers=headers) as response:
                    data = orjson.loads(await response.read())
                text = data["choices"][0]["message"]["content"]
                if cache is not None:
                    cache.put(key, text)
            parsed = parse_judgment(text, len(shown), responses=shown, nonce=nonce)
            return orjson.dumps(
                {"id": record["id"], "scores": parsed.scores, "error": parsed.error}
            )

        start = time.perf_counter()
        lines = await asyncio.gather(*(one(raw) for raw in input_path.read_bytes().splitlines()))
        out.write_bytes(b"\n".join(lines) + b"\n")
        if cache is not None:
            cache.flush()
            cache.conn.close()
        elapsed = time.perf_counter() - start
    assert all(b'"error":null' in line for line in lines)
    return elapsed


if __name__ == "__main__":
    source, target, url, limit, shape = sys.argv[1:6]
    asyncio.run(
        least_judge(
            Path(source),
            Path(target),
            orjson.loads(shape),
            url,
            int(limit),
            Path(sys.argv[6]) if len(sys.argv) > 6 else None,
        )
    )
