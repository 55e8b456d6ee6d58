"""Finding the response inside an OpenRLHF query, and the payload shape OpenRLHF reads."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import pytest

from rewardkit.integrations import openrlhf_protocol as openrlhf
from rewardkit.integrations.openrlhf_protocol import (
    SPECIAL_TOKENS,
    extract_response,
    openrlhf_payload,
    strip_special_tokens,
)
from rewardkit.scoring import RewardReport
from rewardkit.types import Score, Unscored

CHATML_PROMPT = (
    "<|im_start|>system\nYou are helpful.<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
)
LLAMA3_PROMPT = (
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
DEEPSEEK_PROMPT = "<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜><think>\n"

CASES = [
    # (query, prompt, expected response)
    ("What is 2+2? The answer is 4", "What is 2+2?", "The answer is 4"),
    (
        CHATML_PROMPT + "The answer is \\boxed{4}.<|im_end|>",
        CHATML_PROMPT,
        "The answer is \\boxed{4}.",
    ),
    (CHATML_PROMPT + "4<|im_end|><|endoftext|><|endoftext|>", CHATML_PROMPT, "4"),
    # Prompt without template tokens, query with them: falls back to the assistant marker.
    (CHATML_PROMPT + "It is 4.<|im_end|>", "What is 2+2?", "It is 4."),
    # No prompt given at all.
    (CHATML_PROMPT + "It is 4.<|im_end|>", None, "It is 4."),
    (LLAMA3_PROMPT + "Four.<|eot_id|>", LLAMA3_PROMPT, "Four."),
    # BOS present in the query but not in the prompt (tokenizer added it).
    (LLAMA3_PROMPT + "Four.<|eot_id|>", LLAMA3_PROMPT.removeprefix("<|begin_of_text|>"), "Four."),
    (LLAMA3_PROMPT + "Four.<|eot_id|>", "What is 2+2?", "Four."),
    (
        DEEPSEEK_PROMPT + "2+2=4</think>\n\\boxed{4}<｜end▁of▁sentence｜>",
        DEEPSEEK_PROMPT,
        "2+2=4</think>\n\\boxed{4}",
    ),
    ("<s>[INST] What is 2+2? [/INST] 4</s>", "What is 2+2?", "4"),
    ("User: What is 2+2?\nAssistant: 4</s>", "unrelated prompt", "4"),
    # Nothing to go on: the whole query, special tokens removed.
    ("just text</s>", "other", "just text"),
    # A response that mentions the assistant marker text is still cut at the prompt.
    (
        CHATML_PROMPT + "I write <|im_start|>assistant\n in my answer<|im_end|>",
        CHATML_PROMPT,
        "I write <|im_start|>assistant\n in my answer",
    ),
]


@pytest.mark.parametrize(("query", "prompt", "expected"), CASES)
def test_extract_response(query: str, prompt: str | None, expected: str) -> None:
    assert extract_response(query, prompt) == expected


def test_strip_special_tokens_keeps_inner_tokens() -> None:
    assert strip_special_tokens("<s> a </s> b </s><pad><pad>") == "a </s> b"


def _naive_strip(text: str, tokens: Sequence[str]) -> str:
    """The rule as first written (quadratic): drop whitespace + a token while one is there."""
    while True:
        stripped = text.lstrip()
        token = next((t for t in tokens if stripped.startswith(t)), None)
        if token is None:
            break
        text = stripped[len(token) :]
    while True:
        stripped = text.rstrip()
        token = next((t for t in tokens if stripped.endswith(t)), None)
        if token is None:
            break
        text = stripped[: -len(token)]
    return text.strip()


def test_linear_strip_agrees_with_the_naive_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny windows, so token runs and whitespace runs cross window edges all the time.
    monkeypatch.setattr(openrlhf, "_WINDOW", 5)
    pieces = [*SPECIAL_TOKENS, " ", "\n", "\u3000", "   ", "x", "<", "s>", "|>", "<|im_", "end|>"]
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        assert strip_special_tokens(text) == _naive_strip(text, SPECIAL_TOKENS), repr(text)


def test_longer_token_wins_when_one_is_a_prefix_of_another(monkeypatch: pytest.MonkeyPatch) -> None:
    assert strip_special_tokens("<end><end_turn> hi <end_turn>", ["<end>", "<end_turn>"]) == "hi"
    # The same after a whitespace run longer than a scan window.
    monkeypatch.setattr(openrlhf, "_WINDOW", 4)
    text = "<end>" + " " * 10 + "<end_turn>_x"
    assert strip_special_tokens(text, ["<end>", "<end_turn>"]) == "_x"
    assert strip_special_tokens("", ["<end>"]) == "" and strip_special_tokens("a", []) == "a"


@pytest.mark.parametrize(
    "query",
    [
        "</s>" * 1_000_000,  # all tokens: stripped from the front
        "x" + "<|im_end|>\n" * 400_000,  # stripped from the back
        "x" + " " * 2_000_000 + "</s>" + " \n" * 1_000_000,  # whitespace runs longer than a window
    ],
    ids=["leading", "trailing", "whitespace"],
)
def test_stripping_is_linear_on_megabytes_of_tokens(query: str) -> None:
    # The quadratic rule took ~5 s on 1.2 MB of end tokens (hours on 32 MB).
    start = time.perf_counter()
    response = extract_response(query, None)
    assert time.perf_counter() - start < 1.0
    assert response == ("" if query.startswith("</s>") else "x")


def test_payload_fills_unscored_and_logs_per_sample() -> None:
    reports = [
        RewardReport(1.0, {"math": Score(1.0, "correct")}, {"math": 1.0}),
        RewardReport(
            None,
            {"math": Unscored("bad_reference", "no gold")},
            {"math": 1.0},
            "math: bad_reference",
        ),
        RewardReport(0.0, {"math": Score(0.0, "wrong")}, {"math": 1.0}),
    ]
    body = openrlhf_payload(reports, fill_value=-1.0)
    assert body["rewards"] == [1.0, -1.0, 0.0]
    assert body["scores"] == body["rewards"]
    assert body["extra_logs"]["rewardkit/unscored"] == [0.0, 1.0, 0.0]
    assert body["extra_logs"]["rewardkit/math"] == [1.0, -1.0, 0.0]
    for values in body["extra_logs"].values():
        assert len(values) == len(reports)
