"""JudgeCache and CachedBackend: what the key holds, top-up math, persistence, concurrency."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from rewardkit.backends.base import Completion, Constraint, GenerateRequest, TokenLogprob
from rewardkit.backends.mock import MockBackend
from rewardkit.errors import BackendError, BackendHTTPError, ConfigError, StoreError
from rewardkit.store import CachedBackend, JudgeCache, backend_identity, request_digest, sample_key
from rewardkit.store import cache as cache_module

BASE = GenerateRequest(
    messages=({"role": "system", "content": "You judge."}, {"role": "user", "content": "Q and A"}),
    n=1,
    temperature=0.5,
    top_p=1.0,
    max_tokens=256,
    seed=None,
    stop=(),
    constraint=None,
    top_logprobs=None,
)

CHANGES_OUTPUT = {
    "message text": replace(
        BASE, messages=(BASE.messages[0], {"role": "user", "content": "Q and B"})
    ),
    "message role": replace(
        BASE, messages=(BASE.messages[0], {"role": "assistant", "content": "Q and A"})
    ),
    "extra message": replace(BASE, messages=(*BASE.messages, {"role": "user", "content": "more"})),
    "temperature": replace(BASE, temperature=0.7),
    "top_p": replace(BASE, top_p=0.9),
    "max_tokens": replace(BASE, max_tokens=512),
    "seed": replace(BASE, seed=1),
    "stop": replace(BASE, stop=("</s>",)),
    "regex constraint": replace(BASE, constraint=Constraint("regex", r"\d+")),
    "other regex": replace(BASE, constraint=Constraint("regex", r"\d")),
    "grammar constraint": replace(BASE, constraint=Constraint("grammar", r"\d+")),
    "top_logprobs": replace(BASE, top_logprobs=5),
}


@pytest.mark.parametrize("name", sorted(CHANGES_OUTPUT))
def test_every_output_changing_field_changes_the_key(name: str) -> None:
    assert request_digest("mock:m", CHANGES_OUTPUT[name]) != request_digest("mock:m", BASE)


def test_all_variants_have_distinct_keys() -> None:
    digests = {request_digest("mock:m", r) for r in CHANGES_OUTPUT.values()}
    assert len(digests) == len(CHANGES_OUTPUT)


@pytest.mark.parametrize(
    "other",
    [
        replace(BASE, n=8),
        # the same messages built with keys in another order
        replace(
            BASE,
            messages=tuple({"content": m["content"], "role": m["role"]} for m in BASE.messages),
        ),
    ],
    ids=["n", "dict order"],
)
def test_n_and_dict_order_do_not_change_the_key(other: GenerateRequest) -> None:
    assert request_digest("mock:m", other) == request_digest("mock:m", BASE)


def test_json_schema_key_order_does_not_matter() -> None:
    a = replace(BASE, constraint=Constraint("json_schema", {"type": "object", "required": ["s"]}))
    b = replace(BASE, constraint=Constraint("json_schema", {"required": ["s"], "type": "object"}))
    assert request_digest("x:m", a) == request_digest("x:m", b)


def test_keys_are_stable_across_versions() -> None:
    # A cache outlives upgrades: a key whose bytes change silently makes every cached
    # judgment a miss, and the judge is paid again. Change the layout on purpose, bump
    # `_KEY_VERSION`, and update these values in the same commit.
    assert request_digest("HTTPBackend:judge", BASE) == (
        "b23a883baa4fb8f9bb3d2192df25ff6a7e56403d1e06693289ae7e23ea1d2eb3"
    )
    assert request_digest("HTTPBackend:judge", CHANGES_OUTPUT["regex constraint"]) == (
        "462c6d4ff55c7713bcce5280b34da4f16438eeb810a3ef7cd7af7e450391e24b"
    )


def test_backend_kind_and_model_change_the_key() -> None:
    digests = {request_digest(identity, BASE) for identity in ("http:a", "http:b", "llama_cpp:a")}
    assert len(digests) == 3
    assert backend_identity(MockBackend(["x"], model="judge-7b")) == "MockBackend:judge-7b"


def test_sample_index_is_part_of_the_key() -> None:
    digest = request_digest("x:m", BASE)
    assert len({sample_key(digest, i) for i in range(8)}) == 8


def test_transport_settings_stay_out_of_the_key() -> None:
    build_backend = pytest.importorskip("rewardkit.backends.factory").build_backend
    a = build_backend(
        "http",
        base_url="http://127.0.0.1:1/v1",
        model="m",
        timeout=5,
        max_retries=0,
        concurrency=4,
        api_key="k1",
    )
    b = build_backend(
        "http",
        base_url=["http://127.0.0.1:2/v1", "http://127.0.0.1:3/v1"],
        model="m",
        timeout=60,
        max_retries=5,
        concurrency=64,
        api_key="k2",
    )
    c = build_backend("http", base_url="http://127.0.0.1:1/v1", model="other")
    assert backend_identity(a) == backend_identity(b)
    assert backend_identity(a) != backend_identity(c)
    assert request_digest(backend_identity(a), BASE) == request_digest(backend_identity(b), BASE)


def counting_backend(model: str = "m") -> MockBackend:
    """Every sample it produces is distinct, so a test can tell samples apart."""
    counter = itertools.count()
    return MockBackend(lambda request, index: f"sample-{next(counter)}", model=model)


@pytest.fixture
def cache(tmp_path: Path):
    with JudgeCache(tmp_path / "cache.sqlite") as c:
        yield c


@pytest.mark.parametrize(
    ("first", "second", "asked_second", "new_samples"),
    [(4, 8, 4, 4), (8, 4, None, 0), (4, 4, None, 0), (1, 3, 2, 2), (3, 16, 13, 13)],
)
async def test_top_up_asks_only_for_missing_samples(
    cache: JudgeCache, first: int, second: int, asked_second: int | None, new_samples: int
) -> None:
    inner = counting_backend()
    cached = CachedBackend(inner, cache)
    a = await cached.generate(replace(BASE, n=first))
    assert [c.text for c in a] == [f"sample-{i}" for i in range(first)]
    b = await cached.generate(replace(BASE, n=second))
    assert len(b) == second
    # the overlap is the same samples, at the same indices
    overlap = min(first, second)
    assert [c.text for c in b[:overlap]] == [c.text for c in a[:overlap]]
    # k votes are k distinct samples, never one answer repeated
    assert len({c.text for c in b}) == second
    asked = [r.n for r in inner.requests]
    assert asked == ([first, asked_second] if asked_second else [first])
    assert len(cache) == max(first, second)
    assert sum(asked) == first + new_samples


async def test_partial_hit_at_arbitrary_indices(cache: JudgeCache) -> None:
    inner = counting_backend()
    cached = CachedBackend(inner, cache)
    digest = request_digest(cached.identity, BASE)
    cache.put_many(
        {sample_key(digest, 1): Completion("kept-1"), sample_key(digest, 3): Completion("kept-3")}
    )
    out = await cached.generate(replace(BASE, n=5))
    assert [c.text for c in out] == ["sample-0", "kept-1", "sample-1", "kept-3", "sample-2"]
    assert [r.n for r in inner.requests] == [3]


async def test_seeded_top_up_shifts_the_seed(cache: JudgeCache) -> None:
    inner = counting_backend()
    cached = CachedBackend(inner, cache)
    await cached.generate(replace(BASE, n=2, seed=7))
    await cached.generate(replace(BASE, n=5, seed=7))
    assert [(r.n, r.seed) for r in inner.requests] == [(2, 7), (3, 9)]


async def test_other_model_or_params_miss(cache: JudgeCache) -> None:
    a, b = counting_backend("m1"), counting_backend("m2")
    await CachedBackend(a, cache).generate(BASE)
    await CachedBackend(b, cache).generate(BASE)
    await CachedBackend(a, cache).generate(replace(BASE, temperature=0.9))
    assert (a.calls, b.calls) == (2, 1)


@pytest.mark.parametrize(
    "error", [BackendHTTPError(500, "boom"), BackendError("down"), ConnectionError("reset")]
)
async def test_errors_are_never_cached(cache: JudgeCache, error: Exception) -> None:
    inner = MockBackend([error, "good"])
    cached = CachedBackend(inner, cache)
    with pytest.raises(type(error)):
        await cached.generate(BASE)
    assert len(cache) == 0
    assert [c.text for c in await cached.generate(BASE)] == ["good"]
    assert [c.text for c in await cached.generate(BASE)] == ["good"]
    assert inner.calls == 2


async def test_wrong_count_from_inner_backend_is_an_error(cache: JudgeCache) -> None:
    class Short(MockBackend):
        async def generate(self, request: GenerateRequest) -> list[Completion]:
            return (await super().generate(request))[:1]

    with pytest.raises(BackendError, match="returned 1 completions for n=3"):
        await CachedBackend(Short(["x"]), cache).generate(replace(BASE, n=3))
    assert len(cache) == 0


async def test_invalid_n_is_a_config_error(cache: JudgeCache) -> None:
    with pytest.raises(ConfigError):
        await CachedBackend(counting_backend(), cache).generate(replace(BASE, n=0))


def test_completion_fields_round_trip_through_disk(tmp_path: Path) -> None:
    completion = Completion(
        "Scores: \\boxed{7, 3} — ünïcode",
        "length",
        (TokenLogprob("7", -0.1, {"7": -0.1, "8": -2.5}), TokenLogprob(",", -0.01)),
    )
    path = tmp_path / "c.sqlite"
    with JudgeCache(path) as c:
        c.put_many({"k": completion, "plain": Completion("x")})
    with JudgeCache(path) as c:
        got = c.get_many(["k", "plain", "absent"])
    assert got == {"k": completion, "plain": Completion("x")}


@pytest.mark.parametrize(
    "completion",
    [
        Completion('没有 emoji 🙂 "quoted" \\boxed{8}', "stop"),
        Completion("", None),
        # -inf is what a server's null logprob becomes; orjson would write it as null.
        Completion("x", "stop", (TokenLogprob("x", float("-inf"), {"y": float("-inf")}),)),
    ],
    ids=["unicode", "empty", "minus-inf-logprob"],
)
def test_encoded_values_round_trip_exactly(tmp_path: Path, completion: Completion) -> None:
    path = tmp_path / "c.sqlite"
    with JudgeCache(path) as c:
        c.put_many({"k": completion})
    with JudgeCache(path) as c:
        assert c.get_many(["k"]) == {"k": completion}


def test_pending_writes_are_visible_before_commit(tmp_path: Path) -> None:
    with JudgeCache(tmp_path / "c.sqlite", flush_interval=60, batch_size=10**6) as c:
        c.put_many({"a": Completion("A")})
        assert c.get_many(["a"]) == {"a": Completion("A")}
        other = JudgeCache(tmp_path / "c.sqlite")
        try:
            assert other.get_many(["a"]) == {}  # not on disk yet
            c.flush()
            assert other.get_many(["a"]) == {"a": Completion("A")}
        finally:
            other.close()


def test_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        JudgeCache(tmp_path)


def test_a_corrupt_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="--no-cache"):
        JudgeCache(path)


async def test_many_tasks_share_one_cache(tmp_path: Path) -> None:
    """64 tasks, overlapping requests: every answer is consistent and nothing is lost."""
    inner = MockBackend(
        lambda request, index: f"{request.messages[0]['content']}#{index}", delay=0.001
    )
    prompts = [f"p{i}" for i in range(200)]
    with JudgeCache(tmp_path / "c.sqlite", flush_interval=0.005, batch_size=16) as c:
        cached = CachedBackend(inner, c)
        sem = asyncio.Semaphore(64)

        async def one(prompt: str, n: int) -> list[str]:
            async with sem:
                out = await cached.generate(
                    replace(BASE, messages=({"role": "user", "content": prompt},), n=n)
                )
                return [x.text for x in out]

        first = await asyncio.gather(*(one(p, 2) for p in prompts))
        second = await asyncio.gather(*(one(p, 4) for p in prompts))
        assert first == [[f"{p}#0", f"{p}#1"] for p in prompts]
        # the top-up asks for 2 more, which the mock numbers 0 and 1 again: stored at 2 and 3
        assert second == [[f"{p}#0", f"{p}#1", f"{p}#0", f"{p}#1"] for p in prompts]
        assert len(c) == 4 * len(prompts)
        assert c.hits == 2 * len(prompts)
    with JudgeCache(tmp_path / "c.sqlite") as reopened:
        assert len(reopened) == 4 * len(prompts)


def test_threads_share_one_cache(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with JudgeCache(tmp_path / "c.sqlite", flush_interval=0.001, batch_size=8) as c:

        def work(t: int) -> None:
            for i in range(100):
                c.put_many({f"{t}:{i}": Completion(f"v{t}:{i}")})
                assert c.get_many([f"{t}:{i}"])[f"{t}:{i}"].text == f"v{t}:{i}"

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(8)))
        assert len(c) == 800


def test_commits_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from rewardkit.backends.base import Completion
        from rewardkit.store import JudgeCache
        c = JudgeCache({str(path)!r}, flush_interval=0.01)
        for i in range(300):
            c.put_many({{f"k{{i}}": Completion(f"v{{i}}")}})
        c.flush()
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        signal.pause()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with JudgeCache(path) as c:
        got = c.get_many([f"k{i}" for i in range(300)])
        assert len(got) == 300 and got["k299"].text == "v299"


async def test_the_loop_commits_a_buffer_without_another_cache_call(tmp_path: Path) -> None:
    """A row stored from a running loop reaches the file `flush_interval` later, though the
    cache is never called again: a process killed after that keeps it."""
    path = tmp_path / "c.sqlite"
    c = JudgeCache(path, flush_interval=0.02, batch_size=10**6)
    try:
        c.put_many({"a": Completion("A")})
        with JudgeCache(path) as other:
            assert other.get_many(["a"]) == {}  # buffered, not on disk
        await asyncio.sleep(0.2)
        with JudgeCache(path) as other:
            assert other.get_many(["a"]) == {"a": Completion("A")}
    finally:
        c.close()


def test_without_a_loop_the_next_call_after_the_interval_commits(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with JudgeCache(path, flush_interval=0.05, batch_size=10**6) as c:
        c.put_many({"a": Completion("A")})
        with JudgeCache(path) as other:
            assert other.get_many(["a"]) == {}
            time.sleep(0.06)
            assert c.get_many(["b"]) == {}  # any call past the interval commits
            time.sleep(cache_module._RECHECK_SECONDS)
            assert other.get_many(["a"]) == {"a": Completion("A")}


def test_a_full_batch_is_committed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with JudgeCache(path, flush_interval=60, batch_size=3) as c:
        c.put_many({"a": Completion("A"), "b": Completion("B")})
        with JudgeCache(path) as other:
            assert other.get_many(["a"]) == {}
            c.put_many({"c": Completion("C")})  # the third row fills the batch
            time.sleep(cache_module._RECHECK_SECONDS)
            assert len(other.get_many(["a", "b", "c"])) == 3


def test_a_cache_never_closed_is_committed_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    script = (
        "from rewardkit.backends.base import Completion; from rewardkit.store import JudgeCache\n"
        f"c = JudgeCache({str(path)!r}, flush_interval=60, batch_size=10**6)\n"
        "c.put_many({'k': Completion('K')})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    with JudgeCache(path) as c:
        assert c.get_many(["k"]) == {"k": Completion("K")}


def test_a_forked_child_leaves_the_parents_buffer_alone(tmp_path: Path) -> None:
    """The exit hook commits only caches its own process opened: a forked child exiting
    normally does not write the parent's buffered rows through the inherited connection."""
    path = tmp_path / "c.sqlite"
    script = (
        "import os\n"
        "from rewardkit.backends.base import Completion; from rewardkit.store import JudgeCache\n"
        f"c = JudgeCache({str(path)!r}, flush_interval=60, batch_size=10**6)\n"
        "c.put_many({'k': Completion('K')})\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    raise SystemExit(0)  # a normal exit: atexit handlers run\n"
        "os.waitpid(pid, 0)\n"
        "with JudgeCache({path!r}) as other:\n"
        "    assert other.get_many(['k']) == {}, 'the child committed the parent rows'\n"
        "c.close()\n"
    ).replace("{path!r}", repr(str(path)))
    subprocess.run([sys.executable, "-c", script], check=True)
    with JudgeCache(path) as c:
        assert c.get_many(["k"]) == {"k": Completion("K")}  # the parent's own close


def test_own_commits_are_not_read_back(tmp_path: Path) -> None:
    """Appended rows' ids are known from the append: a lookup after a commit of this
    cache's own rows runs no query for new rows, and a hit still reads the right value."""
    with JudgeCache(tmp_path / "c.sqlite", flush_interval=60) as c:
        c.put_many({f"k{i}": Completion(f"v{i}") for i in range(5)})
        c.flush()
        statements: list[str] = []
        c._conn.set_trace_callback(statements.append)
        c._checked = 0.0  # let the next lookup look for other connections' rows
        assert c.get_many(["k3"]) == {"k3": Completion("v3")}
        assert not [s for s in statements if "rowid >" in s]


def test_closed_cache_refuses_writes(tmp_path: Path) -> None:
    c = JudgeCache(tmp_path / "c.sqlite")
    c.close()
    c.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        c.put_many({"a": Completion("A")})


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # field boundaries: moving text between role and content is a different request
        ({"role": "user", "content": "ab"}, {"role": "usera", "content": "b"}),
        # a string that looks like the JSON of a structured content is still a string
        (
            {"role": "user", "content": '[{"text":"hi","type":"text"}]'},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ),
    ],
)
def test_keys_do_not_collide_across_field_boundaries(a: dict, b: dict) -> None:
    assert request_digest("x:m", replace(BASE, messages=(a,))) != request_digest(
        "x:m", replace(BASE, messages=(b,))
    )


def test_int_and_float_sampling_params_are_the_same_request() -> None:
    assert request_digest("x:m", replace(BASE, temperature=1)) == request_digest(
        "x:m", replace(BASE, temperature=1.0)
    )


class _LocalModel:
    """Stands in for a local-model backend: named by a folder, like TransformersBackend."""

    def __init__(self, path: Path) -> None:
        self.model_id = str(path)
        self.model = path.name

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        return [Completion("x")] * request.n

    async def aclose(self) -> None:
        pass


def test_local_models_are_named_by_their_resolved_path(tmp_path: Path) -> None:
    a, b = tmp_path / "step-100" / "model", tmp_path / "step-200" / "model"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    ida, idb = backend_identity(_LocalModel(a)), backend_identity(_LocalModel(b))
    assert ida != idb and ida.endswith(str(a.resolve()))
    # the same folder reached by another path is the same model
    assert backend_identity(_LocalModel(tmp_path / "step-100" / ".." / "step-100" / "model")) == ida
    # a hub id that is not a local path is kept as given
    assert backend_identity(_LocalModel(Path("Qwen/Qwen2.5-0.5B-Instruct"))).endswith(
        "Qwen/Qwen2.5-0.5B-Instruct"
    )


class _Numbered:
    """A picklable scripted output: every sample distinct."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, request: GenerateRequest, index: int) -> str:
        self.count += 1
        return f"sample-{self.count}"


async def test_cached_backend_pickles_with_its_cache(tmp_path: Path) -> None:
    import pickle

    cache = JudgeCache(tmp_path / "c.sqlite", flush_interval=60)
    cached = CachedBackend(MockBackend(_Numbered()), cache)
    first = await cached.generate(replace(BASE, n=2))
    copy = pickle.loads(pickle.dumps(cached))  # flushes, then reopens the same file
    try:
        assert copy.cache is not cache and copy.identity == cached.identity
        assert await copy.generate(replace(BASE, n=2)) == first
        assert copy.backend.calls == 1  # the copy's inner backend was never asked
    finally:
        copy.cache.close()
        cache.close()


def test_a_miss_runs_no_select_and_known_keys_are_read(tmp_path: Path) -> None:
    """Keys on disk are known at open; a key outside that set is a miss without a query."""
    path = tmp_path / "c.sqlite"
    with JudgeCache(path) as c:
        c.put_many({"old": Completion("O")})
    with JudgeCache(path, flush_interval=60) as c:
        statements: list[str] = []
        c._conn.set_trace_callback(statements.append)
        assert c.get_many(["new"]) == {}
        assert not [s for s in statements if s.startswith("SELECT")]
        assert c.get_many(["old", "new"]) == {"old": Completion("O")}
        assert [s for s in statements if s.startswith("SELECT")]
        c.put_many({"new": Completion("N")})
        c.flush()
        assert c.get_many(["new"]) == {"new": Completion("N")}
        assert (c.hits, c.misses) == (2, 2)


def test_rows_another_process_commits_later_are_found(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with JudgeCache(path) as c:
        assert c.get_many(["k"]) == {}  # opened before the other process writes
        script = (
            "from rewardkit.backends.base import Completion; from rewardkit.store import JudgeCache\n"
            f"with JudgeCache({str(path)!r}) as o: o.put_many({{'k': Completion('K')}})\n"
        )
        subprocess.run([sys.executable, "-c", script], check=True)
        time.sleep(cache_module._RECHECK_SECONDS)  # the longest a look may be put off
        assert c.get_many(["k"]) == {"k": Completion("K")}


def test_a_failed_commit_is_a_store_error(tmp_path: Path) -> None:
    c = JudgeCache(tmp_path / "c.sqlite", flush_interval=60)
    c._conn.execute("DROP TABLE completions")  # the next commit cannot insert
    c.put_many({"a": Completion("A")})
    with pytest.raises(StoreError, match="could not be written"):
        c.flush()
    with pytest.raises(StoreError):
        c.close()


def test_a_key_written_twice_reads_the_later_row(tmp_path: Path) -> None:
    """Rows append (no key index); the later row of a key wins, now and after reopening."""
    path = tmp_path / "c.sqlite"
    with JudgeCache(path) as c:
        c.put_many({"k": Completion("first"), "other": Completion("O")})
        c.flush()
        c.put_many({"k": Completion("second")})
        c.flush()
        assert c.get_many(["k"]) == {"k": Completion("second")}
        assert len(c) == 2
    with JudgeCache(path) as c:
        assert c.get_many(["k", "other"]) == {"k": Completion("second"), "other": Completion("O")}


@pytest.mark.parametrize("layout", ["", " WITHOUT ROWID"])
def test_files_with_an_older_layout_are_migrated(tmp_path: Path, layout: str) -> None:
    """Files written before the key index was dropped keep their rows and take new ones."""
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE completions (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
        + layout
    )
    conn.execute("""INSERT INTO completions VALUES ('k', '["K","stop",null]', 0)""")
    conn.commit()
    conn.close()
    with JudgeCache(path) as c:
        assert c.get_many(["k"]) == {"k": Completion("K", "stop")}
        c.put_many({"k": Completion("K2"), "j": Completion("J")})  # a rewrite and a new key
        c.flush()
        assert c.get_many(["k", "j"]) == {"k": Completion("K2"), "j": Completion("J")}
        assert len(c) == 2
    with JudgeCache(path) as c:
        assert c.get_many(["k", "j"]) == {"k": Completion("K2"), "j": Completion("J")}
