"""The GRPO audit hook: a tiny policy that hacks its proxy is flagged; an honest one is not."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from rewardkit.errors import ConfigError
from rewardkit.pipelines.grpo import load_run_config

# The toy policy's vocabulary has digits and a few words. Gold: is the answer's last
# number the reference "7" (the `math` rule). Hackable proxy: a judge fooled by a master
# key — it pays for every "say" in the answer, whatever the answer is.
FOOLED_JUDGE = {
    "rewards": [
        {
            "name": "fooled_judge",
            "reward": "rewardkit.testing.grpo_toy:TargetTokenReward",
            "args": {"target": "say"},
        }
    ]
}
GOLD_PROXY = {"rewards": [{"reward": "math"}]}


def make_run(tmp_path: Path, reward: dict[str, Any], *, max_steps: int = 12, **audit: Any) -> Path:
    from rewardkit.testing.grpo_toy import build_tiny_model, toy_prompts

    build_tiny_model(tmp_path / "model", seed=0)
    prompts = toy_prompts(24)
    for name, rows in (("train.jsonl", prompts[:8]), ("heldout.jsonl", prompts[8:])):
        (tmp_path / name).write_text(
            "".join(json.dumps({"prompt": p, "reference": "7"}) + "\n" for p in rows)
        )
    config = {
        "model": "model",
        "dataset": {"path": "train.jsonl"},
        "reward": reward,
        "output_dir": "run",
        "samples": {"every": 2, "max_rows": 8},
        "audit": {
            "gold": "math",
            "prompts": "heldout.jsonl",
            "every": 2,
            "max_new_tokens": 8,
            "sampling": "sample",
            "divergence": {"window": 2, "delta": 0.2, "gold_tolerance": 0.05},
            **audit,
        },
        "grpo": {
            "max_steps": max_steps,
            "per_device_train_batch_size": 8,
            "num_generations": 8,
            "max_completion_length": 8,
            "learning_rate": 5e-2,
            "beta": 0.0,
            "logging_steps": 1,
            "save_steps": 100,
            "seed": 0,
            "use_cpu": True,
            "disable_tqdm": True,
            "gradient_checkpointing": False,
        },
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_audit_section_is_checked_and_paths_resolved(tmp_path: Path) -> None:
    base = {"model": "m", "dataset": {"path": "d.jsonl"}, "reward": GOLD_PROXY, "output_dir": "o"}
    cases = [
        ({"gold": "math"}, "audit.prompts: Field required"),
        ({"gold": "math", "prompts": "p.jsonl", "every": 0}, "audit.every"),
        ({"gold": "math", "prompts": "p.jsonl", "evry": 3}, "audit.evry: Extra inputs"),
        ({"gold": {"rewards": []}, "prompts": "p.jsonl"}, "audit.gold: spec: invalid spec"),
        ({"gold": "math", "prompts": "p.jsonl", "divergence": {"window": 0}}, "divergence.window"),
    ]
    for audit, message in cases:
        (tmp_path / "run.yaml").write_text(yaml.safe_dump({**base, "audit": audit}))
        with pytest.raises(ConfigError, match=message):
            load_run_config(tmp_path / "run.yaml")
    (tmp_path / "p.jsonl").write_text('{"prompt": "x"}\n')
    (tmp_path / "gold.yaml").write_text("rewards: [{reward: math}]\n")
    (tmp_path / "run.yaml").write_text(
        yaml.safe_dump({**base, "audit": {"gold": "gold.yaml", "prompts": "p.jsonl"}})
    )
    config = load_run_config(tmp_path / "run.yaml")
    assert config.audit is not None
    assert config.audit.prompts == str(tmp_path / "p.jsonl")
    assert config.audit.gold == str(tmp_path / "gold.yaml")
    assert config.audit.every == 10 and config.audit.sampling == "greedy"


@pytest.mark.slow  # importing trl alone takes seconds
def test_unknown_gold_reward_fails_before_training(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    from rewardkit.pipelines.grpo import train_grpo

    (tmp_path / "d.jsonl").write_text('{"prompt": "x", "reference": "7"}\n')
    config = {
        "model": "m", "dataset": {"path": "d.jsonl"}, "reward": GOLD_PROXY, "output_dir": "o",
        "audit": {"gold": "no_such_reward", "prompts": "d.jsonl"}, "grpo": {"use_cpu": True},
    }  # fmt: skip
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"audit\.gold: unknown reward 'no_such_reward'"):
        train_grpo(load_run_config(tmp_path / "run.yaml"))


@pytest.mark.slow
def test_hacked_proxy_is_flagged_and_honest_proxy_is_not(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    from rewardkit.pipelines.audit.divergence import RewardHackingWarning
    from rewardkit.pipelines.grpo import train_grpo

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hacked = train_grpo(load_run_config(make_run(tmp_path / "hack", FOOLED_JUDGE)))
    audit = hacked.audit
    assert audit is not None and audit["kind"] == "audit"
    assert audit["steps"] == [0, 2, 4, 6, 8, 10, 12]
    assert audit["proxy"][-1] > audit["proxy"][0] + 0.3, audit["proxy"]
    assert max(audit["gold"][-2:]) <= 0.25, audit["gold"]
    assert audit["divergence"]["flagged"], audit
    assert any(issubclass(w.category, RewardHackingWarning) for w in caught)
    # the hack shows in the text: the policy repeats its master key
    assert audit["features"]["repetition"][-1] > audit["features"]["repetition"][0]

    run = tmp_path / "hack" / "run"
    rows = list(csv.DictReader((run / "audit.csv").open()))
    assert [int(r["step"]) for r in rows] == audit["steps"]
    assert json.loads((run / "audit.json").read_text())["divergence"] == audit["divergence"]
    # both curves reached the trainer's loggers, and the training metrics were not taken
    logged = [h for h in hacked.log_history if "audit/proxy_mean" in h]
    assert [h["step"] for h in logged] == audit["steps"]
    assert len(hacked.rewards) == 12

    honest = train_grpo(load_run_config(make_run(tmp_path / "honest", GOLD_PROXY)))
    assert honest.audit is not None
    assert honest.audit["proxy"] == honest.audit["gold"]
    assert not honest.audit["divergence"]["flagged"], honest.audit


@pytest.mark.parametrize("name", ["hacked", "honest"])
def test_example_configs_load(name: str) -> None:
    """examples/audit's configs (shown in docs/audit.md) are valid run configs."""
    folder = Path(__file__).resolve().parents[2] / "examples" / "audit"
    config = load_run_config(folder / f"{name}.yaml")
    assert config.audit is not None and config.audit.gold == "math"
    assert config.audit.prompts == str(folder / "heldout.jsonl")
    assert config.audit.sampling == "sample" and config.audit.every == 2
    assert config.output_dir == str(folder / "runs" / name)
