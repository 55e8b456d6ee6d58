"""A SQLite cache of judge completions, and a `Backend` wrapper that reads and fills it.

Keyed per *sample*: one row is one completion at one sample index of one request. The key
holds everything that changes the output — backend kind and model, the full messages (which
carry the template and the responses), every sampling parameter except `n`, the constraint —
and the sample index, so k independent votes never collapse into one cached answer
(STYLE principle 11). Transport settings (base URL, timeout, retries, concurrency, api key)
live on the backend object, never in the request, so they stay out of the key by design.

Many asyncio tasks share one cache, through one SQLite connection used on the caller's
thread. The table has no index on the key: the keys on disk are held in memory, each with its
row id, loaded when the cache opens. A miss (every lookup of a fresh run) runs no SQLite query;
a hit reads its row by row id. Rows other connections committed since the last look are read
in by row id (rows only append), see `get_many`. Writes are buffered in memory, visible to
lookups at once, and committed in one transaction per batch on the caller's thread (a few
microseconds a row: with no key index a commit only appends rows); the rows' ids are known
from the append, so nothing is read back (an earlier writer thread made every commit look
like another connection's, and the loop read its own rows back).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import copy
import hashlib
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson  # several times faster than json on judge texts

from rewardkit.backends.base import (
    Backend,
    Completion,
    Constraint,
    GenerateRequest,
    TokenLogprob,
    constraint_kinds,
)
from rewardkit.errors import BackendError, ConfigError, StoreError


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


__all__ = ["CachedBackend", "JudgeCache", "backend_identity", "request_digest", "sample_key"]

_KEY_VERSION = 1  # bump when the key layout changes, so old rows are never misread
# No key index: a row is written by appending to the table (rows land in rowid order) and
# found by its rowid, which the cache keeps in memory with its key. The PRIMARY KEY index this
# table had took a random B-tree insert per row: on the small batches a judge run commits
# (tens of rows every `flush_interval`) it cost the writer 25 us per row against 4 without it.
# A key written twice (asked again after a race) appends a second row; the later one wins.
# Files made with an older layout (key PRIMARY KEY, with or without rowid) are copied into this
# one when first opened, see `_migrate`.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def backend_identity(backend: Backend) -> str:
    """`kind:model` for a backend: what, besides the request, decides its output.

    A backend may name its kind with a `kind` attribute; otherwise its class name stands in.
    A local model (a `model_path` or `model_id` attribute) is named by its resolved path,
    since two checkpoints often share a folder name ("step-100/model", "step-200/model").
    """
    kind = getattr(backend, "kind", None) or type(backend).__name__
    local = getattr(backend, "model_path", None) or getattr(backend, "model_id", None)
    if local is not None:
        path = Path(local).expanduser()
        return f"{kind}:{path.resolve() if path.exists() else local}"
    return f"{kind}:{backend.model}"


def request_digest(identity: str, request: GenerateRequest) -> str:
    """A sha256 of everything in `request` that changes the output, except `n`.

    Hashed field by field, each length-prefixed so no two requests run together into the
    same bytes; JSON-encoding a multi-kilobyte judge prompt first cost 5x more per request.
    """
    # Chunks gathered and hashed in one call (the same bytes as one `update` per field). The
    # loop is written out, and field names and counts come from a small table, because this
    # runs once per judge call.
    chunks: list[bytes] = [_KEY_HEAD, _field(identity), _short_field(str(len(request.messages)))]
    append = chunks.append
    for message in request.messages:
        append(_short_field(str(len(message))))
        for name in sorted(message):  # the same message built in another key order
            append(_short_field(name))
            value = message[name]
            if isinstance(value, str):
                data = value.encode("utf-8", "surrogatepass")
                append(_STR_TAG)
                append(len(data).to_bytes(8, "little"))
                append(data)
            else:
                _add_json(append, value)
    append(
        _field(
            repr(
                (
                    float(request.temperature),
                    float(request.top_p),
                    request.max_tokens,
                    request.seed,
                    tuple(request.stop),
                    request.top_logprobs,
                )
            )
        )
    )
    constraint = request.constraint
    append(_NO_CONSTRAINT if constraint is None else _constraint_bytes(constraint))
    digest = hashlib.sha256(b"".join(chunks))
    return digest.hexdigest()


# Judges build one constraint per shape and reuse it on every request; its bytes (a JSON
# schema among them: json.dumps with sorted keys was ~15% of the digest) are encoded once.
# Keyed by identity, holding the constraint so its id is not reused while the entry lives,
# and a deep copy of its values: a dict changed in place since is seen (== is cheap) and
# encoded again.
_CONSTRAINT_BYTES: dict[int, tuple[Constraint, tuple[object, ...], bytes]] = {}


def _constraint_bytes(constraint: Constraint) -> bytes:
    forms = constraint.forms()
    entry = _CONSTRAINT_BYTES.get(id(constraint))
    if entry is not None and entry[0] is constraint and entry[1] == tuple(f.value for f in forms):
        return entry[2]
    # Alternatives decide what a server that takes another kind enforces (a llama.cpp
    # server ignores a bare regex): a key without them would hand an answer sampled
    # unconstrained to a request that is now held to the verdict.
    chunks: list[bytes] = []
    append = chunks.append
    for form in forms:
        append(_field(form.kind))
        if isinstance(form.value, str):
            append(_STR_TAG)
            append(_field(form.value))
        else:
            _add_json(append, form.value)
        if form.text_fields:
            append(_field(repr(form.text_fields)))
    data = b"".join(chunks)
    if len(_CONSTRAINT_BYTES) >= 256:  # bounded: a judge has a handful of shapes
        _CONSTRAINT_BYTES.clear()
    snapshot = tuple(copy.deepcopy(f.value) for f in forms)
    _CONSTRAINT_BYTES[id(constraint)] = (constraint, snapshot, data)
    return data


def _field(value: str) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    return len(data).to_bytes(8, "little") + data


def _add_json(append: Callable[[bytes], None], value: object) -> None:
    # e.g. multimodal content parts or a JSON-schema dict: key order must not matter
    append(_JSON_TAG)
    append(_field(json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))))


_SHORT_FIELDS: dict[str, bytes] = {}


def _short_field(value: str) -> bytes:
    """`_field` for names and counts, which repeat: kept in a small table."""
    field = _SHORT_FIELDS.get(value)
    if field is None:
        field = _field(value)
        if len(_SHORT_FIELDS) < 4096:  # bounded: message keys are a handful of names
            _SHORT_FIELDS[value] = field
    return field


_KEY_HEAD = _field(f"rewardkit-cache-v{_KEY_VERSION}")
_STR_TAG = _field("str")
_JSON_TAG = _field("json")
_NO_CONSTRAINT = _field("no-constraint")


def sample_key(digest: str, index: int) -> str:
    """The key of sample `index` of the request whose digest is `digest`."""
    return f"{digest}:{index}"


def _encode(completion: Completion) -> str:
    logprobs = None
    if completion.logprobs is not None:
        logprobs = [[t.token, t.logprob, t.top] for t in completion.logprobs]
        # json, not orjson: a logprob may be -inf, which orjson would write as null.
        return _json_dumps([completion.text, completion.finish_reason, logprobs])
    try:
        return orjson.dumps([completion.text, completion.finish_reason, None]).decode()
    except TypeError:  # e.g. a lone surrogate in the text; json keeps it
        return _json_dumps([completion.text, completion.finish_reason, None])


def _decode(value: str) -> Completion:
    try:
        loaded = orjson.loads(value)
    except ValueError:  # -Infinity logprobs or a lone surrogate: only json reads those
        loaded = json.loads(value)
    text, finish_reason, logprobs = loaded
    tokens = None
    if logprobs is not None:
        tokens = tuple(TokenLogprob(token, logprob, dict(top)) for token, logprob, top in logprobs)
    return Completion(text=text, finish_reason=finish_reason, logprobs=tokens)


class JudgeCache:
    """Completions by sample key in a SQLite file (WAL), safe to share between asyncio tasks
    and threads.

    One connection does everything, on the caller's thread. `get_many` answers from writes
    not yet committed as well as from disk. `put_many` buffers its rows and returns; the
    buffer is committed in one transaction when `batch_size` rows are waiting, when
    `flush_interval` seconds have passed since its first row (a timer on the caller's event
    loop; a caller with no running loop commits at its next cache call after the interval),
    and on `flush()`, `close()`, pickling and interpreter exit. A process killed with
    SIGKILL loses at most the last `flush_interval` of writes (the judge is asked again for
    them), never the file: each batch is one transaction. A commit of a hundred rows takes
    ~0.2 ms; the one in ~80 that also checkpoints the WAL into the file (SQLite's own
    autocheckpoint, every ~4 MB) waits for the disk, ~10 ms here.
    """

    def __init__(
        self, path: str | Path, *, flush_interval: float = 0.05, batch_size: int = 512
    ) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        if self.path.exists() and self.path.is_dir():
            raise ConfigError(f"cache path {self.path} is a directory; give a file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # e.g. the path runs through a file
            raise ConfigError(
                f"cannot open cache {self.path}: {exc.strerror or exc}; pass --no-cache or another path"
            ) from None
        try:
            self._conn = _connect(self.path)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a process crash (kill -9); only an OS
            # crash can lose the last transactions, which a cache can afford.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            # Up to 32 MiB of pages kept between batches (old files' key index is re-read from
            # the OS on every batch with the default 2 MiB); grown only as used.
            self._conn.execute("PRAGMA cache_size=-32768")
            self._migrate()
            # The version first, then the rows: a commit landing in between shows up as a
            # version change, so its rows are read in at the next lookup rather than missed.
            self._path_key = str(self.path.resolve())
            self._local_seen = _LOCAL_COMMITS.get(self._path_key, 0)
            self._checked = time.monotonic()
            self._version = self._data_version()
            self._rowids: dict[str, int] = {}  # every key on disk -> the row holding its value
            self._last_rowid = 0  # rows up to this one (from other connections) are read in
            self._read_new_rows()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(
                f"cannot open cache {self.path}: {exc}; pass --no-cache or another path"
            ) from exc
        # One statement at a time on the connection, and the buffer below (re-entrant: a
        # commit is made from inside put_many and get_many).
        self._lock = threading.RLock()
        self._pending: dict[str, str] = {}  # written, not yet committed
        self._pending_since = 0.0  # monotonic time of the oldest pending row
        self._timer: asyncio.TimerHandle | None = None
        self._error: BaseException | None = None
        self._closed = False
        self.hits = 0
        self.misses = 0
        self._pid = os.getpid()
        _OPEN_CACHES.add(self)

    def _migrate(self) -> None:
        """Create the table, or copy an older layout's rows into the current one (once)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'completions'"
            ).fetchone()
            if row is not None and "PRIMARY KEY" in row[0].upper():
                conn.execute("ALTER TABLE completions RENAME TO completions_old")
                conn.execute(_SCHEMA)
                conn.execute(
                    "INSERT INTO completions (key, value, created)"
                    " SELECT key, value, created FROM completions_old ORDER BY created"
                )
                conn.execute("DROP TABLE completions_old")
            else:
                conn.execute(_SCHEMA)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _data_version(self) -> int:
        # Changes whenever *another* connection has committed (this one's commits do not).
        (version,) = self._conn.execute("PRAGMA data_version").fetchone()
        return int(version)

    # -- reads -------------------------------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> dict[str, Completion]:
        """The cached completions among `keys` (missing keys are absent from the result)."""
        found: dict[str, str] = {}
        with self._lock:
            now = time.monotonic()
            if self._pending and now - self._pending_since >= self.flush_interval:
                self._commit_pending()
            pending = self._pending
            remaining = []
            for key in keys:
                value = pending.get(key)
                if value is None:
                    remaining.append(key)
                else:
                    found[key] = value
            if remaining and not self._closed:
                # A key not in `_rowids` is not on disk, unless another connection committed
                # since the last look; then the rows after `_last_rowid` are read in first. The
                # look is `data_version`, taken when another cache in this process has committed
                # to the file since, else at most every `_RECHECK_SECONDS`. So a row another
                # process committed in the last `_RECHECK_SECONDS` can be a miss: the judge is
                # asked again and an equally valid sample appended. That costs one call, never
                # a wrong answer.
                local = _LOCAL_COMMITS.get(self._path_key, 0)
                if local != self._local_seen or now - self._checked >= _RECHECK_SECONDS:
                    self._local_seen, self._checked = local, now
                    version = self._data_version()
                    if version != self._version:
                        self._version = version
                        self._read_new_rows()
                rowids = self._rowids
                wanted = {rowids[key]: key for key in remaining if key in rowids}
                if wanted:
                    marks = ",".join("?" * len(wanted))
                    rows = self._conn.execute(
                        f"SELECT rowid, value FROM completions WHERE rowid IN ({marks})",
                        list(wanted),
                    ).fetchall()
                    found.update((wanted[rowid], value) for rowid, value in rows)
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return {key: _decode(value) for key, value in found.items()}

    def _read_new_rows(self) -> None:
        """Add the keys of rows committed after `_last_rowid` (rows only append; the later row
        of a key written twice wins)."""
        rows = self._conn.execute(
            "SELECT rowid, key FROM completions WHERE rowid > ? ORDER BY rowid", (self._last_rowid,)
        ).fetchall()
        if rows:
            self._rowids.update((key, rowid) for rowid, key in rows)
            self._last_rowid = rows[-1][0]

    def __len__(self) -> int:
        """The number of distinct keys on disk (after a flush)."""
        self.flush()
        with self._lock:
            self._version = self._data_version()
            self._read_new_rows()
            return len(self._rowids)

    # -- writes ------------------------------------------------------------------------

    def put_many(self, items: Mapping[str, Completion] | Iterable[tuple[str, Completion]]) -> None:
        """Store completions by key; committed within `flush_interval` (see the class)."""
        pairs = items.items() if isinstance(items, Mapping) else items
        encoded = [(key, _encode(completion)) for key, completion in pairs]
        with self._lock:
            if self._closed:
                raise StoreError(f"cache {self.path} is closed; open a new JudgeCache to write")
            self._raise_writer_error()
            now = time.monotonic()
            if not self._pending:
                self._pending_since = now
                self._arm_timer()
            self._pending.update(encoded)
            if len(self._pending) >= self.batch_size or now - self._pending_since >= (
                self.flush_interval
            ):
                self._commit_pending()

    def _arm_timer(self) -> None:
        """Commit the buffer `flush_interval` from now on the caller's loop, if it runs one."""
        if self._timer is not None and not self._timer.cancelled():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next cache call after the interval commits
        self._timer = loop.call_later(self.flush_interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        with self._lock:
            if self._pending and not self._closed and self._error is None:
                # A failure is kept in `_error`: the next put, flush or close raises it.
                with contextlib.suppress(StoreError):
                    self._commit_pending()
                if self._pending:
                    self._arm_timer()

    def flush(self) -> None:
        """Commit every write made so far (a no-op when nothing is waiting)."""
        with self._lock:
            self._raise_writer_error()
            if self._pending and not self._closed:
                self._commit_pending()

    def close(self) -> None:
        """Commit what is pending and close the file."""
        with self._lock:
            if self._closed:
                return
            try:
                if self._pending and self._error is None:
                    self._commit_pending()
            finally:
                self._closed = True
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                self._conn.close()
                _OPEN_CACHES.discard(self)
            self._raise_writer_error()

    # Pickled to trainer workers as its settings: each process opens its own connection on
    # the same file (WAL lets them share it).
    def __getstate__(self) -> dict[str, Any]:
        if not self._closed:
            self.flush()  # so the copy sees everything written so far
        return {
            "path": self.path,
            "flush_interval": self.flush_interval,
            "batch_size": self.batch_size,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["path"], flush_interval=state["flush_interval"], batch_size=state["batch_size"]
        )

    def __enter__(self) -> JudgeCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _raise_writer_error(self) -> None:
        if self._error is not None:
            raise StoreError(f"cache {self.path} could not be written: {self._error}")

    def _commit_pending(self) -> None:
        """Commit the buffer in one transaction (the lock is held); a failure is kept in
        `_error` and raised now and by every later write."""
        batch, self._pending = self._pending, {}
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self._commit(batch)
        except (sqlite3.Error, OSError) as exc:
            self._error = exc
            self._raise_writer_error()

    def _commit(self, batch: dict[str, str]) -> None:
        now = time.time()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            (base,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM completions").fetchone()
            # Many rows per statement: one step of the VM per row, not one Python call.
            rows = [(key, value, now) for key, value in batch.items()]
            last = base
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                cursor = conn.execute(
                    "INSERT INTO completions (key, value, created) VALUES "
                    + ",".join(["(?, ?, ?)"] * len(chunk)),
                    [item for row in chunk for item in row],
                )
                last = cursor.lastrowid or last
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        # With the write lock held, SQLite numbers appended rows max(rowid)+1, +2, ...: the
        # keys' rows are known without reading them back. Anything else (a table at the
        # largest rowid) is read back.
        if last == base + len(rows):
            self._rowids.update(zip(batch, range(base + 1, last + 1), strict=True))
        else:  # pragma: no cover - SQLite picks random rowids only past 2**63 - 1
            self._read_new_rows()
        with _LOCAL_COMMITS_LOCK:
            before = _LOCAL_COMMITS.get(self._path_key, 0)
            _LOCAL_COMMITS[self._path_key] = before + 1
            if self._local_seen == before:  # our own commit is nothing new to look for
                self._local_seen = before + 1


def _connect(path: Path) -> sqlite3.Connection:
    # check_same_thread=False: the cache is used from whichever thread runs the event loop,
    # which need not be the one that built it; the cache's lock keeps one user at a time.
    conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@atexit.register
def _flush_open_caches() -> None:
    """Commit what open caches still buffer when the interpreter exits without closing them.

    Only caches this process opened: a forked child that exits normally must not touch the
    connection it inherited (SQLite connections do not survive a fork)."""
    pid = os.getpid()
    for cache in list(_OPEN_CACHES):
        if cache._pid == pid:
            with contextlib.suppress(Exception):
                cache.close()


# Commits by file, made by any JudgeCache of this process: another cache on the same file
# sees them at its next lookup, without waiting for `_RECHECK_SECONDS`.
_LOCAL_COMMITS: dict[str, int] = {}
_LOCAL_COMMITS_LOCK = threading.Lock()
_OPEN_CACHES: weakref.WeakSet[JudgeCache] = weakref.WeakSet()
# The pragma costs more than the rest of a lookup: taken at most every 50 ms.
_RECHECK_SECONDS = 0.05
_ROWS_PER_INSERT = 256  # 768 parameters: under SQLite's oldest default limit of 999


class CachedBackend:
    """A `Backend` that answers from a `JudgeCache` and asks its inner backend only for the rest.

    For a request with `n=k` it looks up sample indices 0..k-1 and asks the inner backend for
    just the missing ones, storing them at those indices: k=4 then k=8 costs 4 new samples.
    Failures raise and store nothing.
    """

    def __init__(self, backend: Backend, cache: JudgeCache, *, identity: str | None = None) -> None:
        self.backend = backend
        self.cache = cache
        self.model = backend.model
        self.identity = identity or backend_identity(backend)
        self.kind = getattr(backend, "kind", None) or type(backend).__name__
        self.constraint_kinds = constraint_kinds(backend)  # the inner backend's capability

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        if request.n < 1:
            raise ConfigError(f"n must be at least 1, got {request.n}")
        digest = request_digest(self.identity, request)
        keys = [sample_key(digest, i) for i in range(request.n)]
        found = self.cache.get_many(keys)
        missing = [i for i, key in enumerate(keys) if key not in found]
        if not missing:
            return [found[key] for key in keys]
        # The whole request on a full miss (the usual case): no copy to build.
        inner_request = request if len(missing) == request.n else replace(request, n=len(missing))
        if request.seed is not None and missing[0] > 0:
            # A seeded backend would replay samples 0..m-1 for the top-up; shift the seed so the
            # new samples are new draws, not copies of ones already cached.
            inner_request = replace(inner_request, seed=request.seed + missing[0])
        fresh = await self.backend.generate(inner_request)
        if len(fresh) != len(missing):
            raise BackendError(
                f"{self.identity} returned {len(fresh)} completions for n={len(missing)}"
            )
        new = {keys[i]: completion for i, completion in zip(missing, fresh, strict=True)}
        self.cache.put_many(new)
        found.update(new)
        return [found[key] for key in keys]

    async def aclose(self) -> None:
        await self.backend.aclose()

    def __getattr__(self, name: str) -> Any:
        # Anything else (e.g. capability flags a judge probes) is the inner backend's.
        if name in {"backend", "cache"}:
            raise AttributeError(name)
        return getattr(self.backend, name)
