"""Format rewards: R1's think block and the |special_token| summary pattern."""

from __future__ import annotations

import pickle

import pytest

from rewardkit.errors import ConfigError
from rewardkit.registry import build_reward
from rewardkit.rules.format import (
    SummaryFormatReward,
    ThinkFormatReward,
    split_think,
    summary_format,
    think_format,
)
from rewardkit.types import Sample, Score

THINK_CASES = [
    # (response, opened, allow_empty, expected reason)
    ("<think>2+2 is 4</think>The answer is 4.", False, False, "ok"),
    ("\n  <think>\nreason\n</think>\n\n**4**", False, False, "ok"),
    ("The answer is 4.", False, False, "missing_think"),
    ("", False, False, "missing_think"),
    ("<think>reason</think>   \n", False, False, "empty_answer"),
    ("<think>reason</think>", False, False, "empty_answer"),
    ("<think>a</think>b<think>c</think>d", False, False, "multiple_think"),
    ("<think>a<think>b</think>answer", False, False, "multiple_think"),
    ("<think>a</think>b</think>c", False, False, "multiple_think"),
    ("Sure! <think>a</think>b", False, False, "think_not_at_start"),
    ("<think>still thinking when the budget ran out", False, False, "unclosed_think"),
    ("<think>  </think>answer", False, False, "empty_think"),
    ("<think></think>answer", False, True, "ok"),
    # The template opened <think>: the completion starts inside the block.
    ("reason about it</think>4", True, False, "ok"),
    ("reason about it</think>4", False, False, "missing_think"),
    ("<think>reason</think>4", True, False, "ok"),
    ("reason about it</think>", True, False, "empty_answer"),
    ("no close tag at all", True, False, "missing_think"),
    ("a</think>b</think>c", True, False, "multiple_think"),
    ("</think>answer", True, False, "empty_think"),
]


@pytest.mark.parametrize(("response", "opened", "allow_empty", "reason"), THINK_CASES)
def test_think_format(response: str, opened: bool, allow_empty: bool, reason: str) -> None:
    result = think_format(response, opened=opened, allow_empty_think=allow_empty)
    assert result.reason == reason
    assert result.value == (1.0 if reason == "ok" else 0.0)


SUMMARY_CASES = [
    ("|special_token|step one, step two|special_token|So x = 3.", "|special_token|", False, "ok"),
    ("  |special_token|r|special_token| s ", "|special_token|", False, "ok"),
    ("<sep>r<sep>s", "<sep>", False, "ok"),
    ("r<sep>s", "<sep>", True, "ok"),
    ("<sep>r<sep>s", "<sep>", True, "ok"),
    ("just a summary", "<sep>", False, "missing_token"),
    ("intro <sep>r<sep>s", "<sep>", False, "token_not_at_start"),
    ("<sep>reasoning that never ends", "<sep>", False, "missing_summary_token"),
    ("<sep>r<sep>s<sep>t", "<sep>", False, "extra_token"),
    ("r<sep>s<sep>t", "<sep>", True, "extra_token"),
    ("<sep> <sep>s", "<sep>", False, "empty_reasoning"),
    ("<sep>r<sep>\n", "<sep>", False, "empty_summary"),
    # The default token must not match the think tags and vice versa.
    ("<think>r</think>s", "|special_token|", False, "missing_token"),
]


@pytest.mark.parametrize(("response", "token", "opened", "reason"), SUMMARY_CASES)
def test_summary_format(response: str, token: str, opened: bool, reason: str) -> None:
    result = summary_format(response, token=token, opened=opened)
    assert result.reason == reason
    assert result.value == (1.0 if reason == "ok" else 0.0)


@pytest.mark.parametrize(
    ("text", "cot", "answer"),
    [
        ("<think>a</think>b", "a", "b"),
        ("  <think>a</think>b", "a", "b"),
        ("a</think>b", "a", "b"),
        ("no think here", None, "no think here"),
        ("<think>unclosed", "unclosed", ""),  # still thinking: no answer yet
        ("<think>a</think>b</think>c", "a</think>b", "c"),  # the answer follows the last close
    ],
)
def test_split_think(text: str, cot: str | None, answer: str) -> None:
    assert split_think(text) == (cot, answer)


def test_reward_classes_are_registered_picklable_and_in_range() -> None:
    think = build_reward("think_format", opened=True)
    summary = build_reward("summary_format", token="<sep>")
    assert isinstance(think, ThinkFormatReward) and think.opened
    assert isinstance(summary, SummaryFormatReward) and summary.token == "<sep>"
    for reward in (think, summary):
        clone = pickle.loads(pickle.dumps(reward))
        assert vars(clone) == vars(reward)
        assert reward.value_range == (0.0, 1.0)
    samples = [
        Sample(prompt="q", response="r</think>a"),
        Sample(prompt="q", response="a"),
    ]
    results = think.score_batch(samples)
    assert [r.value for r in results if isinstance(r, Score)] == [1.0, 0.0]
    assert summary.score(Sample(prompt="q", response="<sep>r<sep>s")) == Score(1.0, "ok")


def test_empty_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="token"):
        SummaryFormatReward(token="")
