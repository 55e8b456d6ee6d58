"""R1's readability filters: each says why a completion is not fit to train on, or None.

DeepSeek-R1 kept only rejection-sampled trajectories that were readable: no mixed
languages, no overlong paragraphs, no code blocks where no code was asked for, and a
summary at the end. Every filter looks at the *whole* completion — reasoning included —
because SFT trains on the whole completion: a code block or a foreign-language passage
hidden inside `<think>` is still learned.

    reasons = readability_reasons(candidate, FilterConfig())   # [] when it passes

Reason codes: `truncated`, `missing_summary`, `language_mixing`, `overlong_paragraph`,
`code_block`. A check that cannot apply (no words to count) passes; it does not reject.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rewardkit.pipelines.sample.config import FilterConfig
from rewardkit.pipelines.sample.records import Candidate
from rewardkit.rules.format import summary_format
from rewardkit.rules.language import detect_language, language_consistency, normalize_language
from rewardkit.text import THINK_CLOSE, THINK_OPEN, split_think

__all__ = ["FILTERS", "readability_reasons"]

# A fence line: ``` or ~~~ (3 or more), closed or not. An unclosed fence still renders the
# rest of the text as code, so it counts.
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def truncated(candidate: Candidate, config: FilterConfig) -> str | None:
    if config.truncated and candidate.finish_reason == "length":
        return "truncated"
    return None


def missing_summary(candidate: Candidate, config: FilterConfig) -> str | None:
    text = candidate.completion
    if config.summary == "off":
        return None
    if config.summary == "special_token":
        result = summary_format(text, token=config.summary_token)
        return None if result.value == 1.0 else "missing_summary"
    split = split_think(text)
    if split.answer is None or not split.answer.strip():
        return "missing_summary"  # never closed its <think>, or nothing after it
    if THINK_OPEN in split.answer or THINK_CLOSE in split.answer:
        return "missing_summary"
    return None


def _parts(text: str, config: FilterConfig) -> list[str]:
    """Reasoning and summary, checked separately: mixing in a short summary must not hide
    behind a long, clean chain of thought."""
    if config.summary == "special_token" and config.summary_token in text:
        return [p for p in text.split(config.summary_token) if p.strip()]
    split = split_think(text)
    return [p for p in (split.reasoning, split.answer) if p and p.strip()]


def language_mixing(candidate: Candidate, config: FilterConfig) -> str | None:
    if config.min_language_consistency is None:
        return None
    target = config.language or detect_language(candidate.prompt_text)
    if target is None:
        return None  # the prompt's language cannot be told; nothing to hold the text to
    target = normalize_language(target)
    for part in _parts(candidate.completion, config):
        share = language_consistency(part, target)
        if share is not None and share < config.min_language_consistency:
            return "language_mixing"
    return None


def overlong_paragraph(candidate: Candidate, config: FilterConfig) -> str | None:
    if config.max_paragraph_chars is None:
        return None
    text = candidate.completion.replace(THINK_OPEN, "\n\n").replace(THINK_CLOSE, "\n\n")
    if any(len(p.strip()) > config.max_paragraph_chars for p in _PARAGRAPH_BREAK.split(text)):
        return "overlong_paragraph"
    return None


def code_block(candidate: Candidate, config: FilterConfig) -> str | None:
    if not config.code_blocks or candidate.code_task:
        return None
    return "code_block" if _FENCE.search(candidate.completion) else None


#: In the order they are applied; the first failing one is a completion's rejection reason.
FILTERS: dict[str, Callable[[Candidate, FilterConfig], str | None]] = {
    "truncated": truncated,
    "missing_summary": missing_summary,
    "language_mixing": language_mixing,
    "overlong_paragraph": overlong_paragraph,
    "code_block": code_block,
}


def readability_reasons(candidate: Candidate, config: FilterConfig) -> list[str]:
    """Every filter `candidate` fails, in `FILTERS` order ([] when readable)."""
    return [reason for check in FILTERS.values() if (reason := check(candidate, config))]
