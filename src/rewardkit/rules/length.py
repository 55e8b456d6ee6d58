"""Length and repetition shaping: penalties in [-something, 0] added to a task reward.

* Overlong penalty — DAPO's soft overlong punishment (Eq. 13): no penalty up to
  `max_length - buffer_length`, a linear ramp to `-penalty_factor` over the buffer, and
  `-penalty_factor` beyond `max_length`. Same numbers as TRL's `get_soft_overlong_punishment`
  (`max_completion_len`, `soft_punish_cache`) and verl's `overlong_buffer` config
  (`len`, `penalty_factor`).
* Repetition penalty — open-r1's `get_repetition_penalty_reward` ("Demystifying Long CoT",
  App. C.2): `(1 - unique n-grams / total n-grams) * max_penalty`, in `[max_penalty, 0]`.

Length unit: without a tokenizer, length is counted in characters (`unit="chars"`, the
default) or whitespace words (`unit="words"`); give `tokenizer` (a Hugging Face name or
local path, loaded lazily, or a tokenizer object) to count tokens as the trainer does. The
max length must be in the same unit.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from rewardkit.errors import ConfigError, MissingDependencyError
from rewardkit.reward import Reward
from rewardkit.rules.language import CJK_CHAR
from rewardkit.types import Sample, Score

__all__ = [
    "OverlongPenaltyReward",
    "RepetitionPenaltyReward",
    "overlong_penalty",
    "repetition_penalty",
]

LengthUnit = Literal["chars", "words", "tokens"]

# Both penalties are never positive; their floor depends on the options.
_NON_POSITIVE = (float("-inf"), 0.0)


def overlong_penalty(
    length: int, *, max_length: int, buffer_length: int, penalty_factor: float = 1.0
) -> float:
    """DAPO soft overlong punishment for a response of `length` units."""
    threshold = max_length - buffer_length
    if length <= threshold:
        return 0.0
    if length > max_length:
        return -penalty_factor
    return (threshold - length) / buffer_length * penalty_factor


# Han, kana and Hangul characters each count as one word (no segmenter needed), so a
# Chinese run is not one giant "word" that hides its repetition. The same character class
# the language rule counts words with.


def _repetition_units(text: str) -> list[str]:
    words: list[str] = []
    for word in text.lower().split():
        if CJK_CHAR.search(word):
            # Split mixed tokens into CJK characters and the Latin pieces between them.
            words.extend(piece for piece in re.split(f"({CJK_CHAR.pattern})", word) if piece)
        else:
            words.append(word)
    return words


def repetition_penalty(text: str, *, ngram_size: int = 3, max_penalty: float = -1.0) -> float:
    """open-r1's n-gram repetition penalty of `text`, in `[max_penalty, 0]`.

    Words are the lower-cased whitespace split, as in open-r1's English mode; CJK characters
    each count as a word. Texts shorter than `ngram_size` words get 0.
    """
    words = _repetition_units(text)
    if len(words) < ngram_size:
        return 0.0
    ngrams = list(zip(*(words[i:] for i in range(ngram_size)), strict=False))
    scaling = 1 - len(set(ngrams)) / len(ngrams)
    return scaling * max_penalty if scaling else 0.0


class OverlongPenaltyReward(Reward):
    """DAPO soft overlong punishment; value in `[-penalty_factor, 0]`."""

    name: ClassVar[str] = "overlong_penalty"
    value_range: ClassVar[tuple[float, float] | None] = _NON_POSITIVE

    def __init__(
        self,
        max_length: int,
        buffer_length: int,
        penalty_factor: float = 1.0,
        unit: LengthUnit | None = None,
        tokenizer: str | Any | None = None,
    ) -> None:
        if not isinstance(max_length, int) or max_length <= 0:
            raise ConfigError(
                f"overlong_penalty: max_length must be a positive integer, got {max_length!r}"
            )
        if not isinstance(buffer_length, int) or not 0 < buffer_length <= max_length:
            raise ConfigError(
                f"overlong_penalty: buffer_length must be an integer in (0, max_length], got {buffer_length!r}"
            )
        if penalty_factor < 0:
            raise ConfigError(
                f"overlong_penalty: penalty_factor must be >= 0, got {penalty_factor!r}"
            )
        resolved = unit or ("tokens" if tokenizer is not None else "chars")
        if resolved not in ("chars", "words", "tokens"):
            raise ConfigError(
                f"overlong_penalty: unit must be chars, words or tokens, got {unit!r}"
            )
        if resolved == "tokens" and tokenizer is None:
            raise ConfigError("overlong_penalty: unit 'tokens' needs a `tokenizer` (name or path)")
        if resolved != "tokens" and tokenizer is not None:
            raise ConfigError(f"overlong_penalty: a tokenizer counts tokens; drop unit={unit!r}")
        self.max_length = max_length
        self.buffer_length = buffer_length
        self.penalty_factor = float(penalty_factor)
        self.unit: LengthUnit = resolved
        self.tokenizer = tokenizer
        self._tokenizer: Any = None if isinstance(tokenizer, str) else tokenizer

    def __getstate__(self) -> dict[str, Any]:
        # A tokenizer loaded by name is reloaded in the worker rather than pickled.
        state = self.__dict__.copy()
        if isinstance(self.tokenizer, str):
            state["_tokenizer"] = None
        return state

    def _load_tokenizer(self) -> Any:
        if self._tokenizer is None:
            try:
                from transformers import AutoTokenizer
            except ImportError as exc:
                raise MissingDependencyError(
                    "transformers", "hf", "token-length penalties"
                ) from exc
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer)
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"overlong_penalty: cannot load tokenizer {self.tokenizer!r}: {exc}"
                ) from exc
        return self._tokenizer

    def length(self, text: str) -> int:
        """Length of `text` in this reward's unit."""
        if self.unit == "chars":
            return len(text)
        if self.unit == "words":
            return len(text.split())
        return len(self._load_tokenizer().encode(text, add_special_tokens=False))

    def score(self, sample: Sample) -> Score:
        n = self.length(sample.response)
        value = overlong_penalty(
            n,
            max_length=self.max_length,
            buffer_length=self.buffer_length,
            penalty_factor=self.penalty_factor,
        )
        if value == 0.0:
            reason = "ok"
        elif n > self.max_length:
            reason = "overlong"
        else:
            reason = "in_buffer"
        return Score(value, reason, {"length": n, "unit": self.unit})


class RepetitionPenaltyReward(Reward):
    """open-r1 n-gram repetition penalty; value in `[max_penalty, 0]`."""

    # A picklable class, not a closure: trainers ship reward functions to worker
    # processes (TRL's async GRPO rollout spawns one), and closures cannot be pickled.
    name: ClassVar[str] = "repetition_penalty"
    value_range: ClassVar[tuple[float, float] | None] = _NON_POSITIVE

    def __init__(self, ngram_size: int = 3, max_penalty: float = -1.0) -> None:
        if not isinstance(ngram_size, int) or ngram_size < 1:
            raise ConfigError(
                f"repetition_penalty: ngram_size must be a positive integer, got {ngram_size!r}"
            )
        if max_penalty > 0:
            raise ConfigError(f"repetition_penalty: max_penalty must be <= 0, got {max_penalty!r}")
        self.ngram_size = ngram_size
        self.max_penalty = float(max_penalty)

    def score(self, sample: Sample) -> Score:
        value = repetition_penalty(
            sample.response, ngram_size=self.ngram_size, max_penalty=self.max_penalty
        )
        return Score(value, "ok" if value == 0.0 else "repetitive")
