"""The TRL adapter inside a real GRPOTrainer: tiny random model, CPU, a few steps."""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

from rewardkit.integrations.trl import reward_funcs, reward_weights

pytestmark = pytest.mark.slow

NUM_GENERATIONS = 4


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    from rewardkit.testing.grpo_toy import build_tiny_model

    return build_tiny_model(seed=0)


def train(
    tiny: tuple[Any, Any],
    tmp_path: Path,
    funcs: list[Any],
    rows: list[dict[str, Any]],
    **config: Any,
) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = tiny
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        num_generations=NUM_GENERATIONS,
        max_completion_length=6,
        max_steps=2,
        logging_steps=1,
        learning_rate=1e-3,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        **config,
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=funcs,
        args=args,
        train_dataset=Dataset.from_list(rows),
    )
    trainer.train()
    return trainer


def test_plain_prompts_combined_with_columns_none_and_metrics(
    tiny: tuple[Any, Any], tmp_path: Path
) -> None:
    spec = {
        "rewards": [
            {"reward": "h2_contains"},
            {"reward": "h2_field", "args": {"field": "bonus"}, "when": {"task": "chat"}},
        ]
    }
    rows = [
        {"prompt": "say the digit a", "solution": "7", "task": "math", "bonus": 0.0},
        {"prompt": "say the digit b", "solution": None, "task": "math", "bonus": 0.0},  # unscorable
        {"prompt": "say the digit c", "solution": "1", "task": "chat", "bonus": 5.0},
        {"prompt": "say the digit d", "solution": "2", "task": "chat", "bonus": 5.0},
    ]
    [func] = reward_funcs(spec, reference_column="solution")
    seen: list[tuple[Any, Any]] = []
    func.recorder = lambda name, samples, reports: seen.append((samples, reports))
    trainer = train(tiny, tmp_path, [func], rows)

    assert seen, "the reward function was never called"
    for samples, reports in seen:
        # TRL repeats each prompt num_generations times, and passes columns per completion
        assert set(Counter(s.prompt for s in samples).values()) == {NUM_GENERATIONS}
        for sample, report in zip(samples, reports, strict=True):
            if sample.prompt == "say the digit b":
                assert report.reward is None  # TRL gets None, not 0
            if sample.fields["task"] == "chat":
                assert report.reward is not None and report.reward >= 5.0
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert logs and all("rewardkit/h2_contains" in h for h in logs)
    assert all("rewards/rewardkit/mean" in h for h in logs)
    assert any("rewardkit/h2_field" in h for h in logs)


def test_conversational_per_reward_with_async_judge(
    tiny: tuple[Any, Any], tmp_path: Path, judge_batches: list[Any]
) -> None:
    spec = {
        "rewards": [
            {"reward": "h2_group_judge", "weight": 1.0},
            {"reward": "h2_contains", "weight": 0.5},
        ],
        "on_unscored": "skip",
    }
    rows = [
        {"prompt": [{"role": "user", "content": f"say the digit {c}"}], "reference": "7"}
        for c in "abcd"
    ]
    funcs = reward_funcs(spec, mode="per_reward")
    assert [type(f).__name__ for f in funcs] == ["AsyncRewardFunc", "RewardFunc"]
    trainer = train(tiny, tmp_path, funcs, rows, reward_weights=reward_weights(spec))

    assert judge_batches, "the async judge was never awaited"
    for batch in judge_batches:
        # the judge saw whole prompt groups in one call (listwise judging)
        assert set(Counter(prompt for prompt, _ in batch).values()) == {NUM_GENERATIONS}
        assert {prompt for prompt, _ in batch} <= {f"say the digit {c}" for c in "abcd"}
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert all("rewards/h2_group_judge/mean" in h and "rewards/h2_contains/mean" in h for h in logs)


def test_plain_prompts_combined_async_judge_is_awaited(
    tiny: tuple[Any, Any], tmp_path: Path, judge_batches: list[Any]
) -> None:
    """The async path on plain-text prompts, in every TRL the adapter supports.

    TRL <= 1.13 decides to await with `inspect.iscoroutinefunction`; an object whose
    `__call__` is async must still be recognised, or TRL iterates the coroutine.
    """
    spec = {"rewards": [{"reward": "h2_group_judge"}, {"reward": "h2_contains", "weight": 0.5}]}
    rows = [{"prompt": f"say the digit {c}", "reference": "7"} for c in "abcd"]
    [func] = reward_funcs(spec)
    assert inspect.iscoroutinefunction(func)
    seen: list[tuple[Any, Any]] = []
    func.recorder = lambda name, samples, reports: seen.append((samples, reports))
    trainer = train(tiny, tmp_path, [func], rows)

    assert judge_batches and seen
    for batch in judge_batches:
        assert set(Counter(prompt for prompt, _ in batch).values()) == {NUM_GENERATIONS}
    for samples, reports in seen:
        for sample, report in zip(samples, reports, strict=True):
            expected = sample.response.split().count("7") + 0.5 * ("7" in sample.response)
            assert report.reward == pytest.approx(expected)
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert logs and all("rewards/rewardkit/mean" in h for h in logs)
