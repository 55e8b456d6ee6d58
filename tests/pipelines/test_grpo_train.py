"""GRPO really trains: a random tiny model learns the toy task on CPU; checkpoints resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("trl")

from rewardkit.errors import ConfigError
from rewardkit.pipelines.grpo import load_run_config, train_grpo
from rewardkit.testing.grpo_toy import build_tiny_model, toy_prompts

pytestmark = pytest.mark.slow


def make_run(tmp_path: Path, max_steps: int) -> Path:
    build_tiny_model(tmp_path / "model", seed=0)
    with (tmp_path / "prompts.jsonl").open("w") as handle:
        for prompt in toy_prompts(8):
            handle.write(json.dumps({"prompt": prompt, "target": "7"}) + "\n")
    config: dict[str, Any] = {
        "model": "model",
        "dataset": {"path": "prompts.jsonl", "reference_column": "target"},
        "reward": {
            "rewards": [
                {
                    "name": "says_seven",
                    "reward": "rewardkit.testing.grpo_toy:TargetTokenReward",
                    "args": {"target": "7"},
                }
            ]
        },
        "output_dir": "run",
        "samples": {"every": 5, "max_rows": 4},
        "grpo": {
            "max_steps": max_steps,
            "per_device_train_batch_size": 8,
            "num_generations": 8,
            "max_completion_length": 8,
            "learning_rate": 3e-2,
            "beta": 0.0,
            "logging_steps": 1,
            "save_steps": 10,
            "seed": 0,
            "use_cpu": True,
            "disable_tqdm": True,
            "gradient_checkpointing": False,
        },
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_rewards_rise_samples_written_and_resume(tmp_path: Path) -> None:
    config_path = make_run(tmp_path, max_steps=20)
    result = train_grpo(load_run_config(config_path))

    assert result.global_step == 20 and len(result.rewards) == 20
    first, last = sum(result.rewards[:5]) / 5, sum(result.rewards[-5:]) / 5
    # a random policy says "7" about 1 word in 44; after training nearly always
    assert first < 0.3 and last > 0.8, result.rewards
    assert all("rewardkit/says_seven" in h for h in result.log_history if "reward" in h)

    rows = [
        json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    ]
    assert sorted({r["step"] for r in rows}) == [5, 10, 15, 20]
    assert all(set(r) >= {"prompt", "completion", "reward", "components"} for r in rows)
    final = [r for r in rows if r["step"] == 20]
    assert len(final) == 4 and all(r["reward"] == r["components"]["says_seven"] for r in final)
    assert sum(r["reward"] for r in final) / 4 > 0.8
    assert (tmp_path / "run" / "checkpoint-20").is_dir()

    # the same output_dir without --resume is refused; with it, training continues
    with pytest.raises(ConfigError, match="--resume"):
        train_grpo(load_run_config(config_path))
    config_path = make_run(tmp_path, max_steps=22)
    resumed = train_grpo(load_run_config(config_path), resume=True)
    assert resumed.resumed_from is not None and resumed.resumed_from.endswith("checkpoint-20")
    assert resumed.global_step == 22
    assert len(resumed.rewards) == 22  # the history came back with the checkpoint
