r"""Math final-answer correctness: extract the final answer, check it with Math-Verify.

    math_reward("<think>... 17 ...</think> So she makes \boxed{18}.", "#### 18")
    -> Score(1.0, "correct", {"answer": "18", "extracted_by": "boxed", "reference": "18"})

Only the answer part is judged: the text after the last `</think>` (a response that
opens `<think>` and never closes it has no answer). The final answer is the *last* of:
`\boxed{...}` / `\fbox{...}` (nested braces), "The (final) answer is ...", "Answer: ...",
a line starting "A: ...", "#### ...". So "\boxed{12}. Wait, it is \boxed{13}" is 13 and
"\boxed{12}. Actually the answer is 13." is 13: the later statement wins. Only when none of
these markers appears, the fallback takes the value on the last non-empty line (its last
`$...$` span, after any "=", else its last number); `details["extracted_by"]` says
"last_number" so a strict setup can reject it.

Hedging gets no credit: when the final answer offers alternatives joined by "or" ("the
answer is 12 or 13", "\boxed{12} or \boxed{13}", "\boxed{12}. Or maybe 13.") that are not
all equal, the score is 0 with reason "hedged" — unless the reference itself is the set of
those alternatives ("x = 2 or x = 3" against "\{2, 3\}" is correct). Only alternatives that
contain a digit or a LaTeX command count, so "18 or so" is 18.

Equivalence is Math-Verify's (`parse`, then `verify(gold, pred)`, gold first: it is not
symmetric): LaTeX and plain expressions, fractions vs decimals, sets, intervals, "1,000" =
1000. Before parsing, both sides lose the noise Math-Verify trips on: math delimiters,
`\text{}`, currency signs, trailing unit words ("18 dollars"), `1\,000`.

Percent answers compare against the reference *as written*. Math-Verify on its own reads
"42%" as both 42 and 0.42 (it has no option to choose), so one answer would be right for two
references a factor of 100 apart. Here a percent answer against a reference that is not a
percent counts as its number: `\boxed{42\%}` is correct for "42" and wrong for "0.42". A
percent reference ("42%", "42\%") keeps Math-Verify's reading and accepts `42\%`, `42` and
`0.42`: there, both magnitudes name the same quantity. "42%" next to "0.42" in one final
answer is a hedge.

Every call runs in a `DeadlinePool` worker with a hard deadline (default 1 s): SymPy can
stall for minutes on a power tower, and Math-Verify's own `signal.alarm` timeout fails off
the main thread (it is switched off inside workers). A call past its deadline scores
`Score(0.0, "timeout")`; a worker that dies under an input scores `Score(0.0,
"worker_crashed")`; an answer longer than `MAX_ANSWER_CHARS` scores
`Score(0.0, "answer_too_long")` without being parsed. A missing or unparseable *reference*
is `Unscored("bad_reference")`: the data is wrong, not the policy. Missing includes what
datasets write for a missing value: NaN, "nan", "null", "None", "" and blank text (never a
gold answer, or a policy answering "nan" would be rewarded).
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rewardkit.deadline import (
    DeadlineExceeded,
    DeadlinePool,
    Outcome,
    WorkerCrashed,
    shared_pool,
)
from rewardkit.errors import ConfigError
from rewardkit.reward import Reward
from rewardkit.text import answer_part
from rewardkit.types import RewardResult, Sample, Score, Unscored

__all__ = ["MAX_ANSWER_CHARS", "MathReward", "answer_part", "extract_answer", "math_reward"]

#: A final answer longer than this is not parsed: no real final answer is, and a
#: megabyte of digits would only burn the deadline.
MAX_ANSWER_CHARS = 1_000

# Run by every worker before its first call (by the fork server once, for all workers).
_PRELOAD = ("math_verify", "rewardkit.rules.math:_warm_up")

# ---------------------------------------------------------------------------- extraction

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE_RE = re.compile(r"[{}]")
_PHRASE_RE = re.compile(
    r"\b(?:final\s+answer|answer)\b(?:\s*\*\*)?\s*(?:is\b\s*:?|:|=)(?:\s*\*\*)?[ \t]*(?P<ans>[^\n]*)",
    re.IGNORECASE,
)
_A_LINE_RE = re.compile(
    r"^[ \t]*(?:\*\*)?A(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]*(?P<ans>[^\n]*)", re.MULTILINE
)
_HASH_RE = re.compile(r"####[ \t]*(?P<ans>[^\n]*)")
# Sentence end: . ! ? before whitespace or the end (a decimal point is followed by a digit).
_SENTENCE_END_RE = re.compile(r"[.!?](?=\s|$)")
_OR_RE = re.compile(r"\\(?:text|textrm|mbox|mathrm)\{\s*or\s*\}|\bor\b", re.IGNORECASE)
# After a chosen answer: ", or 13", ". Or maybe 13", a new line starting "or ...".
_OR_TAIL_RE = re.compile(r"\s*[.,;:]?\s*(?:\*\*)?\s*(?:or)\b[ \t]*(?P<rest>[^\n]*)", re.IGNORECASE)
_MATH_SPAN_RE = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_TEXT_CMD_RE = re.compile(
    r"\\(?:text|textrm|textbf|textit|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}"
)
_NUMBER_RE = re.compile(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?(?:\s*\\?%)?")
_THIN_THOUSANDS_RE = re.compile(r"(?<=\d)(?:\\,|\\;|\\!|\{,\}|~)(?=\d{3}(?!\d))")
_LEADING_WORDS_RE = re.compile(
    r"^(?:[A-Za-z][A-Za-z']*[ \t]+)+(?=[-+(\[\d.]|\\(?:frac|dfrac|tfrac|sqrt|pi)\b)"
)
_TRAILING_UNIT_RE = re.compile(
    r"^(?P<value>[-+]?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?(?:\s*\\?%)?)\s+(?P<unit>[A-Za-z][A-Za-z .'/-]*(?:\^\{?\d\}?)?)$"
)
# Words that may follow a number but are not units: mathematics, or a second answer.
_NOT_UNITS = {"pi", "sqrt", "log", "ln", "sin", "cos", "tan", "exp", "mod", "i", "e", "or", "and"}
_CURRENCY_RE = re.compile(r"\\\$|\$|US\$|USD|€|£|¥|\\euro")


@dataclass(frozen=True, slots=True)
class _Found:
    """A located final answer: its text, how it was found, and the alternatives it
    offers when it hedges ("12 or 13" -> ("12", "13")); one alternative means no hedge."""

    text: str
    source: str
    alternatives: tuple[str, ...]


def extract_answer(text: str) -> str | None:
    r"""The final answer in a model response, cleaned for parsing, or None.

    See the module docstring for the forms found and their order. The fallback — the
    value on the last line — applies only when no answer marker appears at all.
    """
    part = answer_part(text)
    found = None if part is None else _find_answer(part)
    return None if found is None else found.text


def _boxed_spans(text: str) -> list[tuple[int, int, int]]:
    """Top-level `\\boxed{...}` spans as (start, content start, end after "}").

    One linear pass over the braces after the first box: 10k nested braces cost one
    scan, not one scan per box. An unclosed box is ignored.
    """
    starts = list(_BOXED_RE.finditer(text))
    if not starts:
        return []
    spans: list[tuple[int, int, int]] = []
    next_box = 0
    open_boxes: list[tuple[int, re.Match[str]]] = []  # (depth of its brace, match)
    depth = 0
    for brace in _BRACE_RE.finditer(text, starts[0].end() - 1):
        pos = brace.start()
        if text[pos] == "{":
            depth += 1
            while next_box < len(starts) and starts[next_box].end() - 1 < pos:
                next_box += 1
            if next_box < len(starts) and starts[next_box].end() - 1 == pos:
                open_boxes.append((depth, starts[next_box]))
                next_box += 1
        else:
            if open_boxes and open_boxes[-1][0] == depth:
                _, box = open_boxes.pop()
                if not open_boxes:
                    spans.append((box.start(), box.end(), pos + 1))
            depth = max(depth - 1, 0)
    return spans


def _first_sentence(text: str) -> str:
    match = _SENTENCE_END_RE.search(text)
    return text if match is None else text[: match.start()]


def _clean(text: str) -> str:
    """Strip the noise Math-Verify trips on from an answer string."""
    text = text.strip().replace("**", "")
    text = text.replace("\\$", "")  # an escaped dollar is always currency
    spans = list(_MATH_SPAN_RE.finditer(text))
    if spans:
        last = spans[-1]
        text = next(g for g in last.groups() if g is not None)
    text = _TEXT_CMD_RE.sub(r" \1 ", text)
    text = _CURRENCY_RE.sub("", text)
    text = _THIN_THOUSANDS_RE.sub("", text)
    text = text.strip().rstrip(".,;:!?").strip()
    text = _LEADING_WORDS_RE.sub("", text)
    match = _TRAILING_UNIT_RE.match(text)
    if match and match["unit"].split()[0].lower() not in _NOT_UNITS:
        text = match["value"]
    text = re.sub(r"(?<!\\)%", r"\\%", text)
    return " ".join(text.split())


def _last_value(line: str) -> str | None:
    """The value a bare line ends on: its last math span (after any "="), else its last number."""
    spans = list(_MATH_SPAN_RE.finditer(line))
    if spans:
        inner = next(g for g in spans[-1].groups() if g is not None)
        return _clean(inner.rsplit("=", 1)[-1])
    numbers = list(_NUMBER_RE.finditer(line))
    return _clean(numbers[-1].group()) if numbers else None


def _counts(alternative: str) -> bool:
    """Only alternatives that look like values make a hedge ("18 or so" does not)."""
    return any(ch.isdigit() or ch == "\\" for ch in alternative)


def _split_or(text: str, clean: Callable[[str], str] = _clean) -> list[str]:
    """The values `text` offers, split at "or"; those that are not values are dropped."""
    parts = [clean(p) for p in _OR_RE.split(text)] if _OR_RE.search(text) else [clean(text)]
    return [p for p in parts if p and _counts(p)]


def _find_answer(text: str) -> _Found | None:
    """Locate the final answer in the answer part of a response."""
    # (start, end, raw answer text, source); the candidate that starts last wins.
    candidates: list[tuple[int, int, str, str]] = []
    boxes = _boxed_spans(text)
    if boxes:
        start, content, end = boxes[-1]
        candidates.append((start, end, text[content : end - 1], "boxed"))
    for regex, source in ((_PHRASE_RE, "answer_is"), (_A_LINE_RE, "answer_is"), (_HASH_RE, "####")):
        last = None
        for last in regex.finditer(text):  # noqa: B007 - only the last match matters
            pass
        if last is None:
            continue
        begin, raw = last.start("ans"), last["ans"]
        if not raw.strip():  # "Answer:\n18": the answer is on the next non-empty line
            rest = text[last.end() :].lstrip("\n")
            begin = last.end() + (len(text) - last.end() - len(rest))
            raw = rest.split("\n", 1)[0]
        raw = _first_sentence(raw)
        candidates.append((last.start(), begin + len(raw), raw, source))
    if candidates:
        start, end, raw, source = max(candidates)
        if len(raw) > MAX_ANSWER_CHARS:
            return _Found(raw, source, (raw,))
        own = _split_or(raw)  # "18 or so" -> ["18"]; "12 or 13" -> ["12", "13"]
        answer = own[0] if len(own) == 1 else _clean(raw)
        chain = _boxed_chain(text, boxes) if source == "boxed" else []
        alternatives = chain + own + _or_tail(text, end)
        if len(alternatives) <= 1:
            return _Found(answer, source, (answer,))
        return _Found(answer, source, tuple(alternatives))
    return _fallback(text)


def _boxed_chain(text: str, boxes: list[tuple[int, int, int]]) -> list[str]:
    """Earlier boxes on the same line joined to the last one by "or" (a hedge)."""
    chain: list[str] = []
    for (_, content, end), (nxt_start, _, _) in zip(
        reversed(boxes[:-1]), reversed(boxes[1:]), strict=True
    ):
        between = text[end:nxt_start]
        if "\n" in between or not _OR_RE.search(between):
            break
        chain.insert(0, _clean(text[content : end - 1]))
    return [c for c in chain if c and _counts(c)]


def _or_tail(text: str, end: int) -> list[str]:
    """An alternative offered right after the answer: "..., or 13" / ". Or maybe 13."."""
    match = _OR_TAIL_RE.match(text, end)
    if match is None:
        return []
    boxes = _boxed_spans(match["rest"])
    if boxes:
        _, content, stop = boxes[0]
        value: str | None = _clean(match["rest"][content : stop - 1])
    else:
        value = _last_value(_first_sentence(match["rest"]))
    return [value] if value and _counts(value) else []


def _fallback(text: str) -> _Found | None:
    """No answer marker: the value on the last line that has any letter or digit."""
    line = next((ln for ln in reversed(text.splitlines()) if any(ch.isalnum() for ch in ln)), None)
    if line is None:
        return None
    if len(line) > MAX_ANSWER_CHARS:
        return _Found(line, "last_number", (line,))
    value = _last_value(line)
    if not value:
        return None
    alternatives = _split_or(line, clean=lambda part: _last_value(part) or "")
    return _Found(value, "last_number", tuple(alternatives) if len(alternatives) > 1 else (value,))


# ---------------------------------------------------------------------------- verification


#: References that stand for a missing value (pandas writes NaN, `str(None)` gives "None"):
#: not gold answers, or a policy answering "nan" would be rewarded.
_MISSING_REFERENCES = frozenset({"nan", "null", "none"})
_PERCENT_END_RE = re.compile(r"\s*\\%$")


def _reference_text(reference: Any) -> str | None:
    """The gold answer as text: GSM8K "... #### 72", a bare value, LaTeX, a box, a dict."""
    if isinstance(reference, Mapping):
        reference = reference.get("answer")
    if isinstance(reference, bool) or reference is None:
        return None
    if isinstance(reference, float) and math.isnan(reference):
        return None
    if isinstance(reference, int | float):
        reference = repr(reference)
    if not isinstance(reference, str):
        return None
    text = reference
    if "####" in text:
        text = text.rsplit("####", 1)[1].split("\n", 1)[0]
    boxes = _boxed_spans(text)
    if boxes:
        _, content, end = boxes[-1]
        text = text[content : end - 1]
    text = _clean(text)
    if text.lower() in _MISSING_REFERENCES:
        return None
    return text or None


def _as_written(answer: str, gold_text: str) -> str:
    """An answer's number with any percent sign dropped (`_gold_for` decides what it means).

    Math-Verify reads "42%" as both 42 and 0.42, and how it reads it depends on the ANTLR
    runtime installed (4.9 beside verl's hydra, 4.13 otherwise), so percents never reach it.
    """
    return _PERCENT_END_RE.sub("", answer)


def _gold_for(answer: str, gold_text: str) -> tuple[Any, ...]:
    """The gold values an answer may equal. A percent reference ("42\\%") accepts the bare
    42 or 0.42 (both name the quantity) but a percent answer only as 42\\%; a percent answer
    against a plain reference counts as its number (`\\boxed{42\\%}` is right for "42",
    wrong for "0.42")."""
    if not _PERCENT_END_RE.search(gold_text):
        return _parse_gold(gold_text)
    number = _PERCENT_END_RE.sub("", gold_text)
    if _PERCENT_END_RE.search(answer):
        return _parse_gold(number)
    return _parse_gold(number) + _parse_gold("\\frac{" + number + "}{100}")


_warning_filter_installed = False


def _math_verify() -> Any:
    """Import Math-Verify (workers only). Its "timeout is disabled" warning is expected
    here: the deadline pool is the timeout."""
    global _warning_filter_installed
    import math_verify

    if not _warning_filter_installed:
        for name in ("math_verify.parser", "math_verify.grader"):
            logging.getLogger(name).addFilter(
                lambda record: "Timeout is disabled" not in record.getMessage()
            )
        _warning_filter_installed = True
    return math_verify


def _parse(text: str) -> list[Any]:
    # Boxing makes Math-Verify read the whole string as one answer, at top priority.
    mv = _math_verify()
    return list(mv.parse("\\boxed{" + text + "}", parsing_timeout=None))


@functools.lru_cache(maxsize=4096)
def _parse_gold(text: str) -> tuple[Any, ...]:
    # GRPO scores k completions per prompt: the same reference k times in a row.
    return tuple(_parse(text))


def _verify(gold: Sequence[Any], pred: Sequence[Any]) -> bool:
    return bool(_math_verify().verify(list(gold), list(pred), timeout_seconds=None))


def _score(part: str | None, reference: Any) -> RewardResult:
    """Score one answer part against one reference, in this process, without a deadline."""
    gold_text = _reference_text(reference)
    if gold_text is None:
        return Unscored(
            "bad_reference",
            "reference is missing (empty, null or NaN): there is no answer to check against",
            repr(reference)[:200],
        )
    gold = _parse_gold(gold_text)
    if not gold:
        return Unscored(
            "bad_reference", f"cannot parse the reference answer {gold_text!r}", gold_text
        )
    found = None if part is None else _find_answer(part)
    if found is None or not found.text:
        return Score(0.0, "no_answer", {"reference": gold_text})
    details: dict[str, Any] = {
        "answer": found.text[:MAX_ANSWER_CHARS],
        "extracted_by": found.source,
        "reference": gold_text,
    }
    if len(found.text) > MAX_ANSWER_CHARS:
        return Score(0.0, "answer_too_long", details)
    answer = found.text
    if len(found.alternatives) > 1:
        parsed = [p for p in (_parse(_as_written(a, gold_text)) for a in found.alternatives) if p]
        if any(not _verify(parsed[0], other) for other in parsed[1:]):
            details["alternatives"] = list(found.alternatives)
            joined = _parse(", ".join(_as_written(a, gold_text) for a in found.alternatives))
            if joined and _verify(gold, joined):  # the reference is that set of values
                return Score(1.0, "correct", details)
            return Score(0.0, "hedged", details)
        answer = found.alternatives[0]  # "1/2 or 0.5": one value said twice
    pred = _parse(_as_written(answer, gold_text))
    if pred and _verify(_gold_for(answer, gold_text), pred):
        return Score(1.0, "correct", details)
    return Score(0.0, "wrong", details)


def _score_item(item: tuple[str | None, Any]) -> RewardResult:
    """What a worker runs: one (answer part, reference) pair."""
    return _score(*item)


def _warm_up() -> None:
    """A preload entry, run once by the fork server: a cold process spends ~0.5-1 s in its
    first comparisons building ANTLR and SymPy caches, which every worker forked from the
    server inherits warm."""
    _score("\\boxed{x^2+1}", "\\frac{1}{2}")
    _score("The answer is (1, 2]", "\\{2, 3\\}")
    _score("The answer is $x = 2$ or $x = 3$, so 1,000.", "#### 1000")


# ---------------------------------------------------------------------------- public API


def _from_outcome(outcome: Outcome[RewardResult]) -> RewardResult:
    """A pool outcome as a reward result: deadlines and crashes are the input's fault."""
    error = outcome.error
    if error is None:
        assert outcome.value is not None
        return outcome.value
    if isinstance(error, DeadlineExceeded):
        return Score(0.0, "timeout", {"timeout": error.timeout})
    if isinstance(error, WorkerCrashed):
        return Score(0.0, "worker_crashed", {"error": str(error)})
    return Unscored("error", f"{type(error).__name__}: {error}")


def _check_options(timeout: float, workers: int | None) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigError(f"math: timeout must be a positive number of seconds, got {timeout!r}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ConfigError(f"math: workers must be a positive integer or null, got {workers!r}")


def _item(response: str, reference: Any) -> tuple[str | None, Any]:
    # Strip the think block here, not in the worker: it is most of the text to pickle.
    return (answer_part(response) if isinstance(response, str) else "", reference)


def _score_one(pool: DeadlinePool, response: str, reference: Any, timeout: float) -> RewardResult:
    try:
        value = pool.run(_score_item, _item(response, reference), timeout=timeout)
    except Exception as exc:
        return _from_outcome(Outcome(error=exc))
    return _from_outcome(Outcome(value=value))


def math_reward(response: str, reference: Any, *, timeout: float = 1.0) -> RewardResult:
    r"""Is the final answer of `response` equal to `reference`? Runs under a hard deadline.

    `reference`: "72", "#### 72" or a whole GSM8K solution, "\frac{1}{2}", "$x=3$",
    "\boxed{...}", a number, or a dict with an "answer" key. Returns `Score(1.0,
    "correct")`, `Score(0.0, reason)` with reason "wrong", "hedged", "no_answer",
    "answer_too_long", "timeout" or "worker_crashed", or `Unscored("bad_reference")`.
    Uses the process-wide `shared_pool()`.
    """
    _check_options(timeout, None)
    return _score_one(shared_pool(_PRELOAD), response, reference, timeout)


_pool_lock = threading.Lock()


class MathReward(Reward):
    """Final-answer correctness, 1.0 or 0.0 (see the module docstring).

    `timeout`: hard deadline per sample, in seconds. `workers`: size of a pool of its
    own; None (the default) shares the process-wide pool with every other rule reward.
    """

    name = "math"
    value_range = (0.0, 1.0)

    def __init__(self, timeout: float = 1.0, workers: int | None = None) -> None:
        _check_options(timeout, workers)
        self.timeout = float(timeout)
        self.workers = workers
        self._pool: DeadlinePool | None = None

    def _get_pool(self) -> DeadlinePool:
        if self.workers is None:
            return shared_pool(_PRELOAD)
        with _pool_lock:
            if self._pool is None or self._pool.closed:
                self._pool = DeadlinePool(self.workers, preload=_PRELOAD)
            return self._pool

    def score(self, sample: Sample) -> RewardResult:
        return _score_one(self._get_pool(), sample.response, sample.reference, self.timeout)

    def score_batch(self, samples: Sequence[Sample]) -> list[RewardResult]:
        items = [_item(s.response, s.reference) for s in samples]
        outcomes = self._get_pool().map(_score_item, items, timeout=self.timeout)
        return [_from_outcome(o) for o in outcomes]

    def warm_up(self) -> None:
        """Start every worker now and run one comparison in each, instead of on the first batch.

        The first start imports Math-Verify and builds its parser caches (seconds on a busy
        machine); a server calls this before it accepts requests, so its first batch does
        not time out on a cold pool.
        """
        pool = self._get_pool()
        items = [_item("\\boxed{1}", "1")] * pool.workers
        pool.map(_score_item, items, timeout=max(self.timeout, 10.0), chunksize=1)

    def close(self) -> None:
        """Stop this reward's own pool (the shared pool lives until exit)."""
        with _pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # A pool is per process: pickling keeps the options and rebuilds the pool lazily.
    def __getstate__(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "workers": self.workers}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.timeout = state["timeout"]
        self.workers = state["workers"]
        self._pool = None

    def __repr__(self) -> str:
        return f"MathReward(timeout={self.timeout:g}, workers={self.workers})"
