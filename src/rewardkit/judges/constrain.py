"""Constrained verdicts and logprob-expected scores.

`build_constraint(n)` asks the backend to end the output with `Scores: \\boxed{a, b, ...}`
holding exactly n integers in 1-10, in three kinds at once: the chosen kind first, the
others as alternatives, so each backend or server enforces the one it can (vLLM/SGLang a
regex, llama.cpp, in process or served, GBNF, OpenAI a JSON schema; see
`rewardkit.backends.dialects`). Backends that can enforce none ignore it, and the parser
validates the text either way.

- regex (servers): free text (criteria, analysis, a `<think>` block), then the verdict.
- json_schema (OpenAI): `{"analysis": ..., "verdict": "Scores: \\boxed{...}"}`, the verdict
  held to the regex by a `pattern`; its `text_fields` turn the answer back into the text
  the parser reads (the analysis, then the verdict line).
- grammar (llama.cpp, i.e. small local models): SPCT's sections, each bounded
  in lines and characters, then the verdict:

      Specific Criteria:<max_lines // 3 lines of max_chars // max_lines characters at most>
      Analysis:<the other lines, as wide>
      Scores: \\boxed{a, b}

  Why bounded: a 135M-0.5B judge under a free-text grammar often loops ("Scores: 6, 6, 6."
  with no box, then repeats itself) until max_tokens and never reaches a verdict; the
  grammar forbids stopping early, so every such sample cost a full max_tokens on CPU and
  came back `truncated`. With a budget the model writes its criteria and analysis, and once
  a section is full the grammar moves it on, so every sample ends with a parseable verdict
  after at most about max_chars characters. Lines are bounded as well as characters because
  a small model's favourite loop is a list of tiny lines ("A: 1." "B: 1." ...) at ~1.5
  characters per token: a line budget cuts that off after a few lines, while a full line
  that runs on is wrapped (a forced newline) and counts as one. `max_chars=None` gives the
  free-text grammar (for a reasoning model that needs a long `<think>` first).

`expected_scores` reads the score tokens' top logprobs: instead of the sampled integer, the
probability-weighted mean over 1-10 (DeepSeek-GRM's finer-grained reward idea).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from rewardkit.backends.base import Completion, Constraint, TokenLogprob
from rewardkit.errors import ConfigError
from rewardkit.judges.parsing import SCORE_MAX, SCORE_MIN

__all__ = [
    "GRAMMAR_CHARS",
    "GRAMMAR_LINES",
    "bounded_grammar",
    "build_constraint",
    "expected_scores",
    "score_grammar",
    "score_json_schema",
    "score_regex",
]

_SCORE_RE = "(?:10|[1-9])"
#: Default budget of the grammar's criteria + analysis: a few weighted criteria (2 lines)
#: and a sentence or two per response (6 lines), lines of at most 90 characters; ~50-250
#: tokens, which also fits the default max_tokens whatever the tokenizer.
GRAMMAR_CHARS = 720
GRAMMAR_LINES = 8
# Anything but a newline, NUL, "<" and "[" (\x5B): see `score_grammar`.
_LINE_CHAR = "[^\\n\\x00<\\x5B]"


def score_regex(n: int) -> str:
    """A full-match regex: any text, then the final `Scores: \\boxed{...}` with n integers
    at the start of a line or right after `</think>` (where the parser reads verdicts)."""
    body = _SCORE_RE + "".join(", " + _SCORE_RE for _ in range(n - 1))
    return r"(?:[\s\S]*(?:\n|</think>))?Scores: \\boxed\{" + body + r"\}"


def score_json_schema(n: int) -> dict[str, Any]:
    """A strict JSON schema: free-text analysis, then the verdict line held to a pattern."""
    body = _SCORE_RE + "".join(", " + _SCORE_RE for _ in range(n - 1))
    return {
        "type": "object",
        "properties": {
            "analysis": {"type": "string"},
            "verdict": {"type": "string", "pattern": r"^Scores: \\boxed\{" + body + r"\}$"},
        },
        "required": ["analysis", "verdict"],
        "additionalProperties": False,
    }


def score_grammar(
    n: int, max_chars: int | None = GRAMMAR_CHARS, max_lines: int = GRAMMAR_LINES
) -> str:
    """GBNF (llama.cpp): bounded SPCT sections then the verdict, or with `max_chars=None`
    any text then the verdict (see the module docstring)."""
    scores = ' ", " '.join(["score"] * n)
    verdict = f'"Scores: \\\\boxed{{" {scores} "}}"'
    if max_chars is None:
        rules = [f'root ::= (body ("\\n" | "</think>"))? {verdict}', "body ::= [^\\x00]*"]
        return "\n".join([*rules, 'score ::= "10" | [1-9]'])
    return bounded_grammar(verdict, ['score ::= "10" | [1-9]'], max_chars, max_lines)


def bounded_grammar(
    verdict: str,
    extra_rules: Sequence[str] = (),
    max_chars: int = GRAMMAR_CHARS,
    max_lines: int = GRAMMAR_LINES,
    *,
    criteria: bool = True,
) -> str:
    """GBNF: `Specific Criteria:` (if `criteria`) and `Analysis:` sections bounded to
    `max_lines` lines of `max_chars // max_lines` characters, a newline, then `verdict` (a
    GBNF sequence; `extra_rules` define what it names). Shared by the pointwise and the
    pairwise judge."""
    if isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 2:
        raise ConfigError(f"grammar max_lines must be an integer >= 2, got {max_lines!r}")
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 3 * max_lines:
        raise ConfigError(
            f"grammar max_chars must be an integer >= 3 * max_lines ({3 * max_lines}), "
            f"got {max_chars!r}"
        )
    width = max_chars // max_lines
    criteria_lines = max(1, max_lines // 3) if criteria else 0
    # "\nAnalysis:" is also valid section text: the ambiguity is on purpose, llama.cpp
    # follows both readings and the bounds end either. No "[" and no "<" in a section: a
    # small model likes to copy the prompt, and a copied `[BEGIN RESPONSE ...` fence left
    # open would make the parser distrust everything after it, the forced verdict included.
    if criteria:
        rules = [
            f'root ::= "Specific Criteria:" criteria "\\nAnalysis:" analysis "\\n" {verdict}',
            f'criteria ::= line ("\\n" line){{0,{criteria_lines - 1}}}',
        ]
    else:
        rules = [f'root ::= "Analysis:" analysis "\\n" {verdict}']
    rules += [
        f'analysis ::= line ("\\n" line){{0,{max_lines - criteria_lines - 1}}}',
        f"line ::= {_LINE_CHAR}{{0,{width}}}",
        *extra_rules,
    ]
    return "\n".join(rules)


def build_constraint(
    n: int,
    kind: Literal["regex", "grammar"] = "regex",
    *,
    max_chars: int | None = GRAMMAR_CHARS,
    max_lines: int = GRAMMAR_LINES,
) -> Constraint:
    """The verdict constraint for n responses: `kind` first, the other kinds as its
    alternatives (for servers that enforce only those). `max_chars`/`max_lines` bound the
    grammar's sections (`max_chars=None`: unbounded)."""
    grammar = Constraint("grammar", score_grammar(n, max_chars, max_lines))
    regex = Constraint("regex", score_regex(n))
    schema = Constraint("json_schema", score_json_schema(n), text_fields=("analysis", "verdict"))
    if kind == "grammar":
        return replace(grammar, alternatives=(regex, schema))
    return replace(regex, alternatives=(grammar, schema))


def _alternatives(token: TokenLogprob) -> dict[str, float]:
    alts = dict(token.top)
    alts.setdefault(token.token, token.logprob)
    return alts


def _zero_mass(token: TokenLogprob | None) -> float:
    """Probability that the next token continues a "1" into "10"."""
    if token is None:
        return 0.0
    return min(
        1.0, sum(math.exp(lp) for tok, lp in _alternatives(token).items() if tok.startswith("0"))
    )


def _expected_at(tokens: Sequence[TokenLogprob], starts: Sequence[int], start: int) -> float | None:
    # The token holding the score's first character.
    index = max(i for i, s in enumerate(starts) if s <= start)
    token = tokens[index]
    prefix = token.token[: start - starts[index]]
    sampled_rest = token.token[len(prefix) :]
    sampled_digits = re.match(r"\d*", sampled_rest)
    # The next token's distribution is conditioned on what was sampled; it tells us about
    # "1" -> "10" only when the sampled token also ended in a bare "1".
    next_token = tokens[index + 1] if index + 1 < len(tokens) else None
    knows_continuation = sampled_digits is not None and sampled_rest == "1"
    mass: dict[int, float] = {}
    for alt, logprob in _alternatives(token).items():
        if not alt.startswith(prefix):
            continue
        rest = alt[len(prefix) :]
        digits = re.match(r"\d+", rest)
        if digits is None:
            continue
        p = math.exp(logprob)
        value = int(digits.group(0))
        if digits.group(0) == "1" and rest == "1" and knows_continuation:
            p_ten = _zero_mass(next_token)
            mass[10] = mass.get(10, 0.0) + p * p_ten
            mass[1] = mass.get(1, 0.0) + p * (1 - p_ten)
        elif SCORE_MIN <= value <= SCORE_MAX:
            mass[value] = mass.get(value, 0.0) + p
    total = sum(mass.values())
    if total <= 0:
        return None
    return sum(v * p for v, p in mass.items()) / total


def expected_scores(
    completion: Completion, spans: Sequence[tuple[int, int]]
) -> tuple[float, ...] | None:
    """Logprob-weighted score at each verdict span (shown order), or None if unavailable."""
    tokens = completion.logprobs
    if not tokens or "".join(t.token for t in tokens) != completion.text:
        return None  # offsets would not line up with the text
    starts: list[int] = []
    pos = 0
    for token in tokens:
        starts.append(pos)
        pos += len(token.token)
    values = []
    for start, _ in spans:
        value = _expected_at(tokens, starts, start)
        if value is None:
            return None
        values.append(value)
    return tuple(values)
