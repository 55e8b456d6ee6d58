"""First-class test doubles: a fake OpenAI-compatible server (the mock backend lives in
`rewardkit.backends.mock`). Exported lazily so importing this package starts nothing."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rewardkit.testing.fake_openai import (
        FakeOpenAI,
        FakeOpenAIProcess,
        Fault,
        count_responses,
        spct_reply,
        spct_text,
    )

__all__ = ["FakeOpenAI", "FakeOpenAIProcess", "Fault", "count_responses", "spct_reply", "spct_text"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'rewardkit.testing' has no attribute {name!r}")
    return getattr(importlib.import_module("rewardkit.testing.fake_openai"), name)
