"""R1's readability filters, case by case, and the completions a policy would use to game them."""

from __future__ import annotations

import pytest

from rewardkit.pipelines.sample.config import FilterConfig
from rewardkit.pipelines.sample.filters import FILTERS, readability_reasons
from rewardkit.pipelines.sample.records import Candidate

EN_PROMPT = "Janet has 16 eggs and eats three. How many are left?"
CLEAN = "<think>Janet has sixteen eggs and eats three of them, so thirteen remain.</think>The answer is 13."
LONG_PARAGRAPH = "word " * 700  # 3500 characters, one paragraph
CHINESE = "我们 先 计算 鸡蛋 的 数量 然后 减去 她 吃掉 的 三个 鸡蛋 得到 答案"


def candidate(
    completion: str, *, finish: str = "stop", code_task: bool = False, prompt: str = EN_PROMPT
) -> Candidate:
    return Candidate(
        "p",
        0,
        completion,
        prompt_text=prompt,
        finish_reason=finish,
        reward=1.0,
        code_task=code_task,
    )


# (case, completion, options for the candidate, filter config overrides, expected reasons)
CASES: list[tuple[str, str, dict, dict, list[str]]] = [
    ("clean R1 trajectory", CLEAN, {}, {}, []),
    (
        "no think block: the whole text is the summary",
        "Sixteen minus three is thirteen. The answer is 13.",
        {},
        {},
        [],
    ),
    ("cut off by max_tokens", CLEAN, {"finish": "length"}, {}, ["truncated"]),
    ("cut off, truncation allowed", CLEAN, {"finish": "length"}, {"truncated": False}, []),
    ("think never closed", "<think>Janet has sixteen eggs and", {}, {}, ["missing_summary"]),
    (
        "nothing after </think>",
        "<think>Sixteen minus three is thirteen.</think>",
        {},
        {},
        ["missing_summary"],
    ),
    # attack: a summary that is only whitespace
    (
        "whitespace-only summary",
        "<think>Sixteen minus three is thirteen.</think> \n\t \n",
        {},
        {},
        ["missing_summary"],
    ),
    # attack: a second think block opened after the close, to pass off reasoning as a summary
    (
        "summary reopens a think block",
        "<think>a</think>ok <think>more thinking",
        {},
        {},
        ["missing_summary"],
    ),
    (
        "summary check off",
        "<think>Sixteen minus three is thirteen.</think>",
        {},
        {"summary": "off"},
        [],
    ),
    (
        "special token pattern kept",
        "|special_token|Sixteen minus three.|special_token|Thirteen.",
        {},
        {"summary": "special_token"},
        [],
    ),
    (
        "special token summary empty",
        "|special_token|Sixteen minus three.|special_token|  ",
        {},
        {"summary": "special_token"},
        ["missing_summary"],
    ),
    (
        "chinese reasoning for an english prompt",
        f"<think>{CHINESE}</think>The answer is 13.",
        {},
        {},
        ["language_mixing"],
    ),
    # attack: mixing in the summary only, behind a long clean chain of thought
    (
        "mixing hidden in the summary",
        f"<think>{'Janet has sixteen eggs and eats three of them. ' * 20}</think>答案 是 十三 鸡蛋 剩下",
        {},
        {},
        ["language_mixing"],
    ),
    (
        "language check off",
        f"<think>{CHINESE}</think>The answer is 13.",
        {},
        {"min_language_consistency": None},
        [],
    ),
    (
        "explicit target language",
        f"<think>{CHINESE}</think>答案 是 十三",
        {},
        {"language": "zh"},
        [],
    ),
    ("only math: nothing to count, not rejected", "<think>16 - 3 = 13</think>13", {}, {}, []),
    (
        "one overlong paragraph",
        f"<think>{LONG_PARAGRAPH}</think>Thirteen.",
        {},
        {},
        ["overlong_paragraph"],
    ),
    (
        "same words in short paragraphs",
        "<think>" + "\n\n".join(["word " * 100] * 7) + "</think>Thirteen.",
        {},
        {},
        [],
    ),
    # a think tag is not a paragraph break an attacker can use to glue paragraphs, nor one that hides them
    (
        "overlong paragraph right after <think>",
        f"<think>{LONG_PARAGRAPH}\n\nshort</think>Thirteen.",
        {},
        {},
        ["overlong_paragraph"],
    ),
    (
        "code block in a math answer",
        "<think>Compute it.</think>```python\nprint(16 - 3)\n```\nThe answer is 13.",
        {},
        {},
        ["code_block"],
    ),
    # attack: the code block hidden inside the think block is still trained on
    (
        "code block hidden in the think block",
        "<think>```python\nprint(16 - 3)\n```</think>The answer is 13.",
        {},
        {},
        ["code_block"],
    ),
    (
        "an unclosed fence",
        "<think>Compute it.</think>The answer is\n```\n13",
        {},
        {},
        ["code_block"],
    ),
    ("a tilde fence", "<think>Compute it.</think>~~~\n13\n~~~", {}, {}, ["code_block"]),
    ("inline code is prose", "<think>Use `16 - 3`.</think>The answer is 13.", {}, {}, []),
    (
        "code block in a code task",
        "<think>Write it.</think>```python\nprint(13)\n```",
        {"code_task": True},
        {},
        [],
    ),
    (
        "code blocks allowed",
        "<think>Compute it.</think>```\n13\n```",
        {},
        {"code_blocks": False},
        [],
    ),
    (
        "several failures, all named in order",
        "<think>```\nx\n```",
        {"finish": "length"},
        {},
        ["truncated", "missing_summary", "code_block"],
    ),
]


@pytest.mark.parametrize(
    ("case", "completion", "options", "overrides", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_filter_cases(
    case: str, completion: str, options: dict, overrides: dict, expected: list[str]
) -> None:
    assert (
        readability_reasons(candidate(completion, **options), FilterConfig(**overrides)) == expected
    )


def test_prompt_language_decides_the_target() -> None:
    chinese_prompt = "珍妮 有 十六 个 鸡蛋 吃掉 三个 还 剩 多少"
    text = f"<think>{CHINESE}</think>答案 是 十三 个 鸡蛋"
    assert readability_reasons(candidate(text, prompt=chinese_prompt), FilterConfig()) == []
    assert readability_reasons(candidate(CLEAN, prompt=chinese_prompt), FilterConfig()) == [
        "language_mixing"
    ]


def test_every_filter_has_a_case() -> None:
    named = {reason for *_, expected in CASES for reason in expected}
    assert named == set(FILTERS)
