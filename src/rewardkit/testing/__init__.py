"""First-class test doubles: a fake OpenAI-compatible server (the mock backend lives in
`rewardkit.backends.mock`), and `rewardkit.testing.grpo_toy`, a toy GRPO task for tests and
the CPU demo in examples/grpo. Exported lazily so importing this package starts nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rewardkit._lazy import load_lazy as _load_lazy

if TYPE_CHECKING:
    from rewardkit.testing.chat_script import Fault, count_responses, spct_reply, spct_text
    from rewardkit.testing.fake_openai import FakeOpenAI, FakeOpenAIProcess

__all__ = ["FakeOpenAI", "FakeOpenAIProcess", "Fault", "count_responses", "spct_reply", "spct_text"]


_LAZY = {
    **dict.fromkeys(__all__, "rewardkit.testing.chat_script"),
    "FakeOpenAI": "rewardkit.testing.fake_openai",
    "FakeOpenAIProcess": "rewardkit.testing.fake_openai",
}


def __getattr__(name: str) -> Any:
    return _load_lazy(__name__, _LAZY, name)
