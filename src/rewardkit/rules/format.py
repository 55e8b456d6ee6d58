"""Format rewards: did the response keep the shape the training recipe asks for?

Two shapes from DeepSeek-R1:

* `<think>reasoning</think>answer` — R1-Zero's format reward. Exactly one think block, at
  the start (leading whitespace allowed), followed by a non-empty answer.
* `|special_token|reasoning|special_token|summary` — R1's "readable" cold-start pattern,
  with the delimiter configurable.

Many chat templates (DeepSeek-R1, Qwen3 thinking) already emit the opening `<think>` in
the prompt, so the completion starts *inside* the block and only has the closing tag.
`opened=True` accepts that form (and still accepts a completion that repeats the opening
tag, since some templates do and some do not).

The plain functions return a `Score` of 1.0 ("ok") or 0.0 with a reason code saying what
was wrong; the `Reward` classes wrap them with their options for specs and trainers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rewardkit.errors import ConfigError
from rewardkit.reward import Reward
from rewardkit.text import THINK_CLOSE, THINK_OPEN
from rewardkit.text import split_think as _split
from rewardkit.types import Sample, Score

__all__ = [
    "SummaryFormatReward",
    "ThinkFormatReward",
    "split_think",
    "summary_format",
    "think_format",
]


@dataclass(frozen=True, slots=True)
class _Labels:
    """Reason codes for one shape, so both shapes share one parser."""

    missing: str
    multiple: str
    not_at_start: str
    unclosed: str
    empty_block: str
    empty_tail: str


_THINK_LABELS = _Labels(
    missing="missing_think",
    multiple="multiple_think",
    not_at_start="think_not_at_start",
    unclosed="unclosed_think",
    empty_block="empty_think",
    empty_tail="empty_answer",
)
_SUMMARY_LABELS = _Labels(
    missing="missing_token",
    multiple="extra_token",
    not_at_start="token_not_at_start",
    unclosed="missing_summary_token",
    empty_block="empty_reasoning",
    empty_tail="empty_summary",
)


def _check_block(
    text: str,
    open_tag: str,
    close_tag: str,
    labels: _Labels,
    *,
    opened: bool,
    allow_empty_block: bool,
) -> Score:
    """One delimited block at the start of `text`, then a non-empty tail."""
    body = text.lstrip()
    starts_open = body.startswith(open_tag)
    if open_tag == close_tag:
        # Same delimiter on both sides (|special_token|): count occurrences.
        count = body.count(open_tag)
        expected = 2 if (starts_open or not opened) else 1
        if count == 0:
            return Score(0.0, labels.missing)
        if not starts_open and not opened:
            return Score(0.0, labels.not_at_start)
        if count < expected:
            return Score(0.0, labels.unclosed)
        if count > expected:
            return Score(0.0, labels.multiple)
        inner = body[len(open_tag) :] if starts_open else body
        block, _, tail = inner.partition(close_tag)
    else:
        opens = body.count(open_tag)
        closes = body.count(close_tag)
        if opens == 0 and closes == 0:
            return Score(0.0, labels.missing)
        if opens > 1 or closes > 1:
            return Score(0.0, labels.multiple)
        if opens == 1 and not starts_open:
            return Score(0.0, labels.not_at_start)
        if opens == 0 and not opened:
            # A bare closing tag: the model never opened the block itself.
            return Score(0.0, labels.missing)
        if closes == 0:
            return Score(0.0, labels.unclosed)
        inner = body[len(open_tag) :] if starts_open else body
        block, _, tail = inner.partition(close_tag)
    if not allow_empty_block and not block.strip():
        return Score(0.0, labels.empty_block)
    if not tail.strip():
        return Score(0.0, labels.empty_tail)
    return Score(1.0, "ok")


def think_format(text: str, *, opened: bool = False, allow_empty_think: bool = False) -> Score:
    """R1's format reward: 1.0 for `<think>…</think>answer`, else 0.0 with a reason.

    `opened`: the chat template already opened `<think>`, so the text may start inside the
    block. `allow_empty_think`: accept `<think></think>` (a non-thinking mode's output).
    """
    return _check_block(
        text,
        THINK_OPEN,
        THINK_CLOSE,
        _THINK_LABELS,
        opened=opened,
        allow_empty_block=allow_empty_think,
    )


def summary_format(text: str, *, token: str = "|special_token|", opened: bool = False) -> Score:
    """R1's readable pattern `token reasoning token summary`: 1.0 if kept, else 0.0 with a reason."""
    if not token:
        raise ConfigError("summary_format: token must be a non-empty string")
    return _check_block(text, token, token, _SUMMARY_LABELS, opened=opened, allow_empty_block=False)


def split_think(text: str) -> tuple[str | None, str]:
    """(chain of thought, answer) by `rewardkit.text.split_think`'s rule, as a pair.

    The chain of thought is None when the response has no think block; the answer is the
    text after the last `</think>`, "" while a `<think>` is still open.
    """
    split = _split(text)
    return split.reasoning, "" if split.answer is None else split.answer


class ThinkFormatReward(Reward):
    """`<think>reasoning</think>answer` format reward (DeepSeek-R1-Zero), value 0 or 1."""

    name: ClassVar[str] = "think_format"
    value_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)

    def __init__(self, opened: bool = False, allow_empty_think: bool = False) -> None:
        self.opened = opened
        self.allow_empty_think = allow_empty_think

    def score(self, sample: Sample) -> Score:
        return think_format(
            sample.response, opened=self.opened, allow_empty_think=self.allow_empty_think
        )


class SummaryFormatReward(Reward):
    """`|special_token|reasoning|special_token|summary` format reward (DeepSeek-R1), 0 or 1."""

    name: ClassVar[str] = "summary_format"
    value_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)

    def __init__(self, token: str = "|special_token|", opened: bool = False) -> None:
        if not isinstance(token, str) or not token:
            raise ConfigError("summary_format: `token` must be a non-empty string")
        self.token = token
        self.opened = opened

    def score(self, sample: Sample) -> Score:
        return summary_format(sample.response, token=self.token, opened=self.opened)
