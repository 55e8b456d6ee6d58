"""Judge prompts: the DeepSeek-GRM pointwise template, modes, and response fencing.

The default template follows the pointwise GRM prompt of DeepSeek-GRM ("Inference-Time
Scaling for Generalist Reward Modeling", appendix): general criteria, then the judge states
query-specific criteria with weights, analyses each response, and ends with
`Scores: \\boxed{s1, ..., sn}`, one integer 1-10 per response in the order shown.

Responses are untrusted text. Each is fenced by BEGIN/END markers carrying a per-request
nonce derived from a hash of the whole request, so a response cannot know its own fence;
marker look-alikes inside a response are defused before rendering. The parser uses the same
nonce to cut echoed responses out of the judge's output.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from rewardkit.errors import ConfigError
from rewardkit.text import answer_part

__all__ = [
    "BEGIN_FENCE",
    "PLACEHOLDERS",
    "JudgeMode",
    "PromptBuilder",
    "ResponseView",
    "begin_marker",
    "defuse",
    "end_marker",
    "fence_responses",
    "load_template",
    "make_nonce",
    "render",
    "response_view",
    "validate_template",
]

JudgeMode = Literal["helpfulness", "harmlessness", "reference", "rubric"]
ResponseView = Literal["auto", "summary", "full"]

#: Every placeholder a template may use, and what fills it.
PLACEHOLDERS: dict[str, str] = {
    "query": "the user's query (the prompt)",
    "responses": "the fenced responses, in the order shown",
    "criteria": "the mode's general criteria, or the user's principles/rubric",
    "reference": "the reference answer (reference mode)",
    "num_responses": "how many responses are shown",
    "score_example": "the verdict shape for this many responses, e.g. \\boxed{x, x}",
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "helpfulness": ("query", "responses"),
    "harmlessness": ("query", "responses"),
    "reference": ("query", "responses", "reference"),
    "rubric": ("query", "responses"),
}
# `{name}` where name looks like an identifier; `\boxed{x}` in a template is not one.
_PLACEHOLDER_RE = re.compile(r"(?<!\\boxed)\{([A-Za-z_][A-Za-z0-9_]*)\}")

_MARKER_WORD = "RESPONSE"
# Anything in a response that looks like one of our fences (any nonce, any spacing/case).
_FENCE_LOOKALIKE = re.compile(r"\[\s*(BEGIN|END)\s+RESPONSE", re.IGNORECASE)


def load_template(name: str) -> str:
    """A bundled template or criteria file by stem (e.g. "pointwise", "criteria_helpfulness")."""
    try:
        return (
            resources.files("rewardkit.judges")
            .joinpath("templates", f"{name}.txt")
            .read_text(encoding="utf-8")
        )
    except FileNotFoundError as exc:
        raise ConfigError(f"no bundled judge template named {name!r}") from exc


def validate_template(text: str, mode: JudgeMode = "helpfulness") -> str:
    """Check a user template: the mode's placeholders present, no unknown ones. Returns it."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("judge template is empty; give the template text")
    found = set(_PLACEHOLDER_RE.findall(text))
    unknown = sorted(found - set(PLACEHOLDERS))
    if unknown:
        raise ConfigError(
            f"judge template has unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
            f"allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
        )
    missing = [p for p in _REQUIRED[mode] if p not in found]
    if missing:
        raise ConfigError(
            f"judge template for mode {mode!r} must contain "
            f"{', '.join('{' + m + '}' for m in missing)}"
        )
    return text


def render(template: str, values: dict[str, str]) -> str:
    """Fill placeholders in one pass, so text inside a value (a response that contains
    `{reference}`, say) is never substituted again."""
    pieces = _split_template(template)
    out = [pieces[0]]
    for i in range(1, len(pieces), 2):
        name = pieces[i]
        out.append(values[name] if name in values else "{" + name + "}")
        out.append(pieces[i + 1])
    return "".join(out)


@functools.lru_cache(maxsize=64)
def _split_template(template: str) -> list[str]:
    """[text, name, text, name, ..., text]: a template is split once, not scanned per request
    (a regex pass over a multi-kilobyte template per request was the prompt's main cost)."""
    return _PLACEHOLDER_RE.split(template)


def response_view(text: str, view: Literal["summary", "full"]) -> str:
    """What the judge sees of a response: the whole text, or only the summary after `</think>`.

    R1-style policies think first; helpfulness is judged on the final summary only, so a long
    or flattering chain of thought cannot buy reward. An unterminated `<think>` has no
    summary: the judge sees an empty response.
    """
    if view == "full":
        return text
    return (answer_part(text) or "").strip()


def make_nonce(*parts: object) -> str:
    """12 hex chars from a hash of the whole request: deterministic (cacheable), yet a
    response cannot predict the fence that depends on its own text."""
    # One encode and one hash call: the same bytes as hashing `repr(part) + "\0"` part by part.
    text = "\x00".join([repr(part) for part in parts]) + "\x00"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def defuse(text: str, nonce: str) -> str:
    """Neutralise fence look-alikes and the nonce itself inside a response."""
    text = text.replace(nonce, "[nonce removed]")
    return _FENCE_LOOKALIKE.sub(lambda m: f"[{m.group(1).lower()}-response", text)


#: A begin fence as the judge may echo it; `position` and `nonce` groups.
BEGIN_FENCE = re.compile(rf"\[BEGIN {_MARKER_WORD} (?P<position>\d+) (?P<nonce>[0-9a-f]{{12}})\]")


def begin_marker(position: int, nonce: str) -> str:
    return f"[BEGIN {_MARKER_WORD} {position} {nonce}]"


def end_marker(position: int, nonce: str) -> str:
    return f"[END {_MARKER_WORD} {position} {nonce}]"


def fence_responses(shown: Sequence[str], nonce: str) -> str:
    """The responses block: each response, defused, between its numbered fences."""
    blocks = []
    for position, text in enumerate(shown, start=1):
        body = defuse(text, nonce) if text.strip() else "(empty response)"
        blocks.append(f"{begin_marker(position, nonce)}\n{body}\n{end_marker(position, nonce)}")
    return "\n".join(blocks)


def score_example(n: int) -> str:
    return "\\boxed{" + ", ".join(["x"] * n) + "}"


@dataclass(frozen=True)
class PromptBuilder:
    """A validated template and criteria for one mode; renders one request's prompt."""

    mode: JudgeMode
    template: str
    criteria: str
    view: Literal["summary", "full"]

    @classmethod
    def create(
        cls,
        mode: JudgeMode = "helpfulness",
        *,
        template: str | None = None,
        principles: str | None = None,
        view: ResponseView = "auto",
    ) -> PromptBuilder:
        if mode not in _REQUIRED:
            raise ConfigError(f"unknown judge mode {mode!r}; choose one of {', '.join(_REQUIRED)}")
        if mode == "rubric" and not (principles and principles.strip()):
            raise ConfigError("judge mode 'rubric' needs `principles` (the rubric text)")
        if template is None:
            text = load_template("reference" if mode == "reference" else "pointwise")
        else:
            text = validate_template(template, mode)
        if mode == "rubric":
            assert principles is not None
            criteria = principles.strip()
        else:
            criteria = load_template(f"criteria_{mode}").strip()
            if principles and principles.strip():
                criteria += "\n\nAdditional principles given by the user:\n" + principles.strip()
        # Harm can hide in the reasoning, so harmlessness reads everything by default.
        auto: Literal["summary", "full"] = "full" if mode == "harmlessness" else "summary"
        resolved = auto if view == "auto" else view
        return cls(mode, text, criteria, resolved)

    def render(
        self, query: str, shown: Sequence[str], nonce: str, reference: str | None = None
    ) -> str:
        """The user message for one request; `shown` are raw responses in display order."""
        return self.render_views(
            query, [response_view(text, self.view) for text in shown], nonce, reference
        )

    def render_views(
        self, query: str, views: Sequence[str], nonce: str, reference: str | None = None
    ) -> str:
        """`render` for responses already cut to this builder's view (`response_view`): the
        judge needs the views for parsing too, so it computes them once."""
        if self.mode == "reference" and reference is None:
            raise ConfigError("judge mode 'reference' needs a reference answer for every query")
        values = {
            "query": query,
            "responses": fence_responses(views, nonce),
            "criteria": self.criteria,
            "reference": reference if reference is not None else "(none)",
            "num_responses": str(len(views)),
            "score_example": score_example(len(views)),
        }
        return render(self.template, values)
