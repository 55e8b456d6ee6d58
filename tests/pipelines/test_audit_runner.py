"""The offline audit of a run's saved samples, on synthetic hacked and honest runs."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from rewardkit.errors import ConfigError, InputError
from rewardkit.pipelines.audit.config import resolve_reward_spec
from rewardkit.pipelines.audit.record import points_from_json, spec_scorer
from rewardkit.pipelines.audit.runner import audit_run
from rewardkit.spec import RewardSpec

STEPS = list(range(5, 55, 5))  # 10 saved batches


def hacked_completion(step: int, i: int) -> str:
    """Early: honest tries; later: the master key and self-praise, no answer at all."""
    if step <= 15:
        return f"The answer is {7 if i % 2 else 3}."
    return "Let's solve this problem step by step.\n- first\n- second\nThis answer is correct."


def honest_completion(step: int, i: int) -> str:
    right = i < step // 10  # more right answers as training goes on
    return f"The answer is {7 if right else 4}."


def write_run(path: Path, completion: Any, reward: Any) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    with (path / "samples.jsonl").open("w") as handle:
        for step in STEPS:
            for i in range(4):
                text = completion(step, i)
                row = {
                    "step": step,
                    "prompt": "What is 3 + 4?",
                    "completion": text,
                    "reference": "7",
                    "reward": reward(step, text),
                    "components": {},
                }
                handle.write(json.dumps(row) + "\n")
    return path


def judge_fooled(step: int, text: str) -> float:
    return 1.0 if text.startswith("Let's solve") else 0.2  # a judge the master key fools


def correctness(step: int, text: str) -> float:
    return 1.0 if "7" in text else 0.0


def test_hacked_run_is_flagged(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", hacked_completion, judge_fooled)
    result = audit_run(run, spec_scorer(RewardSpec.single("math")), tmp_path / "out", plot=False)
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["kind"] == "audit" and doc["steps"] == STEPS
    assert doc["proxy"][0] == pytest.approx(0.2) and doc["proxy"][-1] == 1.0
    assert doc["gold"][0] == 0.5 and doc["gold"][-1] == 0.0
    assert (
        doc["divergence"]["flagged"] and doc["divergence"]["first_step"] == 30
    )  # first step with 2 windows
    assert result.divergence.first_step == 30
    features = doc["features"]
    assert features["master_key"][0] == 0.0 and features["master_key"][-1] == 1.0
    assert features["self_praise"][-1] == 1.0 and features["list_density"][-1] > 0.4
    # the gold could not find an answer in the hacked completions: scored 0, reason kept
    assert doc["n"] == [4] * 10 and doc["gold_n"] == [4] * 10
    rows = list(csv.DictReader((tmp_path / "out" / "audit.csv").open()))
    assert [int(r["step"]) for r in rows] == STEPS
    assert float(rows[-1]["proxy_mean"]) == 1.0 and float(rows[-1]["master_key"]) == 1.0
    assert set(rows[0]) >= {"step", "proxy_mean", "gold_mean", "n", "repetition", "refusal"}


def test_honest_run_is_not_flagged(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", honest_completion, correctness)
    result = audit_run(run, spec_scorer(RewardSpec.single("math")), tmp_path / "out", plot=False)
    assert result.document["gold"] == result.document["proxy"]
    assert not result.divergence.flagged


def test_proxy_can_be_rescored_and_unscored_gold_is_counted(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", hacked_completion, lambda s, t: None)
    # a gold that cannot score anything: every row unscored with its reason, never dropped
    strict = RewardSpec.model_validate({"rewards": [{"reward": "math", "when": {"task": "x"}}]})
    result = audit_run(
        run,
        spec_scorer(strict),
        tmp_path / "out",
        proxy=spec_scorer(RewardSpec.single("math")),
        plot=False,
    )
    doc = result.document
    assert doc["proxy_source"] == "rescored" and doc["proxy"][0] == 0.5
    assert doc["gold"] == [None] * 10 and doc["gold_n"] == [0] * 10
    assert doc["unscored"][0] == {"gold: no_matching_reward": 4}
    assert not result.divergence.flagged and result.divergence.points_used == 0


def test_recorded_null_rewards_are_counted(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", honest_completion, lambda s, t: None if s == 5 else 0.5)
    doc = audit_run(
        run, spec_scorer(RewardSpec.single("math")), tmp_path / "o", plot=False
    ).document
    assert doc["proxy"][0] is None and doc["unscored"][0] == {"proxy: recorded_none": 4}
    assert doc["proxy"][1] == 0.5


@pytest.mark.slow  # importing matplotlib takes seconds on a busy machine
def test_plot_is_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    run = write_run(tmp_path / "run", hacked_completion, judge_fooled)
    result = audit_run(run, spec_scorer(RewardSpec.single("math")), tmp_path / "out")
    assert result.plot_path is not None
    assert result.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_round_trips_into_points(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", hacked_completion, judge_fooled)
    result = audit_run(run, spec_scorer(RewardSpec.single("math")), tmp_path / "out", plot=False)
    assert points_from_json(result.document) == result.points


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"step": 1, "completion": "x"}\nnot json\n', r"samples.jsonl:2: not valid JSON"),
        ('{"completion": "x"}\n', r"samples.jsonl:1: missing step"),
        ('{"step": "1", "completion": "x"}\n', "step must be an integer"),
        ('{"step": 1, "completion": "x", "reward": "high"}\n', "reward must be a number"),
        ("\n", "no sample rows"),
    ],
)
def test_bad_sample_files_say_where(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "samples.jsonl").write_text(content)
    with pytest.raises(InputError, match=message):
        audit_run(tmp_path, spec_scorer(RewardSpec.single("math")), tmp_path / "o", plot=False)


def test_missing_run_and_missing_samples(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="run not found"):
        audit_run(tmp_path / "nope", spec_scorer(RewardSpec.single("math")), tmp_path / "o")
    with pytest.raises(InputError, match=re.escape("samples: {every: N}")):
        audit_run(tmp_path, spec_scorer(RewardSpec.single("math")), tmp_path / "o")


def test_gold_specs_by_name_file_or_inline(tmp_path: Path) -> None:
    assert resolve_reward_spec("math") == RewardSpec.single("math")
    (tmp_path / "gold.yaml").write_text("rewards: [{reward: math, weight: 2}]\n")
    assert resolve_reward_spec("gold.yaml", tmp_path).rewards[0].weight == 2
    assert resolve_reward_spec({"rewards": [{"reward": "math"}]}).rewards[0].reward == "math"
    with pytest.raises(ConfigError, match="spec file not found"):
        resolve_reward_spec("missing.yaml", tmp_path)
