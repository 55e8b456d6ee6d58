"""`rewardkit train grpo`: a short real run, and one-line errors for user mistakes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rewardkit.cli.main import main


def write_config(tmp_path: Path, **changes: Any) -> Path:
    config: dict[str, Any] = {
        "model": "model",
        "dataset": {"path": "prompts.jsonl"},
        "reward": {"rewards": [{"reward": "rewardkit.testing.grpo_toy:TargetTokenReward"}]},
        "output_dir": "run",
        "samples": {"every": 1, "max_rows": 2},
        "grpo": {
            "max_steps": 2,
            "per_device_train_batch_size": 4,
            "num_generations": 4,
            "max_completion_length": 4,
            "logging_steps": 1,
            "use_cpu": True,
            "disable_tqdm": True,
            "gradient_checkpointing": False,
        },
        **changes,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"grpo": {"num_generation": 4}},
            "grpo: unknown trl.GRPOConfig option(s): 'num_generation' (did you mean 'num_generations'?)",
        ),
        ({"modle": "x"}, "modle: Extra inputs are not permitted"),
        ({"reward": {"rewards": []}}, "reward"),
    ],
)
def test_user_mistakes_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, Any], message: str
) -> None:
    if "grpo" in changes:
        pytest.importorskip("trl")
    code = main(["train", "grpo", "--config", str(write_config(tmp_path, **changes))])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("rewardkit train: error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "grpo", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_train_without_algorithm_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train"]) == 2
    assert "grpo" in capsys.readouterr().out


@pytest.mark.slow
def test_short_run_writes_model_and_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("trl")
    from rewardkit.testing.grpo_toy import build_tiny_model, toy_prompts

    build_tiny_model(tmp_path / "model")
    (tmp_path / "prompts.jsonl").write_text(
        "".join(json.dumps({"prompt": p}) + "\n" for p in toy_prompts(4))
    )
    config = write_config(tmp_path)
    # --resume on a fresh output_dir says so and trains from the start
    assert main(["train", "grpo", "--config", str(config), "--resume"]) == 0
    out = capsys.readouterr().out
    assert (
        "no checkpoint found" in out
        and "trained 2 steps" in out
        and f"samples: {tmp_path / 'run' / 'samples.jsonl'}" in out
    )
    assert (tmp_path / "run" / "model.safetensors").is_file()
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [1, 1, 2, 2]
    # the run left a checkpoint: rerunning without --resume is refused, not overwritten
    assert main(["train", "grpo", "--config", str(config)]) == 2
    assert "pass --resume to continue" in capsys.readouterr().err
