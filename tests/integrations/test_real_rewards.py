"""The adapters over the real built-in rewards: math, think_format and the judge (mock backend)."""

from __future__ import annotations

import ast
import asyncio
import pickle
import subprocess
import sys
from typing import Any

import pytest

from rewardkit.integrations import verl
from rewardkit.integrations.trl import AsyncRewardFunc, RewardFunc, reward_funcs

MATH_SPEC = {"rewards": [{"reward": "math"}, {"reward": "think_format", "weight": 0.2}]}
COMPLETIONS = [
    "<think>6*7=42</think> The answer is \\boxed{42}.",
    "The answer is \\boxed{41}.",
    "I cannot say.",
]


def test_trl_math_and_format_combined() -> None:
    [func] = reward_funcs(MATH_SPEC, reference_column="solution")
    out = func(
        prompts=["6*7?"] * 3, completions=COMPLETIONS, completion_ids=None, solution=["42"] * 3
    )
    assert out[0] == pytest.approx(1.2)
    assert out[1] == 0.0  # a wrong answer is a real 0
    assert out[2] == 0.0  # the math reward counts "no answer" as wrong, not unscored


def test_trl_per_reward_names_and_values() -> None:
    funcs = reward_funcs(MATH_SPEC, reference_column="answer", mode="per_reward")
    assert [f.__name__ for f in funcs] == ["math", "think_format"]
    values = [f(prompts=["q"] * 2, completions=COMPLETIONS[:2], answer=["42", "42"]) for f in funcs]
    assert values == [[1.0, 0.0], [1.0, 0.0]]


CHILD = """
import pickle, sys
func = pickle.loads(open(sys.argv[1], "rb").read())
out = func(prompts=["q", "q"], completions=sys.argv[2:], solution=["42", "42"])
print(repr(out))
"""


@pytest.mark.slow
def test_trl_function_runs_in_a_fresh_worker_process(tmp_path: Any) -> None:
    [func] = reward_funcs(MATH_SPEC, reference_column="solution")
    func(prompts=["q"], completions=COMPLETIONS[:1], solution=["42"])  # pools built here first
    path = tmp_path / "func.pkl"
    path.write_bytes(pickle.dumps(func))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), *COMPLETIONS[:2]],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    values = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert values[0] == pytest.approx(1.2) and values[1] == 0.0


def test_verl_batch_with_math() -> None:
    out = verl.compute_score_batch(
        ["gsm8k"] * 3, COMPLETIONS, ["42"] * 3, [{"index": i} for i in range(3)], spec=MATH_SPEC
    )
    assert out[0]["score"] == pytest.approx(1.2) and out[0]["math_score"] == 1.0
    assert out[1]["score"] == 0.0 and out[1]["unscored"] is False
    assert {k for o in out for k in o} == {
        "score",
        "unscored",
        "reason",
        "math_score",
        "think_format_score",
    }


def _judge_spec(outputs: list[str]) -> dict[str, Any]:
    return {
        "rewards": [
            {
                "reward": "judge",
                "args": {
                    "backend": "mock",
                    "outputs": outputs,
                    "group_by_prompt": True,
                    "samples": 1,
                },
            }
        ]
    }


def test_real_judge_listwise_through_trl() -> None:
    # each prompt group of 2 gets one judge call answering both scores
    [func] = reward_funcs(_judge_spec(["Scores: \\boxed{8, 3}"]))
    assert isinstance(func, AsyncRewardFunc)
    out = asyncio.run(func(prompts=["p", "p", "q", "q"], completions=["a", "b", "c", "d"]))
    assert out == [8.0, 3.0, 8.0, 3.0]


def test_real_judge_sync_paths() -> None:
    spec = _judge_spec(["Scores: \\boxed{9, 2}"])
    [func] = reward_funcs(spec, async_mode="sync")
    assert isinstance(func, RewardFunc)
    assert func(prompts=["p", "p"], completions=["a", "b"]) == [9.0, 2.0]
    out = verl.compute_score_batch(
        ["chat"] * 2, ["a", "b"], [None, None], [{"question": "p"}] * 2, spec=spec
    )
    assert [o["score"] for o in out] == [9.0, 2.0]


def test_real_judge_unparseable_is_unscored() -> None:
    spec = _judge_spec(["I refuse to score."])
    out = verl.compute_score("chat", "a", None, {"question": "p"}, spec=spec)
    assert out["unscored"] is True and out["score"] == 0.0 and out["reason"].startswith("judge:")
