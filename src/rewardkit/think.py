"""Where a reasoning model's answer starts: the one rule every reward shares.

R1-style policies write `<think>…</think>` and then their answer. Rewards that judge the
answer (math, code, a helpfulness judge) look only at the text after the *last*
`</think>`; a response that opens `<think>` and never closes it has not answered yet.
"""

from __future__ import annotations

__all__ = ["THINK_CLOSE", "THINK_OPEN", "answer_part"]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def answer_part(text: str) -> str | None:
    """The text after the last `</think>`; the whole text when there is no think block;
    None while a `<think>` is still open (the model never answered)."""
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        return text[close + len(THINK_CLOSE) :]
    return None if THINK_OPEN in text else text
