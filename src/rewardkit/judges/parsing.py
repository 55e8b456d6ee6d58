"""Reading a verdict out of judge text: the judge's own last verdict line, never a guessed 0.

A pointwise verdict is a `\\boxed{s1, ..., sn}` with exactly n integers in 1-10; a pairwise
one is `[[1]]` or `[[2]]`. Responses are untrusted and the judge may quote them, so the rule
rests on the *structure* of the judge's output, never on what a response contains:

1. Reasoning is the judge's own leading `<think>` block (or, for a prompt that pre-filled
   `<think>`, everything up to a first `</think>` at a line edge with no `<think>` before
   it). It ends at the first `</think>` that is not quoted on its line nor inside an echoed
   response; think tags anywhere else are quoted text, so a stray `<think>` in a response
   cannot make the output `unterminated_think`.
2. A verdict line starts with its label at the start of a line — `Scores:` (pointwise) or
   `Verdict:` (pairwise), any case, a full-width colon allowed — where the only decoration
   allowed is markdown emphasis around the label (`**Scores:**`, `__Scores__:`) and a heading
   mark (`### Scores:`); the box follows directly, optionally wrapped in `$`, backticks,
   quote marks or `\\(`. One box per response (`Scores: \\boxed{8}, \\boxed{3}`) also
   counts, and so does a bare label line with the box alone on the next non-blank line.
   Text after the box on the line is commentary. A box anywhere else (`Response 1 ends with
   Scores: \\boxed{10}`, a math answer's `\\boxed{3}`) is never a verdict.
3. Verdict lines inside text the judge copied from a response are not the judge's: between
   our fences (the per-request nonce), in a `>` blockquote, in a closed fenced code block, or
   in a run of two or more lines that reproduces a response from its first line (the verdict
   line not being that first line). Only there is the response text compared at all, so a
   response that holds every possible verdict line (`Scores: \\boxed{1}` ... `\\boxed{10}`)
   cannot void the judge's honest verdict.
4. The verdict is the last valid verdict line that remains.

Scores are read after NFKC normalisation and must then be ASCII integers: full-width digits
(`８`, what CJK-tuned judges write) count, digits of other scripts (`٨`) do not.

When nothing valid remains it returns an error code — `no_verdict`, `echoed_verdict`,
`wrong_count`, `out_of_range`, `not_integer`, `empty_verdict`, `unterminated_think` (the
judge adds `truncated` when max_tokens cut the output) — and the caller keeps the raw text.

Residual, on purpose: a judge that writes a response's verdict line as a plain line of its
own, with no quoting and no verdict of its own after it, is taken at its word. Telling that
apart from an honest verdict would mean comparing every verdict line with the responses,
which is exactly what lets a response void honest verdicts.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from rewardkit.judges.templates import BEGIN_FENCE, end_marker
from rewardkit.text import THINK_CLOSE, THINK_OPEN

__all__ = [
    "ParsedJudgment",
    "ParsedPreference",
    "extract_sections",
    "parse_judgment",
    "parse_preference",
    "split_reasoning",
]

SCORE_MIN, SCORE_MAX = 1, 10

_BOXED = re.compile(r"\\boxed[ \t]*\{([^{}\n]*)\}")
_PREFERENCE = re.compile(r"\[\[[ \t]*([12１２])[ \t]*\]\]")
_EMPH = r"(?:\*\*|__|\*|_)?"


@dataclass(frozen=True, slots=True)
class _LineStarts:
    """A pattern that only matches at the start of a line, found without trying every
    position: `^` under re.MULTILINE makes re attempt a match at each character, while a
    leading `\n` is a literal prefix that re skips to directly. The first line, which has
    no `\n` before it, is matched on its own. The pattern must not end in a newline."""

    first: re.Pattern[str]
    rest: re.Pattern[str]

    @classmethod
    def compile(cls, body: str, opening: str, flags: int = 0) -> _LineStarts:
        """`opening`: a character class holding every character the pattern can start
        with, checked first (re is slow to fail a long pattern on an ordinary line)."""
        rest = rf"\n(?={opening})(?:{body})"
        return cls(re.compile(rf"(?:{body})", flags), re.compile(rest, flags))

    def find(self, text: str) -> list[tuple[int, re.Match[str]]]:
        """(line start, match) of every match, in order: what `finditer` of `^body` under
        re.MULTILINE finds (the match of a later line starts at its `\n`)."""
        head = self.first.match(text)
        found = [] if head is None else [(0, head)]
        found.extend(
            (match.start() + 1, match)
            for match in self.rest.finditer(text, 0 if head is None else head.end())
        )
        return found


def _label(word: str) -> _LineStarts:
    """A verdict label at the start of a line: emphasis around the word and a heading mark
    are the only decoration (one rule for both judges). A `>` blockquote marker before it is
    read past here and judged as a quotation later."""
    return _LineStarts.compile(
        rf"(?:[ \t]*>)*+[ \t]*(?:#{{1,6}}[ \t]+)?{_EMPH}{word}{_EMPH}[ \t]*[:：]{_EMPH}",
        rf"[ \t>#*_{word[0]}]",
        re.IGNORECASE,
    )


_SCORES_LABEL = _label("scores?")
_VERDICT_LABEL = _label("verdict")
# What may sit between the label and the box, and between one-per-response boxes: spaces,
# separators and the wrappers a judge puts around maths or code ($, `, ", **, \( \[).
_GLUE = re.compile(r"(?:[ \t\r$`\"*_,;，；、]|\\[()\[\]])*")
_BLOCKQUOTE = re.compile(r"(?:[ \t]*>)*")
_CODE_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})", re.MULTILINE)
_SEPARATORS = re.compile(r"[,;、，；]")  # full-width commas from CJK-tuned judges
_INT = re.compile(r"[+]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)")
_SECTION = _LineStarts.compile(
    r"[\s*#_]*(?P<name>specific criteria|principles?|analysis|critiques?|scores?|verdict)\s*[*_]*\s*[:：]",
    r"[\s*#_spacv]",
    re.IGNORECASE,
)
_XML_SECTIONS = {
    "principles": re.compile(r"<specific_criteria>(.*?)</specific_criteria>", re.DOTALL),
    "critique": re.compile(r"<analysis>(.*?)</analysis>", re.DOTALL),
}
_XML_OPEN = {"principles": "<specific_criteria>", "critique": "<analysis>"}
_MARKUP = str.maketrans("", "", "*_`#>")


@dataclass(frozen=True, slots=True)
class ParsedJudgment:
    """The verdict of one judge output, in the order the responses were *shown*."""

    scores: tuple[int, ...] | None
    error: str | None
    reasoning: str | None
    principles: str | None
    critique: str | None
    #: (start, end) character offsets in the full text of each score of the verdict; used to
    #: find the score tokens in the logprobs.
    spans: tuple[tuple[int, int], ...] | None = None


def split_reasoning(text: str, nonce: str | None = None) -> tuple[str | None, str, int, bool]:
    """(reasoning, verdict_text, offset of verdict_text in text, terminated).

    Only the judge's own think block counts: a leading `<think>` (after whitespace), or for
    a prompt that pre-filled `<think>`, a `</think>` with no `<think>` before it that begins
    or ends its line (as a model's own close does; "has a stray </think> in it" is prose).
    The block ends at the first `</think>` not quoted on its line (backticks, quote marks)
    nor inside a response echoed between `nonce` fences. Tags elsewhere are quoted text:
    output that does not open with `<think>` and holds no such `</think>` has no reasoning.
    """
    lead = len(text) - len(text.lstrip())
    leading = text.startswith(THINK_OPEN, lead)
    start = lead + len(THINK_OPEN) if leading else 0
    close = _own_close(text, start, nonce, alone=not leading)
    if close is None or (not leading and THINK_OPEN in text[:close]):
        if leading:
            return text[start:].strip(), "", len(text), False
        return None, text, 0, True
    offset = close + len(THINK_CLOSE)
    return text[start:close].strip(), text[offset:], offset, True


def _own_close(text: str, start: int, nonce: str | None, alone: bool) -> int | None:
    """Where the judge's own `</think>` is: the first one not quoted (see split_reasoning);
    with `alone`, also the first to begin or end its line, as a model's own close does."""
    if THINK_CLOSE not in text:
        return None
    # Only closed echoes: an echo left open would otherwise hide the judge's real close.
    echoes = [
        (a, b) for a, b in (_echo_spans(text, nonce) if nonce is not None else []) if b < len(text)
    ]
    at = text.find(THINK_CLOSE, start)
    while at >= 0:
        line_start = max(text.rfind("\n", 0, at) + 1, start)
        line_end = text.find("\n", at)
        after = text[at + len(THINK_CLOSE) : len(text) if line_end < 0 else line_end]
        before = text[line_start:at]
        on_edge = not before.strip() or not after.strip()
        if (
            not _quoted(before)
            and (on_edge or not alone)
            and not any(a <= at < b for a, b in echoes)
        ):
            return at
        at = text.find(THINK_CLOSE, at + 1)
    return None


def extract_sections(verdict_text: str) -> tuple[str | None, str | None]:
    """(principles, critique): the `Specific Criteria:` and `Analysis:` parts, if present."""
    found: dict[str, str] = {}
    for key, pattern in _XML_SECTIONS.items():
        # A substring test first: most judges write no XML sections, and `in` is a memchr.
        match = pattern.search(verdict_text) if _XML_OPEN[key] in verdict_text else None
        if match:
            found[key] = match.group(1).strip()
    heads = _SECTION.find(verdict_text)
    for i, (_, head) in enumerate(heads):
        name = head.group("name").lower()
        if name.startswith(("specific", "principle")):
            section = "principles"
        elif name.startswith(("analysis", "critique")):
            section = "critique"
        else:
            continue
        if section in found:
            continue
        end = heads[i + 1][0] if i + 1 < len(heads) else len(verdict_text)
        body = verdict_text[head.end() : end].strip()
        if body:
            found[section] = body
    return found.get("principles"), found.get("critique")


def _echo_spans(text: str, nonce: str | None) -> list[tuple[int, int]]:
    """Character ranges of `text` that reproduce fenced responses."""
    spans: list[tuple[int, int]] = []
    for begin in BEGIN_FENCE.finditer(text):
        if nonce is not None and begin.group("nonce") != nonce:
            continue
        end_tag = end_marker(int(begin.group("position")), begin.group("nonce"))
        stop = text.find(end_tag, begin.end())
        # An echo that never closes swallows the rest: nothing after it is trusted.
        spans.append((begin.start(), len(text) if stop < 0 else stop + len(end_tag)))
    return spans


_QUOTES = (('"', '"'), ("`", "`"), ("“", "”"), ("「", "」"))


def _quoted(before: str) -> bool:
    """Is a position (after `before` on its line) inside an open quotation?"""
    for opening, closing in _QUOTES:
        if opening == closing:
            if before.count(opening) % 2 == 1:
                return True
        elif before.count(opening) > before.count(closing):
            return True
    return False


class _Unit(NamedTuple):  # a tuple: built for every verdict line, and cheaply so
    """One verdict line: the (start, end) of the label's line and of the line holding the
    items (the same line, or the next non-blank one under a bare label), and the item
    matches in order."""

    first: tuple[int, int]
    last: tuple[int, int]
    items: tuple[re.Match[str], ...]


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def _next_line(text: str, end: int) -> tuple[int, int] | None:
    """The next non-blank line after the line ending at `end`, if any."""
    while end < len(text):
        start = end + 1
        end = _line_end(text, start)
        if start != end and not text[start:end].isspace():
            return start, end
    return None


def _item_run(text: str, pos: int, end: int, item: re.Pattern[str]) -> tuple[re.Match[str], ...]:
    """The items right after `pos` on a line, joined only by glue; () if none is there."""
    found: list[re.Match[str]] = []
    while True:
        glue = _GLUE.match(text, pos, end)
        match = item.match(text, glue.end() if glue else pos, end)
        if match is None:
            return tuple(found)
        found.append(match)
        pos = match.end()


def _units(text: str, label: _LineStarts, item: re.Pattern[str]) -> list[_Unit]:
    """Every verdict line of `text`, in order (see the module docstring, rule 2).

    Only label lines are visited (one regex pass finds them all); a bare label takes its
    box from the next non-blank line (a label line there holds no box at its start)."""
    heads = label.find(text)
    units: list[_Unit] = []
    for start, head in heads:
        end = _line_end(text, head.end())
        run = _item_run(text, head.end(), end, item)
        if run:
            units.append(_Unit((start, end), (start, end), run))
            continue
        if _GLUE.match(text, head.end(), end).end() != end:  # type: ignore[union-attr]
            continue  # words after the label: not a bare label
        below = _next_line(text, end)
        if below is None:
            continue
        quote = _BLOCKQUOTE.match(text, *below)
        run = _item_run(text, quote.end() if quote else below[0], below[1], item)
        if run:
            units.append(_Unit((start, end), below, run))
    return units


def _code_blocks(text: str, echoes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """(opening fence line start, closing fence line start) of every closed fenced code
    block; fence marks inside an echo belong to the response."""
    blocks: list[tuple[int, int]] = []
    opened: tuple[int, str] | None = None  # (line start, fence) of an open code block
    for fence in _CODE_FENCE.finditer(text):
        start = fence.start()
        if any(a <= start < b for a, b in echoes):
            continue
        mark = fence.group(1)
        if opened is None:
            opened = (start, mark)
        elif mark[0] == opened[1][0] and len(mark) >= len(opened[1]):
            blocks.append((opened[0], start))
            opened = None
    # A block never closed is not trusted to be a quotation: a response holding a lone
    # fence line, reproduced by the judge, would otherwise hide everything after it.
    return blocks


def _quoted_line(
    text: str,
    line: tuple[int, int],
    echoes: Sequence[tuple[int, int]],
    blocks: Sequence[tuple[int, int]],
) -> bool:
    """Is a line inside a `>` blockquote, a closed fenced code block, or an echo?"""
    start, end = line
    return (
        text[start:end].lstrip().startswith(">")
        or bool(echoes and any(a <= start < b for a, b in echoes))
        or bool(blocks and any(a < start < b for a, b in blocks))
    )


def _normalise_line(line: str) -> str:
    if not line.isascii():  # NFKC leaves ASCII as it is
        line = unicodedata.normalize("NFKC", line)
    return " ".join(line.translate(_MARKUP).split())


@functools.lru_cache(maxsize=256)
def _response_lines(response: str) -> tuple[tuple[str, ...], frozenset[str]]:
    """A response's non-blank lines, normalised, and the set of all but the first; cached,
    as every sample of a request is parsed against the same responses."""
    lines = tuple(norm for line in response.split("\n") if (norm := _normalise_line(line)))
    return lines, frozenset(lines[1:])


@functools.lru_cache(maxsize=256)
def _word_pattern(word: str) -> re.Pattern[str]:
    """`word` with any markup between its characters (what normalising deletes)."""
    return re.compile("[*_`#>]*".join(map(re.escape, word)))


def _holds_line(responses: Sequence[str], norm: str, first: bool) -> bool:
    """Does a response of two or more non-blank lines have a line normalising to `norm`
    (with `first`, other than its first line)? A run needs one there."""
    # Normalising a long response costs more than a search, so look for the first word of
    # `norm` first: in a response already in NFKC (the usual case) a line can only
    # normalise to `norm` if that word is in it, with nothing but markup between letters.
    word = _word_pattern(norm.split(" ", 1)[0])
    for response in responses:
        if unicodedata.is_normalized("NFKC", response) and not word.search(response):
            continue
        lines, later = _response_lines(response)
        if len(lines) >= 2 and (norm in later or (not first and norm == lines[0])):
            return True
    return False


def _may_be_copied(text: str, unit: _Unit, responses: Sequence[str]) -> bool:
    """False when `unit` cannot be in a copied run: its label line must be a response's
    second or later line, and its items' line one of a response's lines."""
    responses = [response for response in responses if "\n" in response]
    if not responses:
        return False  # one line each: no run of two
    norm = _normalise_line(text[unit.first[0] : unit.first[1]])
    if not norm or not _holds_line(responses, norm, first=True):
        return False
    if unit.last == unit.first:
        return True
    norm = _normalise_line(text[unit.last[0] : unit.last[1]])
    return bool(norm) and _holds_line(responses, norm, first=False)


def _copied_runs(text: str, responses: Sequence[str]) -> dict[int, int]:
    """line start -> start of the first line of a run of >= 2 non-blank lines that
    reproduces a response from its first non-blank line (markup and spacing aside)."""
    own: list[tuple[int, str]] = []
    start = 0
    for line in text.split("\n"):
        if norm := _normalise_line(line):
            own.append((start, norm))
        start += len(line) + 1
    runs: dict[int, int] = {}
    for response in responses:
        theirs, _ = _response_lines(response)
        if len(theirs) < 2:
            continue
        for i, (first, norm) in enumerate(own):
            if norm != theirs[0]:
                continue
            length = 1
            while (
                i + length < len(own)
                and length < len(theirs)
                and own[i + length][1] == theirs[length]
            ):
                length += 1
            if length >= 2:
                for at, _ in own[i : i + length]:
                    runs[at] = min(runs.get(at, first), first)
    return runs


def _own_units(
    text: str,
    label: _LineStarts,
    item: re.Pattern[str],
    responses: Sequence[str],
    nonce: str | None,
) -> tuple[list[_Unit], bool]:
    """The judge's own verdict lines in order, and whether any was dropped as copied."""
    units = _units(text, label, item)
    if not units:
        return [], False
    echoes = _echo_spans(text, nonce)
    # Fences need three backticks or tildes: most judge outputs have none to scan for.
    blocks = _code_blocks(text, echoes) if "```" in text or "~~~" in text else []
    runs: dict[int, int] | None = None  # computed only if a line may be copied
    own: list[_Unit] = []
    for unit in units:
        if (
            _quoted_line(text, unit.first, echoes, blocks)
            or (unit.last != unit.first and _quoted_line(text, unit.last, echoes, blocks))
            or (
                echoes
                and any(
                    a <= at < b for a, b in echoes for at in (unit.first[0], unit.items[0].start())
                )
            )
        ):
            continue
        if responses and _may_be_copied(text, unit, responses):
            if runs is None:
                runs = _copied_runs(text, responses)
            start = runs.get(unit.first[0])
            if start is not None and start < unit.first[0] and unit.last[0] in runs:
                continue
        own.append(unit)
    return own, len(own) < len(units)


def _read_scores(
    body: str, n: int
) -> tuple[tuple[int, ...] | None, str | None, list[tuple[int, int]]]:
    """Scores from the inside of a box, with each score's offsets inside `body`."""
    items: list[tuple[str, int, int]] = []
    pos = 0
    for part in _SEPARATORS.split(body):
        start = pos + (len(part) - len(part.lstrip()))
        items.append((part.strip(), start, start + len(part.strip())))
        pos += len(part) + 1
    if all(not item for item, _, _ in items):
        return None, "empty_verdict", []
    scores: list[int] = []
    for raw, _, _ in items:
        if raw.isascii() and raw.isdigit():  # the usual "7": NFKC and the regexes agree
            scores.append(int(raw))
            continue
        # Full-width digits become ASCII; other scripts' digits stay and are refused.
        item = unicodedata.normalize("NFKC", raw)
        if _INT.fullmatch(item):
            scores.append(int(item))
        elif _FLOAT.fullmatch(item) and float(item).is_integer():
            scores.append(int(float(item)))  # "7.0" is still an integer score
        else:
            return None, "not_integer", []
    if len(scores) != n:
        return None, "wrong_count", []
    if any(not SCORE_MIN <= s <= SCORE_MAX for s in scores):
        return None, "out_of_range", []
    return tuple(scores), None, [(a, b) for _, a, b in items]


def _unit_scores(
    unit: _Unit, n: int, offset: int
) -> tuple[tuple[int, ...] | None, str | None, list[tuple[int, int]]]:
    """Scores of one verdict line: one box of n, or n boxes of one (spans in full text)."""
    boxes = unit.items
    if len(boxes) == 1:
        scores, error, inner = _read_scores(boxes[0].group(1), n)
        base = offset + boxes[0].start(1)
        return scores, error, [(base + a, base + b) for a, b in inner]
    if len(boxes) != n:
        return None, "wrong_count", []
    values: list[int] = []
    spans: list[tuple[int, int]] = []
    for box in boxes:
        scores, error, inner = _read_scores(box.group(1), 1)
        if scores is None:
            return None, error, []
        values.append(scores[0])
        base = offset + box.start(1)
        spans.append((base + inner[0][0], base + inner[0][1]))
    return tuple(values), None, spans


def parse_judgment(
    text: str,
    n: int,
    *,
    responses: Sequence[str] = (),
    nonce: str | None = None,
) -> ParsedJudgment:
    """Parse one judge output for `n` shown responses.

    `responses` are the responses as shown, used only to recognise the judge reproducing
    one from its first line; `nonce` is the request's fence nonce (module docstring)."""
    reasoning, verdict_text, offset, terminated = split_reasoning(text, nonce)
    principles, critique = extract_sections(verdict_text)
    if not terminated:
        return ParsedJudgment(None, "unterminated_think", reasoning, principles, critique)
    if "\\boxed" not in verdict_text:
        return ParsedJudgment(None, "no_verdict", reasoning, principles, critique)
    units, saw_echo = _own_units(verdict_text, _SCORES_LABEL, _BOXED, responses, nonce)
    chosen: tuple[tuple[int, ...], list[tuple[int, int]]] | None = None
    last_error: str | None = None
    for unit in units:
        scores, error, spans = _unit_scores(unit, n, offset)
        if scores is None:
            last_error = error
        else:
            chosen = (scores, spans)
    if chosen is not None:
        return ParsedJudgment(chosen[0], None, reasoning, principles, critique, tuple(chosen[1]))
    error = last_error or ("echoed_verdict" if saw_echo else "no_verdict")
    return ParsedJudgment(None, error, reasoning, principles, critique)


@dataclass(frozen=True, slots=True)
class ParsedPreference:
    """A pairwise verdict: the *shown* position (0 or 1) judged better, or an error code."""

    winner: int | None
    error: str | None
    reasoning: str | None
    critique: str | None


def parse_preference(
    text: str, *, responses: Sequence[str] = (), nonce: str | None = None
) -> ParsedPreference:
    """The judge's own last `Verdict: [[1]]` / `[[2]]` line (the same rules as the scores)."""
    reasoning, verdict_text, _, terminated = split_reasoning(text, nonce)
    _, critique = extract_sections(verdict_text)
    if not terminated:
        return ParsedPreference(None, "unterminated_think", reasoning, critique)
    units, saw_echo = _own_units(verdict_text, _VERDICT_LABEL, _PREFERENCE, responses, nonce)
    # A verdict line names one response: a line with two boxes is not a verdict.
    picks = [unit for unit in units if len(unit.items) == 1]
    if not picks:
        error = "echoed_verdict" if saw_echo else "no_verdict"
        return ParsedPreference(None, error, reasoning, critique)
    digit = unicodedata.normalize("NFKC", picks[-1].items[0].group(1))
    return ParsedPreference(int(digit) - 1, None, reasoning, critique)
