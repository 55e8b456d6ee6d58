"""The one place rewardkit turns prompts and responses into the text rewards see.

Every entry point (`rewardkit score`, `rewardkit judge`, `rewardkit serve`, the TRL, verl and
OpenRLHF adapters) goes through these functions, so one spec gives one reward for one
sample wherever it runs.

**Prompt text** (`prompt_text`):

* a string is taken as is;
* chat messages (`[{"role": ..., "content": ...}, ...]`) give *the conversation without
  its system turns*: the text of each turn, surrounding whitespace removed; one remaining
  turn (the usual `[system?, user]` prompt) is its text alone; several are written
  `User: …`, `Assistant: …`, joined by blank lines; a prompt with only system (or
  developer) turns gives their text. System prompts are instructions to the policy (R1's
  format prompt, "You are a helpful assistant"), not the question: a language check would
  read their language, a judge would read them as the task;
* a turn's `content` is a string, or a list of content parts (OpenAI/TRL multimodal form):
  the `text` parts are concatenated as chat templates render them, and image, audio or
  other non-text parts are left out;
* a chat-templated string (OpenRLHF sends prompts that way) is read back into its turns
  (`templated_prompt_text`: ChatML, Llama 3, DeepSeek, Gemma, Phi/Zephyr, Mistral) and the
  same rule applies; the generation prompt at its end and image placeholders are dropped.

**Response text** (`completion_text`): a string as is; a message (`{"role": "assistant",
"content": ...}`) its content; a list of messages the assistant turns' text joined by
newlines (tool results are not the policy's words).

**Think blocks** (`split_think`, `answer_part`): R1-style responses write
`<think>reasoning</think>answer`. The answer is the text after the *last* `</think>` (a
response cannot hide a second answer before a later close); the reasoning is what lies
between the first `<think>` and that close (or everything before it, when the chat template
opened the block). A `<think>` that is never closed leaves no answer (None): the model was
still thinking. Without think tags the whole text is the answer.

A malformed prompt or response (a message that is not an object, a content of the wrong
type) raises `InputError` saying what is wrong; callers add where (a line number).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rewardkit.errors import InputError

__all__ = [
    "THINK_CLOSE",
    "THINK_OPEN",
    "ThinkSplit",
    "answer_part",
    "completion_text",
    "content_text",
    "prompt_text",
    "split_think",
    "templated_prompt_text",
]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

#: Roles whose turns are instructions to the policy, not part of the conversation.
_SYSTEM_ROLES = frozenset({"system", "developer"})
#: Content-part types that carry text (OpenAI chat, OpenAI responses API, TRL).
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


# --- messages and content -------------------------------------------------------------


def content_text(content: Any) -> str:
    """The text of one message's `content`: a string, None, or a list of content parts."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list | tuple):
        return "".join(_part_text(part, i) for i, part in enumerate(content))
    raise InputError(
        f"message content must be a string or a list of content parts, got {type(content).__name__}"
    )


def _part_text(part: Any, index: int) -> str:
    if isinstance(part, str):
        return part
    if not isinstance(part, Mapping):
        raise InputError(
            f"content part {index} must be an object like "
            f'{{"type": "text", "text": ...}}, got {type(part).__name__}'
        )
    kind = part.get("type", "text")
    if kind not in _TEXT_PARTS:
        return ""  # an image, audio or file part: no text for a text reward to read
    text = part.get("text")
    if not isinstance(text, str):
        raise InputError(f"content part {index} has type {kind!r} but no string 'text'")
    return text


def _messages(value: Any, what: str, default_role: str) -> list[tuple[str, str]]:
    """(role, text) of each message of a chat list; a message without a role gets `default_role`."""
    turns = []
    for i, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise InputError(
                f"{what} message {i} must be an object with 'role' and 'content', "
                f"got {type(message).__name__}"
            )
        role = message.get("role") or default_role
        try:
            text = content_text(message.get("content"))
        except InputError as exc:
            raise InputError(f"{what} message {i}: {exc}") from None
        turns.append((str(role).strip().lower(), text))
    return turns


def _as_list(value: Any) -> list[Any] | None:
    if isinstance(value, list | tuple):
        return list(value)
    tolist = getattr(value, "tolist", None)  # numpy object arrays (verl's non-tensor batch)
    if callable(tolist) and not isinstance(value, str | bytes):
        listed = tolist()
        if isinstance(listed, list):
            return listed
    return None


def _conversation_text(turns: list[tuple[str, str]]) -> str:
    """The prompt rule on (role, text) turns: see the module docstring."""
    kept = [(role, text.strip()) for role, text in turns if role not in _SYSTEM_ROLES]
    if not kept:
        return "\n\n".join(text.strip() for _, text in turns)
    if len(kept) == 1:
        return kept[0][1]
    return "\n\n".join(f"{role.capitalize()}: {text}" for role, text in kept)


def prompt_text(prompt: Any) -> str:
    """The prompt as rewards see it: a string as is, chat messages by the prompt rule."""
    if isinstance(prompt, str):
        return prompt
    if prompt is None:
        return ""
    messages = _as_list(prompt)
    if messages is None:
        raise InputError(f"'prompt' must be a string or chat messages, got {type(prompt).__name__}")
    return _conversation_text(_messages(messages, "prompt", "user"))


def completion_text(completion: Any) -> str:
    """The response as rewards see it: a string, one message, or the assistant turns of a list."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        try:
            return content_text(completion.get("content"))
        except InputError as exc:
            raise InputError(f"response message: {exc}") from None
    messages = _as_list(completion)
    if messages is None:
        raise InputError(
            f"'response' must be a string or chat messages, got {type(completion).__name__}"
        )
    return "\n".join(
        text for role, text in _messages(messages, "response", "assistant") if role == "assistant"
    )


# --- chat-templated prompts -------------------------------------------------------------

# Each template: how a turn looks, as a regex with groups (role, text, end). `end` is the
# end-of-turn token, empty when the turn runs to the next turn or to the end of the text.
_TEMPLATES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "<|im_start|>",  # ChatML: Qwen, Yi, OpenHermes...
        re.compile(r"<\|im_start\|>([^\n<]*)\n?(.*?)(<\|im_end\|>|(?=<\|im_start\|>)|\Z)", re.S),
    ),
    (
        "<|start_header_id|>",  # Llama 3
        re.compile(
            r"<\|start_header_id\|>(.*?)<\|end_header_id\|>(.*?)"
            r"(<\|eot_id\|>|<\|eom_id\|>|(?=<\|start_header_id\|>)|\Z)",
            re.S,
        ),
    ),
    (
        "<start_of_turn>",  # Gemma
        re.compile(r"<start_of_turn>(\w+)\n?(.*?)(<end_of_turn>|(?=<start_of_turn>)|\Z)", re.S),
    ),
    (
        "<|user|>",  # Phi-3, Zephyr, TinyLlama
        re.compile(
            r"<\|(system|user|assistant)\|>(.*?)"
            r"(<\|end\|>|</s>|(?=<\|(?:system|user|assistant)\|>)|\Z)",
            re.S,
        ),
    ),
)
_DEEPSEEK_USER, _DEEPSEEK_ASSISTANT = "<｜User｜>", "<｜Assistant｜>"
_DEEPSEEK_EOS = "<｜end▁of▁sentence｜>"
_DEEPSEEK_SPLIT = re.compile(f"({re.escape(_DEEPSEEK_USER)}|{re.escape(_DEEPSEEK_ASSISTANT)})")
_MISTRAL = re.compile(r"\[INST\](.*?)\[/INST\](.*?)(</s>|(?=\[INST\])|\Z)", re.S)
_ROLE_ALIASES = {"model": "assistant"}

#: The placeholders vision templates put where an image was.
_IMAGES = re.compile(
    r"<\|vision_start\|>.*?<\|vision_end\|>|<\|(?:image|video)_pad\|>|<\|image\|>"
    r"|<start_of_image>|<image>",
    re.S,
)
#: Beginning-of-text tokens, removed from the start only (`<s>` may be HTML in a question).
_BOS = re.compile(r"\A(?:\s*(?:<\|begin_of_text\|>|<｜begin▁of▁sentence｜>|<bos>|<s>))+")


def _deepseek_turns(text: str) -> list[tuple[str, str, bool]]:
    pieces = _DEEPSEEK_SPLIT.split(text)
    turns = [("system", pieces[0], True)] if pieces[0].strip() else []
    for marker, body in zip(pieces[1::2], pieces[2::2], strict=True):
        if marker == _DEEPSEEK_USER:
            turns.append(("user", body, True))
        else:
            answer, eos, _ = body.partition(_DEEPSEEK_EOS)
            turns.append(("assistant", answer, bool(eos)))
    return turns


def _mistral_turns(text: str) -> list[tuple[str, str, bool]]:
    turns: list[tuple[str, str, bool]] = []
    for match in _MISTRAL.finditer(text):
        turns.append(("user", match.group(1), True))
        turns.append(("assistant", match.group(2), bool(match.group(3))))
    return turns


def _template_turns(text: str) -> list[tuple[str, str, bool]] | None:
    """(role, text, closed) of each turn of the template that starts earliest; None if none."""
    starts: list[tuple[int, str]] = []
    for marker, _ in _TEMPLATES:
        at = text.find(marker)
        if at >= 0:
            starts.append((at, marker))
    for marker in (_DEEPSEEK_USER, "[INST]"):
        at = text.find(marker)
        if at >= 0:
            starts.append((at, marker))
    if not starts:
        return None
    _, first = min(starts)
    if first == _DEEPSEEK_USER:
        return _deepseek_turns(text)
    if first == "[INST]":
        return _mistral_turns(text)
    pattern = dict(_TEMPLATES)[first]
    return [
        (_ROLE_ALIASES.get(role := m.group(1).strip().lower(), role), m.group(2), bool(m.group(3)))
        for m in pattern.finditer(text)
    ]


def templated_prompt_text(prompt: str) -> str:
    """The prompt rule applied to a chat-templated prompt string (as OpenRLHF sends it).

    The turns of a known template are read back; a final open assistant turn (the
    generation prompt, possibly pre-filled with `<think>`) is not part of the prompt. A
    string in no known template is returned as is.
    """
    turns = _template_turns(_IMAGES.sub("", _BOS.sub("", prompt)))
    if not turns:
        return prompt
    if turns[-1][0] == "assistant" and not turns[-1][2]:
        turns.pop()
    return _conversation_text([(role, text) for role, text, _ in turns])


# --- think blocks ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThinkSplit:
    """A response cut at its think block.

    `reasoning`: the chain of thought, None when the response has no think block.
    `answer`: the text after the last `</think>` (the whole text without think tags);
    None while a `<think>` is still open.
    """

    reasoning: str | None
    answer: str | None

    @property
    def terminated(self) -> bool:
        """False for an unterminated `<think>`: the model never answered."""
        return self.answer is not None


def split_think(text: str) -> ThinkSplit:
    """The reasoning and the answer of a response; see the module docstring for the rule."""
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        start = text.find(THINK_OPEN, 0, close)
        begin = start + len(THINK_OPEN) if start >= 0 else 0
        return ThinkSplit(text[begin:close], text[close + len(THINK_CLOSE) :])
    start = text.find(THINK_OPEN)
    if start >= 0:
        return ThinkSplit(text[start + len(THINK_OPEN) :], None)
    return ThinkSplit(None, text)


def answer_part(text: str) -> str | None:
    """The text after the last `</think>`; the whole text when there is no think block;
    None while a `<think>` is still open (the model never answered)."""
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        return text[close + len(THINK_CLOSE) :]
    return None if THINK_OPEN in text else text
