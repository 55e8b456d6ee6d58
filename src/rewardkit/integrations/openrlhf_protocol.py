"""OpenRLHF's remote reward protocol: find the response inside a query, shape the answer.

OpenRLHF posts `{"query": [...], "prompts": [...], "labels": [...]}` where each query is the
*decoded* prompt + response, special tokens included (it decodes with
`skip_special_tokens=False`), and expects `{"rewards": [...], "scores": [...],
"extra_logs": {...}}` back, every value a number.

The response is recovered from a query by this rule (documented in docs/server.md):

1. Leading special tokens (`<s>`, `<|begin_of_text|>`, ...) are removed from the query and
   from the prompt; if the query then starts with the prompt, the response is what follows.
2. Otherwise the response is the text after the last assistant marker of a known chat
   template (`<|im_start|>assistant`, `<|start_header_id|>assistant<|end_header_id|>`,
   `<｜Assistant｜>`, ...); a plain `Assistant:` is tried only when no template marker is present.
3. Otherwise the whole query is taken as the response.

Then special tokens are stripped from both ends of the response (repeatedly, with the
whitespace between them): `<|im_end|>`, `</s>`, `<|eot_id|>`, `<|endoftext|>`, padding...
in time linear in the query's length (a query of a million end tokens is one regex scan).

This is the one home of the protocol, with no FastAPI dependency: the `reward_func` file
(`rewardkit.integrations.openrlhf`) and `rewardkit serve`'s `/get_reward`
(`rewardkit.server`) both use it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rewardkit.scoring import RewardReport
from rewardkit.text import templated_prompt_text
from rewardkit.types import Sample, Score

__all__ = [
    "ASSISTANT_MARKERS",
    "SPECIAL_TOKENS",
    "extract_response",
    "openrlhf_payload",
    "openrlhf_sample",
    "strip_special_tokens",
]

#: Tokens that may wrap a decoded query: BOS/EOS, end-of-turn and padding of common tokenizers.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|im_end|>",
    "<|im_start|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|begin_of_text|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<|return|>",
    "<|pad|>",
    "<｜end▁of▁sentence｜>",
    "<｜begin▁of▁sentence｜>",
    "<end_of_turn>",
    "<eos>",
    "<bos>",
    "<pad>",
    "</s>",
    "<s>",
    "[PAD]",
)

#: Where an assistant turn starts in common chat templates (ChatML/Qwen, Llama 3, DeepSeek,
#: Gemma, Phi/Zephyr, Mistral). Tried before the generic `Assistant:` fallback.
ASSISTANT_MARKERS: tuple[str, ...] = (
    "<|im_start|>assistant\n",
    "<|im_start|>assistant",
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "<|start_header_id|>assistant<|end_header_id|>",
    "<｜Assistant｜>",
    "<start_of_turn>model\n",
    "<|assistant|>\n",
    "<|assistant|>",
    "[/INST]",
)

_GENERIC_MARKERS: tuple[str, ...] = ("Assistant:", "assistant:")


#: Most characters one regex call may scan. Each call holds the GIL; bounded calls let the
#: event loop (and /health) run between them while a huge query is stripped in a thread.
_WINDOW = 1 << 18


def _trie_pattern(tokens: Sequence[str]) -> str:
    """One regex alternative for all `tokens`, common prefixes factored out.

    A flat `a|b|c|...` tries every token at every position; the trie tries one character
    at a time (several times faster on a query made of thousands of end tokens). Where one
    token is a prefix of another, the longer one wins.
    """
    if "" in tokens:
        return "(?:" + _trie_pattern([t for t in tokens if t]) + ")?" if len(tokens) > 1 else ""
    heads: dict[str, list[str]] = {}
    for token in tokens:
        heads.setdefault(token[0], []).append(token[1:])
    branches = [re.escape(head) + _trie_pattern(tails) for head, tails in heads.items()]
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


@functools.lru_cache(maxsize=32)
def _token_run(tokens: tuple[str, ...]) -> re.Pattern[str]:
    """Whitespace-separated special tokens at a position, as many as follow one another.

    The possessive `\\s*+` never gives whitespace back, so a failed attempt costs one look
    at the next token.
    """
    return re.compile(rf"(?:\s*+{_trie_pattern(sorted(set(tokens)))})*+")


_SPACE_RUN = re.compile(r"\s*+")


def _tokens_end(text: str, tokens: tuple[str, ...]) -> int:
    """Where the run of special tokens (and whitespace between them) at the start of `text` ends.

    Linear in `len(text)`: one regex scan in windows of `_WINDOW` characters. A window can
    only cut a run at a token or inside whitespace; whichever it is, the next window goes on
    from the last whole token found.
    """
    pattern = _token_run(tokens)
    n = len(text)
    pos = 0
    while pos < n:
        stop = min(n, pos + _WINDOW)
        end = pattern.match(text, pos, stop).end()  # type: ignore[union-attr]  # * matches empty
        if end > pos:
            pos = end
            continue
        # No whole token within the window: a whitespace run fills it, or the run is over.
        space_end = pos
        while space_end < n:
            step = _SPACE_RUN.match(text, space_end, min(n, space_end + _WINDOW)).end()  # type: ignore[union-attr]
            if step == space_end:
                break
            space_end = step
        found = [t for t in tokens if text.startswith(t, space_end)]
        if not found:
            return pos
        pos = space_end + max(map(len, found))  # the longest, as in the pattern
    return pos


def _strip_leading(text: str, tokens: Sequence[str]) -> str:
    """`text` without the special tokens it starts with (whitespace after the last one kept)."""
    options = tuple(t for t in tokens if t)
    if not options or not text.lstrip().startswith(options):  # the common case: one C call
        return text
    return text[_tokens_end(text, options) :]


def _strip_trailing(text: str, tokens: Sequence[str]) -> str:
    """`text` without the special tokens it ends with (whitespace before the first one kept)."""
    options = tuple(t for t in tokens if t)
    if not options or not text.rstrip().endswith(options):
        return text
    # The same scan over the reversed text: still linear, and the same tokens win.
    cut = _tokens_end(text[::-1], tuple(t[::-1] for t in options))
    return text[: len(text) - cut]


def strip_special_tokens(text: str, tokens: Sequence[str] = SPECIAL_TOKENS) -> str:
    """Remove special tokens (and the whitespace around them) from both ends of `text`."""
    return _strip_trailing(_strip_leading(text, tokens), tokens).strip()


def _after_last_marker(text: str, markers: Sequence[str]) -> str | None:
    best_end = -1
    for marker in markers:
        at = text.rfind(marker)
        # The marker that *ends* last wins: "<|im_start|>assistant\n" over its prefix.
        if at >= 0 and at + len(marker) > best_end:
            best_end = at + len(marker)
    return None if best_end < 0 else text[best_end:]


def extract_response(
    query: str,
    prompt: str | None = None,
    *,
    special_tokens: Sequence[str] = SPECIAL_TOKENS,
    markers: Sequence[str] = ASSISTANT_MARKERS,
) -> str:
    """The response part of an OpenRLHF query (prompt + response), special tokens removed."""
    text = _strip_leading(query, special_tokens)
    head = _strip_leading(prompt, special_tokens) if prompt else ""
    response: str | None = None
    if head and text.startswith(head):
        response = text[len(head) :]
    if response is None:
        response = _after_last_marker(text, markers)
    if response is None:
        response = _after_last_marker(text, _GENERIC_MARKERS)
    if response is None:
        response = text
    return strip_special_tokens(response, special_tokens)


def openrlhf_sample(
    query: str,
    prompt: str | None,
    label: Any = None,
    *,
    id: str | None = None,
    data_source: str | None = None,
) -> Sample:
    """The `Sample` of one OpenRLHF query: prompt text read back, response cut out of the query."""
    return Sample(
        prompt=templated_prompt_text(prompt) if prompt else "",
        response=extract_response(query, prompt),
        reference=label,
        id=id,
        fields={} if data_source is None else {"data_source": data_source},
    )


def openrlhf_payload(reports: Sequence[RewardReport], *, fill_value: float = 0.0) -> dict[str, Any]:
    """The body OpenRLHF expects: `rewards`, `scores` and per-sample `extra_logs`.

    OpenRLHF needs a number for every query, so an unscored sample gets `fill_value`; the
    `rewardkit/unscored` log (1.0 per unscored sample) lets the trainer see how many.
    Each reward of the spec also gets its own per-sample log (`fill_value` where it did not
    apply or could not score), so a multi-reward spec shows its parts.
    """
    rewards = [fill_value if r.reward is None else r.reward for r in reports]
    labels: dict[str, None] = {}
    for report in reports:
        labels.update(dict.fromkeys(report.components))
    extra_logs: dict[str, list[float]] = {
        "rewardkit/unscored": [0.0 if r.scored else 1.0 for r in reports],
    }
    for label in labels:
        extra_logs[f"rewardkit/{label}"] = [
            _component_value(r.components, label, fill_value) for r in reports
        ]
    return {"rewards": rewards, "scores": list(rewards), "extra_logs": extra_logs}


def _component_value(components: Mapping[str, Any], label: str, fill_value: float) -> float:
    result = components.get(label)
    return result.value if isinstance(result, Score) else fill_value
