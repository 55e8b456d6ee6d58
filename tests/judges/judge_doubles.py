"""Judge test doubles: a scripted judge that scores what it is shown (imported by tests)."""

from __future__ import annotations

import re
from collections.abc import Callable

from rewardkit.backends.base import GenerateRequest
from rewardkit.backends.mock import MockBackend

_FENCED = re.compile(r"\[BEGIN RESPONSE (\d+) (\w+)\]\n(.*?)\n\[END RESPONSE \1 \2\]", re.S)


def shown_responses(request: GenerateRequest) -> list[str]:
    """The response bodies of a judge prompt, in the order shown."""
    return [m.group(3) for m in _FENCED.finditer(request.messages[-1]["content"])]


def content_judge(score_of: Callable[[str], int], *, analysis: str = "fine") -> MockBackend:
    """A mock judge that scores each shown response by its content alone (order-blind)."""

    def answer(request: GenerateRequest, index: int) -> str:
        scores = ", ".join(str(score_of(text)) for text in shown_responses(request))
        return (
            "Specific Criteria: correctness (60%), clarity (40%).\n"
            f"Analysis: {analysis}\n"
            f"Scores: \\boxed{{{scores}}}"
        )

    return MockBackend(answer)


def keyword_score(text: str) -> int:
    """9 for a response mentioning 'good', 6 for 'ok', else 2."""
    if "good" in text:
        return 9
    if "ok" in text:
        return 6
    return 2
