"""SQLite cache of judge completions, so reruns and top-ups never ask the judge twice."""

from rewardkit.store.cache import (
    CachedBackend,
    JudgeCache,
    backend_identity,
    request_digest,
    sample_key,
)

__all__ = ["CachedBackend", "JudgeCache", "backend_identity", "request_digest", "sample_key"]
