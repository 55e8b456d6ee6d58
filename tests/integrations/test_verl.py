"""verl's compute_score forms, called with verl's keyword names and reward_kwargs."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest

from rewardkit.errors import ConfigError
from rewardkit.integrations import verl

SPEC = {
    "rewards": [
        {"reward": "h2_contains", "when": {"data_source": ["gsm8k", "math"]}},
        {"reward": "h2_length", "weight": 0.1, "when": {"task": "chat"}},
    ]
}
KEYS = {"score", "unscored", "reason", "h2_contains_score", "h2_length_score"}


@pytest.mark.parametrize(
    ("data_source", "solution", "truth", "extra", "score", "unscored"),
    [
        ("gsm8k", "so 42", "42", {"index": 3}, 1.0, False),
        ("math", "so 41", "42", None, 0.0, False),  # wrong: a real 0
        ("gsm8k", "so 42", None, None, 0.0, True),  # unscored -> 0.0 + flag
        ("wiki", "hello there", "x", {"task": "chat"}, 0.2, False),  # routed on extra_info
        ("wiki", "hello", "x", {}, 0.0, True),  # no reward applies
    ],
)
def test_compute_score_signature_and_dict(
    data_source: str, solution: str, truth: Any, extra: Any, score: float, unscored: bool
) -> None:
    out = verl.compute_score(data_source, solution, truth, extra, spec=SPEC)
    assert set(out) == KEYS  # the same keys every time: verl stacks them per key
    assert out["score"] == pytest.approx(score)
    assert out["unscored"] is unscored
    assert bool(out["reason"]) is unscored


def test_reason_names_the_failing_reward() -> None:
    out = verl.compute_score("gsm8k", "x", None, spec=SPEC)
    assert out["reason"].startswith("h2_contains: no_reference")
    out = verl.compute_score("wiki", "x", None, spec=SPEC)
    assert out["reason"].startswith("no_matching_reward")


def test_called_like_verls_naive_manager_with_reward_kwargs(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("rewards:\n  - reward: h2_contains\n    weight: 2\n")
    reward_kwargs = {"spec": str(spec_file)}  # custom_reward_function.reward_kwargs
    out = verl.compute_score(
        data_source="gsm8k",
        solution_str="=7",
        ground_truth="7",
        extra_info={"split": "train"},
        **reward_kwargs,
    )
    assert out["score"] == 2.0 and out["h2_contains_score"] == 1.0


def test_reward_by_name_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert verl.compute_score("d", "a 5", "5", reward="h2_contains")["score"] == 1.0
    monkeypatch.setenv("REWARDKIT_REWARD", "h2_length")
    assert verl.compute_score("d", "a b c", None)["score"] == 3.0
    monkeypatch.delenv("REWARDKIT_REWARD")
    with pytest.raises(ConfigError, match="REWARDKIT_SPEC"):
        verl.compute_score("d", "a", None)


def test_batch_form_matches_per_sample_form() -> None:
    sig = inspect.signature(verl.compute_score_batch)
    assert list(sig.parameters)[:4] == [
        "data_sources",
        "solution_strs",
        "ground_truths",
        "extra_infos",
    ]
    rows = [
        ("gsm8k", "so 42", "42", {"index": 0}),
        ("math", "so 1", "42", {"index": 1}),
        ("wiki", "a b", None, {"task": "chat"}),
        ("gsm8k", "x", None, None),
    ]
    batch = verl.compute_score_batch(
        data_sources=[r[0] for r in rows],
        solution_strs=[r[1] for r in rows],
        ground_truths=[r[2] for r in rows],
        extra_infos=[r[3] for r in rows],
        spec=SPEC,
    )
    single = [verl.compute_score(*r, spec=SPEC) for r in rows]
    assert batch == single
    assert [b["score"] for b in batch] == [1.0, 0.0, pytest.approx(0.2), 0.0]


def test_batch_form_accepts_numpy_arrays() -> None:
    np = pytest.importorskip("numpy")
    out = verl.compute_score_batch(
        np.array(["gsm8k", "gsm8k"], dtype=object),
        ["42", "1"],
        np.array(["42", "42"], dtype=object),
        np.array([{"index": 0}, {"index": 1}], dtype=object),
        spec=SPEC,
    )
    assert [o["score"] for o in out] == [1.0, 0.0]


def test_batch_length_mismatch_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must match"):
        verl.compute_score_batch(["a"], ["x", "y"], ["1", "2"], None, spec=SPEC)


def test_batch_form_judges_groups_together(judge_batches: list[Any]) -> None:
    out = verl.compute_score_batch(
        ["chat"] * 4,
        ["7", "7 7", "7", "x"],
        [None] * 4,
        [{"question": "q1"}, {"question": "q1"}, {"question": "q2"}, {"question": "q2"}],
        reward="h2_group_judge",
    )
    assert [o["score"] for o in out] == [1.0, 2.0, 1.0, 0.0]
    assert len(judge_batches) == 1 and [p for p, _ in judge_batches[0]] == ["q1", "q1", "q2", "q2"]


def test_async_form_for_the_reward_loop() -> None:
    assert inspect.iscoroutinefunction(verl.compute_score_async)
    out = asyncio.run(
        verl.compute_score_async(
            data_source="chat",
            solution_str="7 7 7",
            ground_truth=None,
            extra_info={"question": "q"},
            reward_router_address="127.0.0.1:1",  # what verl's reward loop adds; ignored
            reward_model_tokenizer=None,
            reward="h2_group_judge",
        )
    )
    assert out["score"] == 3.0 and out["unscored"] is False


def test_scorer_is_cached_per_spec() -> None:
    from rewardkit.integrations import _common

    verl.compute_score("gsm8k", "1", "1", spec=SPEC)
    before = dict(_common._SCORERS)
    for _ in range(5):
        verl.compute_score("gsm8k", "1", "1", spec=SPEC)
    assert before == _common._SCORERS
