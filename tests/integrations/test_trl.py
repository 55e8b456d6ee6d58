"""The TRL adapter called exactly as GRPOTrainer._calculate_rewards calls reward functions."""

from __future__ import annotations

import asyncio
import inspect
import pickle
from typing import Any

import pytest

from rewardkit.errors import ConfigError, InputError
from rewardkit.integrations.trl import (
    AsyncRewardFunc,
    RewardFunc,
    check_trl_version,
    reward_funcs,
    reward_weights,
)

SPEC = {
    "rewards": [
        {"reward": "h2_contains", "weight": 2.0},
        {"reward": "h2_length", "weight": 0.5, "when": {"task": "chat"}},
    ],
    "on_unscored": "unscored",
}


class Metrics:
    """Stands in for TRL's `log_metric` / `log_extra` callables."""

    def __init__(self) -> None:
        self.metrics: dict[str, list[float]] = {}
        self.extra: dict[str, list[Any]] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metrics.setdefault(name, []).append(value)

    def log_extra(self, column: str, values: list[Any]) -> None:
        self.extra.setdefault(column, []).extend(values)


def call(
    func: Any, prompts: list[Any], completions: list[Any], **columns: Any
) -> list[float | None]:
    """Mirror of TRL: prompts/completions/completion_ids plus columns and trainer hooks."""
    metrics = columns.pop("_metrics", Metrics())
    out = func(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1, 2]] * len(completions),
        trainer_state=object(),
        log_extra=metrics.log_extra,
        log_metric=metrics.log_metric,
        **columns,
    )
    if inspect.iscoroutine(out):
        out = asyncio.run(out)
    return out


@pytest.mark.parametrize(
    ("completion", "task", "reference", "expected"),
    [
        ("the answer is 42", "math", "42", 2.0),  # contains only: 2.0 * 1
        ("no idea", "math", "42", 0.0),  # wrong: a real 0, not None
        ("it is 42", "chat", "42", 2.0 + 0.5 * 3),  # both rewards apply
        ("it is 42", "math", None, None),  # unscored reference -> None for TRL
    ],
)
def test_combined_plain_strings(
    completion: str, task: str, reference: Any, expected: float | None
) -> None:
    [func] = reward_funcs(SPEC)
    out = call(func, ["q"], [completion], reference=[reference], task=[task])
    assert out == [expected]


def test_combined_batch_kwargs_columns_and_metrics() -> None:
    [func] = reward_funcs(SPEC)
    assert func.__name__ == "rewardkit" and isinstance(func, RewardFunc)
    m = Metrics()
    out = call(
        func,
        ["p1", "p1", "p2", "p2"],
        ["7 is 42", "nope", "x 42", "y"],
        reference=["42", "42", None, "7"],
        task=["math", "chat", "math", "math"],
        _metrics=m,
    )
    assert out == [2.0, 0.0 + 0.5 * 1, None, 0.0]
    # per-component means over the samples each scored; the unscored fraction
    assert m.metrics["rewardkit/h2_contains"] == [pytest.approx(1 / 3)]
    assert m.metrics["rewardkit/h2_length"] == [1.0]
    assert m.metrics["rewardkit/unscored_frac"] == [0.25]
    assert m.extra["rewardkit_unscored_reason"][2].startswith("h2_contains: no_reference")
    assert m.extra["rewardkit_unscored_reason"][0] == ""


def test_conversational_prompts_and_completions() -> None:
    [func] = reward_funcs(reward="h2_contains")
    prompts = [
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is 6*7?"}],
    ] * 2
    completions = [
        [{"role": "assistant", "content": "It is 42."}],
        [{"role": "assistant", "content": "It is 41."}],
    ]
    assert call(func, prompts, completions, reference=["42", "42"]) == [1.0, 0.0]


@pytest.mark.parametrize("column", ["solution", "answer"])
def test_reference_column_is_configurable(column: str) -> None:
    [func] = reward_funcs(reward="h2_contains", reference_column=column)
    assert call(func, ["q", "q"], ["a 5", "a 6"], **{column: ["5", "5"]}) == [1.0, 0.0]


def test_missing_reference_column_names_the_columns() -> None:
    [func] = reward_funcs(reward="h2_contains", reference_column="solution")
    with pytest.raises(ConfigError, match=r"'solution'.*\['answer', 'prompt'\]"):
        call(func, ["q"], ["a"], answer=["5"])


def test_default_reference_column_absent_means_no_reference() -> None:
    [func] = reward_funcs(reward="h2_length")
    assert call(func, ["q"], ["one two three"]) == [3.0]


def test_columns_become_fields() -> None:
    [func] = reward_funcs(reward="h2_field", reward_args={"field": "bonus"})
    assert call(func, ["a", "b"], ["x", "y"], bonus=[0.25, 3]) == [0.25, 3.0]


def test_bad_column_length_is_an_input_error() -> None:
    [func] = reward_funcs(reward="h2_length")
    with pytest.raises(InputError, match="'bonus' has 1 values for 2 completions"):
        call(func, ["a", "b"], ["x", "y"], bonus=[1])


def test_unknown_non_column_keywords_are_ignored() -> None:
    # a hook a future TRL may add must not break training, nor become a sample field
    [func] = reward_funcs(reward="h2_field", reward_args={"field": "new_hook"})
    out = call(func, ["a"], ["x"], new_hook=lambda: None, environments=None)
    assert out == [None]


def test_per_reward_mode_one_function_per_entry() -> None:
    funcs = reward_funcs(SPEC, mode="per_reward")
    assert [f.__name__ for f in funcs] == ["h2_contains", "h2_length"]
    assert reward_weights(SPEC) == [2.0, 0.5]
    columns = {"reference": ["42", "42"], "task": ["math", "chat"]}
    contains = call(funcs[0], ["q", "q"], ["42", "4 2"], **columns)
    length = call(funcs[1], ["q", "q"], ["42", "4 2"], **columns)
    # weights are TRL's job here: each function returns its unweighted value
    assert contains == [1.0, 0.0]
    # routing: the length reward does not apply to the math sample -> None (TRL skips it)
    assert length == [None, 2.0]


def test_per_reward_zero_policy_turns_unscored_into_zero() -> None:
    spec = {"rewards": [{"reward": "h2_contains"}], "on_unscored": "zero"}
    [func] = reward_funcs(spec, mode="per_reward")
    assert call(func, ["q"], ["x"], reference=[None]) == [0.0]


def test_spec_from_file(tmp_path: Any) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("rewards:\n  - reward: h2_contains\n    weight: 3\n")
    [func] = reward_funcs(path)
    assert func.__name__ == "h2_contains"
    assert call(func, ["q"], ["5"], reference=["5"]) == [3.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no reward given"),
        ({"spec": SPEC, "reward": "h2_contains"}, "not both"),
        ({"reward": "h2_contains", "mode": "sum"}, "mode must be"),
        ({"reward": "no_such_reward_h2"}, "unknown reward"),
    ],
)
def test_config_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        reward_funcs(**kwargs)[0](prompts=["q"], completions=["a"])


def test_async_judge_function_groups_by_prompt(judge_batches: list[Any]) -> None:
    [func] = reward_funcs(reward="h2_group_judge", reward_args={"max_group": 2})
    assert isinstance(func, AsyncRewardFunc)
    assert inspect.iscoroutinefunction(func.__call__)  # what TRL's is_async_callable checks
    assert inspect.iscoroutinefunction(func)  # what TRL 1.0-1.13 check on the object itself
    assert inspect.iscoroutinefunction(pickle.loads(pickle.dumps(func)))
    # the signature TRL sees is the reward-function one, not (self, ...)
    assert list(inspect.signature(func).parameters) == [
        "prompts",
        "completions",
        "completion_ids",
        "kwargs",
    ]
    prompts = ["p1"] * 3 + ["p2"] * 3  # TRL: each prompt repeated num_generations times
    completions = ["7", "7 7", "x", "7 7 7", "y", "7"]
    assert call(func, prompts, completions) == [1.0, 2.0, 0.0, 3.0, 0.0, 1.0]
    assert len(judge_batches) == 1 and len(judge_batches[0]) == 6  # the whole batch at once


def test_sync_mode_still_runs_an_async_judge() -> None:
    [func] = reward_funcs(reward="h2_group_judge", async_mode="sync")
    assert isinstance(func, RewardFunc)
    assert not inspect.iscoroutinefunction(func)  # TRL must call it, not await it
    assert call(func, ["p", "p"], ["7 7", "no"]) == [2.0, 0.0]
    assert call(func, ["p"], ["7"]) == [1.0]  # a second call reuses the same loop


@pytest.mark.parametrize("async_mode", ["sync", "async"])
def test_functions_pickle_and_work_after(async_mode: str) -> None:
    funcs = reward_funcs(SPEC, mode="per_reward", async_mode=async_mode)  # type: ignore[arg-type]
    call(funcs[0], ["q"], ["42"], reference=["42"], task=["math"])  # builds the shared Scorer
    funcs[0].recorder = lambda *a: None
    clones = pickle.loads(pickle.dumps(funcs))
    assert [c.__name__ for c in clones] == ["h2_contains", "h2_length"]
    assert clones[0].recorder is None
    assert call(clones[0], ["q"], ["42"], reference=["42"], task=["math"]) == [1.0]


def test_recorder_sees_samples_and_reports() -> None:
    [func] = reward_funcs(SPEC)
    seen: list[tuple[str, list[Any], list[Any]]] = []
    func.recorder = lambda name, samples, reports: seen.append((name, samples, reports))
    call(func, ["q"], ["42"], reference=["42"], task=["math"])
    [(name, samples, reports)] = seen
    assert name == "rewardkit" and samples[0].response == "42" and reports[0].reward == 2.0


def test_importing_integrations_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rewardkit.integrations, rewardkit.integrations.trl, "
        "rewardkit.integrations.verl, rewardkit.integrations.openrlhf; "
        "print('torch' in sys.modules, 'trl' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("1.0.0", True),
        ("1.13.0", True),
        ("1.16.0", True),
        ("1.17.0.dev0", True),
        ("0.29.1", False),
        ("2.0.0", False),
        ("garbage", False),
    ],
)
def test_trl_version_range(version: str, supported: bool) -> None:
    if supported:
        check_trl_version(version)
    else:
        with pytest.raises(ConfigError, match=r"trl>=1\.0,<2"):
            check_trl_version(version)
