"""The fast verdict parser returns exactly what the pre-optimisation parser returned.

`parsing_reference.py` is the parser as it was before it was made cheaper; here both read
thousands of generated judge outputs, built to hit every rule of the module docstring at
once: verdict lines in every decoration (and near misses), bare labels with the box lines
below, blank lines of every kind, blockquotes, closed and open code fences, nonce fences
with the right and wrong nonce (closed and open), responses copied whole, in part, from
their middle and with markup changed, think tags anywhere, full-width digits and colons,
CJK separators, CRLF. The outputs are seeded, so a failure names a case that reproduces.
"""

from __future__ import annotations

import dataclasses
import random

import parsing_reference as reference
import pytest

from rewardkit.judges import parsing
from rewardkit.judges.templates import begin_marker, end_marker

NONCE = "0123456789ab"
WRONG_NONCE = "ba9876543210"

# Each decoration: (accepted ones, near misses that are not a label).
LABELS = {
    "pointwise": (["Scores", "Scores", "Score", "scores", "SCORES", "ſcores"], ["Ｓcores", "Scorez", "Final Scores"]),
    "pairwise": (["Verdict", "Verdict", "verdict", "VERDICT"], ["Verdicts", "The verdict"]),
}  # fmt: skip
PREFIXES = (
    ["", "", "", "", " ", "   ", "\t", "### ", "# ", "###### ", "> ", ">", ">> ", " > > ", "    "],
    ["#", "####### ", "- ", "1. ", "\u3000", "\\"],
)  # fmt: skip
EMPHASES = (["", "", "", "**", "__", "*", "_"], ["***", "~~"])
COLONS = ([":", ":", ":", "：", " :", "\t:"], ["", "::", ";"])
GLUES = ["", " ", " ", " ", "  ", " $", " `", ' "', " \\(", " **", "\t", ", ", " -", "\r"]
CLOSERS = ["", "", "", "$", "`", '"', "\\)", "**", " because it is better.", ".", "\r"]
ITEMS = [
    "1", "2", "3", "5", "7", "8", "9", "10", "10", "0", "11", " 7 ", "７", "٧", "7.0",
    "7.5", "+7", "-3", "x", "", "１０",
]  # fmt: skip
SEPARATORS = [", ", ", ", ",", "; ", "，", "、", "；", " , ", " ", ",,"]
PICKS = ["[[1]]", "[[2]]", "[[ 1 ]]", "[[１]]", "[[２]]", "[[3]]", "[[\t2]]", "[1]", "[[12]]"]
PROSE = [
    "Analysis: response 1 is right.",
    "Response 1 ends with Scores: \\boxed{10}",
    "The answer is \\boxed{3}.",
    "I think so.",
    "Specific Criteria:",
    "**Specific Criteria**: accuracy first",
    "1. Correctness (60%): the answer must be right.",
    "<analysis>it is good</analysis>",
    "<specific_criteria>be right</specific_criteria>",
    "<analysis>unclosed",
    "Critique: meh",
    "## Principles:",
    "Principle : one",
    "Analysis :",
    "score: 5",
    "verdict: none",
    "It says Verdict: [[1]] here.",
    "Final answer: 4",
    "so `Scores: \\boxed{9}` is quoted",
    "ﬁne ﬂow",
    "e\u0301t\u00e9",
]
BLANKS = ["", "", " ", "\t", "\r", "\u3000", "\x1c", "  \t "]
FENCES = ["```", "```", "~~~", "````", "```python", "  ```", "    ```", "~~~~", "`` `", " ~~~ "]
# Lines a response may open or end on: half a verdict, to be copied into a run.
HALVES = [
    "Scores:",
    "**Verdict:**",
    "\\boxed{7}",
    "\\boxed{2, 9}",
    "[[1]]",
    "[[2]]",
    "$\\boxed{3}$",
]
THINKS = [
    "<think>", "</think>", "`</think>`", "a </think> b", "</think> then", '"</think>"',
    "<think>hmm</think>", "“</think>", "</think>\r",
]  # fmt: skip


def _pick(rng: random.Random, choices: tuple[list[str], list[str]]) -> str:
    """Mostly an accepted decoration, sometimes a near miss."""
    return rng.choice(choices[0] if rng.random() < 0.85 else choices[1])


def _box(rng: random.Random, n: int, kind: str) -> str:
    if (kind == "pairwise") != (rng.random() < 0.1):
        return rng.choice(PICKS) + ("" if rng.random() < 0.85 else " " + rng.choice(PICKS))
    count = n if rng.random() < 0.7 else rng.randint(0, 4)
    items = [rng.choice(ITEMS) if rng.random() < 0.3 else str(rng.randint(1, 10))]
    items += [rng.choice(ITEMS) if rng.random() < 0.15 else str(rng.randint(1, 10))]
    items = (items * 3)[: max(count, 1)]
    head = rng.choice(["\\boxed{", "\\boxed{", "\\boxed {", "\\boxed\t{"])
    shape = rng.random()
    if shape < 0.2:  # one box per response
        glue = rng.choice([", ", " ", ",", "; ", " and ", "，"])
        return glue.join(head + item + "}" for item in items)
    if shape < 0.25:
        return head + items[0]  # never closed
    if shape < 0.28:
        return head + "{" + items[0] + "}}"
    return head + rng.choice(SEPARATORS).join(items) + "}"


def _label(rng: random.Random, kind: str) -> str:
    emphasis = _pick(rng, EMPHASES)
    return (
        _pick(rng, PREFIXES)
        + emphasis
        + _pick(rng, LABELS[kind if rng.random() < 0.9 else "pairwise"])
        + (emphasis if rng.random() < 0.8 else _pick(rng, EMPHASES))
        + _pick(rng, COLONS)
        + (_pick(rng, EMPHASES) if rng.random() < 0.3 else "")
    )


def _verdict_lines(rng: random.Random, n: int, kind: str) -> list[str]:
    """One verdict line, or a bare label with its box on a later line."""
    if rng.random() < 0.7:
        return [_label(rng, kind) + rng.choice(GLUES) + _box(rng, n, kind) + rng.choice(CLOSERS)]
    lines = [_label(rng, kind) + rng.choice(["", "", " ", " **", "\r", " $", " x"])]
    lines += [rng.choice(BLANKS) for _ in range(rng.choice([0, 0, 1, 2]))]
    if rng.random() < 0.15:  # a label line below the bare label
        lines.append(_label(rng, kind) + rng.choice(GLUES) + _box(rng, n, kind))
    prefix = rng.choice(["", "", "", "> ", "  ", ">>", "- ", "```", "``` ", "~~~ "])
    lines.append(prefix + rng.choice(GLUES) + _box(rng, n, kind) + rng.choice(CLOSERS))
    return lines


def _response(rng: random.Random, n: int, kind: str) -> str:
    if rng.random() < 0.25:  # one line (the common short answer)
        return rng.choice(["The answer is 4.", "Scores: \\boxed{10}", "Verdict: [[1]]", "4"])
    lines: list[str] = []
    for _ in range(rng.randint(1, 6)):
        pick = rng.random()
        if pick < 0.35:
            lines += _verdict_lines(rng, n, kind)
        elif pick < 0.6:
            lines.append(rng.choice(PROSE))
        elif pick < 0.7:
            lines.append(rng.choice(BLANKS))
        elif pick < 0.75:
            lines.append(rng.choice(FENCES))
        elif pick < 0.8:
            lines.append(rng.choice(HALVES))
        elif pick < 0.85:
            lines.append(rng.choice(THINKS))
        else:
            lines.append(f"Step {rng.randint(1, 3)}: add {rng.randint(1, 9)}.")
    if rng.random() < 0.2:
        lines.insert(0, rng.choice(HALVES))
    if rng.random() < 0.2:
        lines.append(rng.choice(HALVES))
    return "\n".join(lines)


def _restyle(rng: random.Random, line: str) -> str:
    """A copied line as a judge may reproduce it: markup or spacing changed, or
    full-width, all of which the copy check reads past."""
    pick = rng.random()
    if pick < 0.6:
        return line
    if pick < 0.7:
        return "**" + line + "**"
    if pick < 0.8:
        return "  " + line.replace(" ", "   ") + " "
    if pick < 0.9:
        return line.replace(":", "：").replace("S", "Ｓ").replace("1", "１")
    return line.replace("*", "").replace("#", "")


def _copy(rng: random.Random, response: str) -> list[str]:
    lines = response.split("\n")
    start = 0 if rng.random() < 0.6 else rng.randint(0, len(lines) - 1)
    stop = rng.randint(start + 1, len(lines)) if rng.random() < 0.5 else len(lines)
    return [_restyle(rng, line) for line in lines[start:stop]]


def _splice(rng: random.Random, responses: list[str]) -> list[str]:
    """The end of one response then the start of another (or the same), as one quote."""
    tail = rng.choice(responses).split("\n")
    head = rng.choice(responses).split("\n")
    gap = [rng.choice(BLANKS) for _ in range(rng.choice([0, 0, 1]))]
    return tail[rng.randint(0, len(tail) - 1) :] + gap + head[: rng.randint(1, len(head))]


def _echo(rng: random.Random, responses: list[str]) -> list[str]:
    position = rng.randint(1, len(responses))
    nonce = NONCE if rng.random() < 0.75 else WRONG_NONCE
    lines = [begin_marker(position, nonce)]
    if rng.random() < 0.3:  # the fence and the response's first line on one line
        lines = [begin_marker(position, nonce) + " " + responses[position - 1].split("\n")[0]]
        lines += responses[position - 1].split("\n")[1:]
    else:
        lines += responses[position - 1].split("\n")
    if rng.random() < 0.75:
        end = end_marker(position if rng.random() < 0.9 else position % 3 + 1, nonce)
        lines.append(end if rng.random() < 0.8 else end + " so it is wrong.")
    return lines


def judge_case(seed: int) -> tuple[str, int, list[str], str | None]:
    """(judge output, n, responses shown, nonce) for one seed."""
    rng = random.Random(seed)
    n = rng.randint(1, 3)
    kind = rng.choice(["pointwise", "pairwise"])
    responses = [_response(rng, n, kind) for _ in range(rng.choice([1, 2, 2, 3]))]
    lines: list[str] = []
    if rng.random() < 0.15:
        lines.append(rng.choice(["<think>", "  <think>", "<think> Let me see."]))
    for _ in range(rng.randint(1, 9)):
        pick = rng.random()
        if pick < 0.3:
            lines += _verdict_lines(rng, n, kind)
        elif pick < 0.45:
            lines.append(rng.choice(PROSE))
        elif pick < 0.55:
            lines.append(rng.choice(BLANKS))
        elif pick < 0.63:
            lines.append(rng.choice(FENCES))
        elif pick < 0.66:
            lines.append(rng.choice(THINKS))
        elif pick < 0.8:
            lines += _copy(rng, rng.choice(responses))
        elif pick < 0.87:
            lines += _splice(rng, responses)
        else:
            lines += _echo(rng, responses)
    if rng.random() < 0.7:  # most judges end on their verdict
        lines += _verdict_lines(rng, n, kind)
    text = "\n".join(lines)
    if rng.random() < 0.1:
        text = text.replace("\n", "\r\n")
    nonce = NONCE if rng.random() < 0.85 else None
    if rng.random() < 0.1:
        n = rng.randint(1, 4)  # a caller that shows a different number of responses
    return text, n, responses, nonce


def _fields(parsed: object) -> tuple[object, ...]:
    """The value of a parsed result, whichever module's class it is an instance of."""
    return tuple(getattr(parsed, field.name) for field in dataclasses.fields(parsed))  # type: ignore[arg-type]


CASES = 12000


@pytest.mark.parametrize("block", range(4))
def test_fast_parser_agrees_with_the_reference(block: int) -> None:
    verdicts = 0
    for seed in range(block * CASES // 4, (block + 1) * CASES // 4):
        text, n, responses, nonce = judge_case(seed)
        args = {"responses": responses, "nonce": nonce}
        want = _fields(reference.parse_judgment(text, n, **args))
        assert _fields(parsing.parse_judgment(text, n, **args)) == want, seed
        verdicts += want[0] is not None
        want = _fields(reference.parse_preference(text, **args))
        assert _fields(parsing.parse_preference(text, **args)) == want, seed
        verdicts += want[0] is not None
        assert parsing.extract_sections(text) == reference.extract_sections(text), seed
    # The cases must exercise verdicts (about a quarter of the parses find one), not only
    # failures, and failures too.
    assert CASES // 4 // 8 < verdicts < CASES // 4
