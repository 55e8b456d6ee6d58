"""Reading a verdict out of judge text: the last valid `\\boxed{...}`, never a guessed 0.

A verdict is a `\\boxed{s1, ..., sn}` with exactly n integers in 1-10. The parser

1. keeps a `<think>` block apart (a reasoning judge may write score lines while thinking;
   they are not the verdict);
2. drops every candidate that is an *echo* of a response: text between our fences (the
   per-request nonce), a quoted span or `>` quote, or a line copied verbatim from a response
   — so `Scores: \\boxed{10, 10}` written inside a response cannot become the verdict;
3. prefers the last valid candidate on a `Scores:` line (or under a bare `Scores:` label),
   then the last valid candidate anywhere; one box per response on one line
   (`\\boxed{8}, \\boxed{3}`) also counts.

When nothing valid remains it returns an error code — `no_verdict`, `echoed_verdict`,
`wrong_count`, `out_of_range`, `not_integer`, `empty_verdict`, `unterminated_think` (the
judge adds `truncated` when max_tokens cut the output) — and the caller keeps the raw text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from rewardkit.judges.templates import BEGIN_FENCE, end_marker

__all__ = [
    "ParsedJudgment",
    "ParsedPreference",
    "extract_sections",
    "parse_judgment",
    "parse_preference",
    "split_reasoning",
]

SCORE_MIN, SCORE_MAX = 1, 10

_BOXED = re.compile(r"\\boxed\s*\{([^{}]*)\}")
# A `Scores:` label at the start of a line, allowing markdown decoration ("**Scores:**").
_SCORES_LINE = re.compile(r"^[\s>*#_`-]*scores?\s*[*_]*\s*[:：]", re.IGNORECASE)
_SEPARATORS = re.compile(r"[,;、，；]")  # full-width commas from CJK-tuned judges
_INT = re.compile(r"^[+]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)$")
_SECTION = re.compile(
    r"^[\s*#_]*(?P<name>specific criteria|principles?|analysis|critiques?|scores?|verdict)\s*[*_]*\s*[:：]",
    re.IGNORECASE | re.MULTILINE,
)
_XML_SECTIONS = {
    "principles": re.compile(r"<specific_criteria>(.*?)</specific_criteria>", re.DOTALL),
    "critique": re.compile(r"<analysis>(.*?)</analysis>", re.DOTALL),
}
_XML_OPEN = {"principles": "<specific_criteria>", "critique": "<analysis>"}


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


def split_reasoning(text: str) -> tuple[str | None, str, int, bool]:
    """(reasoning, verdict_text, offset of verdict_text in text, terminated).

    A judge prompt may pre-fill `<think>`, so a lone `</think>` also closes reasoning.
    """
    close = text.rfind("</think>")
    if close >= 0:
        start = text.find("<think>")
        begin = start + len("<think>") if 0 <= start < close else 0
        offset = close + len("</think>")
        return text[begin:close].strip(), text[offset:], offset, True
    start = text.find("<think>")
    if start >= 0:
        return text[start + len("<think>") :].strip(), "", len(text), False
    return None, text, 0, True


def extract_sections(verdict_text: str) -> tuple[str | None, str | None]:
    """(principles, critique): the `Specific Criteria:` and `Analysis:` parts, if present."""
    found: dict[str, str] = {}
    for key, pattern in _XML_SECTIONS.items():
        # A substring test first: most judges write no XML sections, and `in` is a memchr.
        match = pattern.search(verdict_text) if _XML_OPEN[key] in verdict_text else None
        if match:
            found[key] = match.group(1).strip()
    heads = list(_SECTION.finditer(verdict_text))
    for i, head in enumerate(heads):
        name = head.group("name").lower()
        if name.startswith(("specific", "principle")):
            section = "principles"
        elif name.startswith(("analysis", "critique")):
            section = "critique"
        else:
            continue
        if section in found:
            continue
        end = heads[i + 1].start() if i + 1 < len(heads) else len(verdict_text)
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


def _normalise_ws(text: str) -> str:
    return " ".join(text.split())


_QUOTES = (('"', '"'), ("`", "`"), ("“", "”"), ("「", "」"))


def _quoted(before: str, labelled: bool) -> bool:
    """Is a position (after `before` on its line) inside an open quotation?

    On a `Scores:` line a quote mark right before the box is markup around the verdict
    (`Scores: `\\boxed{8, 3}``), not a quotation of someone else's words.
    """
    for opening, closing in _QUOTES:
        if opening == closing:
            inside = before.count(opening) % 2 == 1
        else:
            inside = before.count(opening) > before.count(closing)
        if not inside:
            continue
        if labelled and not before[before.rfind(opening) + 1 :].strip(" $*"):
            continue
        return True
    return False


def _line_of(text: str, start: int, end: int) -> str:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    return text[line_start : len(text) if line_end < 0 else line_end]


def _is_echo(
    text: str,
    start: int,
    line: str,
    labelled: bool,
    echoes: Sequence[tuple[int, int]],
    response_lines: Sequence[str],
) -> bool:
    """Is the candidate at `start` part of a response the judge repeated or quoted?"""
    line_start = text.rfind("\n", 0, start) + 1
    norm_line = _normalise_ws(line)
    return (
        any(a <= start < b for a, b in echoes)
        or line.lstrip().startswith(">")
        or _quoted(text[line_start:start], labelled)
        or any(bool(norm_line) and norm_line in r for r in response_lines)
    )


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
        item = unicodedata.normalize("NFKC", raw)
        if _INT.match(item):
            scores.append(int(item))
        elif _FLOAT.match(item) and float(item).is_integer():
            scores.append(int(float(item)))  # "7.0" is still an integer score
        else:
            return None, "not_integer", []
    if len(scores) != n:
        return None, "wrong_count", []
    if any(not SCORE_MIN <= s <= SCORE_MAX for s in scores):
        return None, "out_of_range", []
    return tuple(scores), None, [(a, b) for _, a, b in items]


def parse_judgment(
    text: str,
    n: int,
    *,
    responses: Sequence[str] = (),
    nonce: str | None = None,
) -> ParsedJudgment:
    """Parse one judge output for `n` shown responses (`responses` as shown, for echo checks)."""
    reasoning, verdict_text, offset, terminated = split_reasoning(text)
    principles, critique = extract_sections(verdict_text)
    if not terminated:
        return ParsedJudgment(None, "unterminated_think", reasoning, principles, critique)

    echoes = _echo_spans(verdict_text, nonce)
    response_lines = [_normalise_ws(r) for r in responses if r.strip()]
    preferred: tuple[tuple[int, ...], list[tuple[int, int]]] | None = None
    fallback: tuple[tuple[int, ...], list[tuple[int, int]]] | None = None
    last_error: str | None = None
    saw_echo = False
    for boxes, line, labelled in _lines_with(_BOXED, verdict_text, _SCORES_LINE):
        kept = [
            m
            for m in boxes
            if not _is_echo(verdict_text, m.start(), line, labelled, echoes, response_lines)
        ]
        saw_echo = saw_echo or len(kept) < len(boxes)
        candidates: list[tuple[tuple[int, ...], list[tuple[int, int]]]] = []
        if n > 1 and len(kept) == n:
            # "Scores: \boxed{8}, \boxed{3}": one box per response on one line.
            singles = [_read_scores(m.group(1), 1) for m in kept]
            if all(scores is not None for scores, _, _ in singles):
                candidates.append(
                    (
                        tuple(scores[0] for scores, _, _ in singles if scores is not None),
                        [
                            (offset + m.start(1) + inner[0][0], offset + m.start(1) + inner[0][1])
                            for m, (_, _, inner) in zip(kept, singles, strict=True)
                        ],
                    )
                )
        if not candidates:
            for match in kept:
                scores, error, inner = _read_scores(match.group(1), n)
                if scores is None:
                    last_error = error
                    continue
                base = offset + match.start(1)
                candidates.append((scores, [(base + a, base + b) for a, b in inner]))
        if candidates:
            if labelled:
                preferred = candidates[-1]
            else:
                fallback = candidates[-1]
    chosen = preferred or fallback
    if chosen is not None:
        return ParsedJudgment(chosen[0], None, reasoning, principles, critique, tuple(chosen[1]))
    error = last_error or ("echoed_verdict" if saw_echo else "no_verdict")
    return ParsedJudgment(None, error, reasoning, principles, critique)


def _lines_with(
    pattern: re.Pattern[str], text: str, label: re.Pattern[str]
) -> list[tuple[list[re.Match[str]], str, bool]]:
    """(matches, line, labelled) for each line holding a match, in text order.

    A line holding nothing but the verdict borrows a bare label on the line above
    ("Scores:" then "\boxed{3}" below it): it counts as labelled, and the two lines are
    checked together for echoes — a lone `\boxed{3}` also occurs in many math answers.
    """
    by_line: dict[int, list[re.Match[str]]] = {}
    for match in pattern.finditer(text):
        by_line.setdefault(text.rfind("\n", 0, match.start()) + 1, []).append(match)
    out = []
    for line_start, matches in by_line.items():
        line = _line_of(text, matches[0].start(), matches[0].end())
        labelled = bool(label.match(line))
        if not labelled and not pattern.sub("", line).strip(" \t.,;:*`$\\[]()"):
            above = text[: max(line_start - 1, 0)].rstrip().rsplit("\n", 1)[-1]
            head = label.match(above)
            if head is not None and not above[head.end() :].strip(" *_`$"):
                line, labelled = f"{above.strip()} {line.strip()}", True
        out.append((matches, line, labelled))
    return out


_PREFERENCE = re.compile(r"\[\[\s*([12])\s*\]\]")
_VERDICT_LINE = re.compile(r"^[\s>*#_`-]*verdict\s*[*_]*\s*[:：]", re.IGNORECASE)


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
    """The last `[[1]]` / `[[2]]` outside reasoning and echoes, preferring a `Verdict:` line."""
    reasoning, verdict_text, _, terminated = split_reasoning(text)
    _, critique = extract_sections(verdict_text)
    if not terminated:
        return ParsedPreference(None, "unterminated_think", reasoning, critique)
    echoes = _echo_spans(verdict_text, nonce)
    response_lines = [_normalise_ws(r) for r in responses if r.strip()]
    preferred: int | None = None
    fallback: int | None = None
    saw_echo = False
    for matches, line, labelled in _lines_with(_PREFERENCE, verdict_text, _VERDICT_LINE):
        for match in matches:
            if _is_echo(verdict_text, match.start(), line, labelled, echoes, response_lines):
                saw_echo = True
                continue
            winner = int(match.group(1)) - 1
            if labelled:
                preferred = winner
            else:
                fallback = winner
    chosen = preferred if preferred is not None else fallback
    if chosen is None:
        return ParsedPreference(
            None, "echoed_verdict" if saw_echo else "no_verdict", reasoning, critique
        )
    return ParsedPreference(chosen, None, reasoning, critique)
