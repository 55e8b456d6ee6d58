"""Exact and near-duplicate completions of one prompt.

Exact: equal after normalisation (case folded, whitespace collapsed). Near: the Jaccard
similarity of their character shingles reaches a threshold. Groups are one prompt's n
completions (tens at most), so comparing every pair is exact and cheap; MinHash
(`datasketch`) would only pay across a whole corpus, which is not what a rejection
sampler's duplicates look like.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

from rewardkit.pipelines.sample.config import DedupConfig

__all__ = ["duplicates", "jaccard", "normalise", "shingles"]

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC, case folded, every run of whitespace one space, trimmed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def shingles(text: str, n: int) -> frozenset[str]:
    """Character n-grams of the normalised text (the text itself when shorter than n)."""
    norm = normalise(text)
    if len(norm) <= n:
        return frozenset([norm])
    return frozenset(norm[i : i + n] for i in range(len(norm) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def duplicates(texts: Sequence[str], config: DedupConfig) -> list[tuple[int, str] | None]:
    """For each text, (index of the earlier text it duplicates, "duplicate"/"near_duplicate"),
    or None when it is the first of its kind. Order `texts` best first: the first copy stays."""
    out: list[tuple[int, str] | None] = []
    kept: list[int] = []
    digests: dict[str, int] = {}
    grams = [shingles(t, config.ngram) for t in texts] if config.near_threshold is not None else []
    for i, text in enumerate(texts):
        found: tuple[int, str] | None = None
        if config.exact:
            digest = hashlib.sha256(normalise(text).encode()).hexdigest()
            if digest in digests:
                found = (digests[digest], "duplicate")
            else:
                digests[digest] = i
        if found is None and config.near_threshold is not None:
            for j in kept:
                if jaccard(grams[i], grams[j]) >= config.near_threshold:
                    found = (j, "near_duplicate")
                    break
        out.append(found)
        if found is None:
            kept.append(i)
    return out
