"""Where runs keep their state: the SQLite judge cache (reruns and top-ups never ask the
judge twice) and the resumable JSONL results (`rewardkit.store.results`)."""

from rewardkit.store.cache import (
    CachedBackend,
    JudgeCache,
    backend_identity,
    request_digest,
    sample_key,
)
from rewardkit.store.results import ResultWriter

__all__ = [
    "CachedBackend",
    "JudgeCache",
    "ResultWriter",
    "backend_identity",
    "request_digest",
    "sample_key",
]
