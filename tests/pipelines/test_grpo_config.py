"""`rewardkit train grpo` config: validation, GRPOConfig pass-through, dataset loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rewardkit.errors import ConfigError, InputError
from rewardkit.pipelines.grpo import (
    DatasetConfig,
    GRPORunConfig,
    SampleLog,
    load_run_config,
    load_train_dataset,
)
from rewardkit.scoring import RewardReport
from rewardkit.spec import RewardSpec
from rewardkit.types import Sample, Score, Unscored

BASE: dict[str, Any] = {
    "model": "some/model",
    "dataset": {"path": "data.jsonl"},
    "reward": {"rewards": [{"reward": "rewardkit.testing.grpo_toy:TargetTokenReward"}]},
    "output_dir": "out",
}


def write_config(tmp_path: Path, **changes: Any) -> Path:
    data = {**BASE, **changes}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text('{"prompt": "p"}\n')
    (tmp_path / "spec.yaml").write_text("rewards: [{reward: h2}]\n")
    config = load_run_config(write_config(tmp_path, reward="spec.yaml"))
    assert config.dataset.path == str(tmp_path / "data.jsonl")
    assert config.reward == str(tmp_path / "spec.yaml")
    assert config.output_dir == str(tmp_path / "out")
    assert config.model == "some/model"  # no such folder: kept as a hub id


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"datset": {"path": "x"}}, "datset: Extra inputs are not permitted"),
        ({"reward_mode": "sum"}, "reward_mode"),
        ({"samples": {"every": 0}}, "samples.every"),
        ({"dataset": {"path": "x", "limit": 0}}, "dataset.limit"),
    ],
)
def test_invalid_configs_name_the_field(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_run_config(write_config(tmp_path, **changes))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_run_config(tmp_path / "nope.yaml")


def _grpo(tmp_path: Path, **changes: Any) -> Any:
    pytest.importorskip("trl")
    from rewardkit.pipelines.grpo import build_grpo_config

    config = GRPORunConfig.model_validate({**BASE, "output_dir": str(tmp_path), **changes})
    spec = RewardSpec.model_validate(
        {"rewards": [{"reward": "h2", "weight": 2.0}, {"reward": "h3", "weight": 0.5}]}
    )
    return build_grpo_config(config, spec)


@pytest.mark.parametrize(
    ("grpo", "mode", "message"),
    [
        (
            {"learnig_rate": 1e-5},
            "combined",
            "'learnig_rate' \\(did you mean 'learning_rate'\\?\\)",
        ),
        ({"zzz_qqq": 1}, "combined", "unknown trl.GRPOConfig option\\(s\\): 'zzz_qqq'$"),
        ({"output_dir": "x"}, "combined", "top level"),
        ({"reward_weights": [1.0]}, "combined", "weights belong in the spec"),
        ({"reward_weights": [1.0, 1.0]}, "per_reward", "come from the spec"),
        ({"num_generations": 3, "per_device_train_batch_size": 4}, "combined", "grpo: "),
    ],
)
def test_grpo_options_checked(
    tmp_path: Path, grpo: dict[str, Any], mode: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _grpo(tmp_path, grpo=grpo, reward_mode=mode)


def test_grpo_options_pass_through(tmp_path: Path) -> None:
    args = _grpo(
        tmp_path,
        grpo={"learning_rate": 0.25, "num_generations": 4, "max_steps": 7},
        reward_mode="per_reward",
    )
    assert (args.learning_rate, args.num_generations, args.max_steps) == (0.25, 4, 7)
    assert args.output_dir == str(tmp_path)
    assert args.reward_weights == [2.0, 0.5]  # from the spec in per_reward mode
    assert args.report_to in ("none", [], ["none"])


# --- datasets --------------------------------------------------------------------------


def test_jsonl_dataset_keeps_columns(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    path = tmp_path / "d.jsonl"
    path.write_text(
        "\n".join(json.dumps({"question": f"q{i}", "answer": str(i)}) for i in range(5))
    )
    ds = load_train_dataset(DatasetConfig(path=str(path), prompt_column="question", limit=3))
    assert ds.column_names == ["prompt", "answer"]
    assert ds["prompt"] == ["q0", "q1", "q2"]


def test_parquet_and_datasets_folder(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = [{"prompt": "a", "reference": "1"}, {"prompt": "b", "reference": "2"}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(
        str(tmp_path / "folder")
    )
    for path in ("d.parquet", "folder"):
        ds = load_train_dataset(DatasetConfig(path=str(tmp_path / path)))
        assert ds["prompt"] == ["a", "b"] and ds["reference"] == ["1", "2"]
    with pytest.raises(InputError, match="splits"):
        load_train_dataset(DatasetConfig(path=str(tmp_path / "folder"), split="test"))


def test_system_prompt_makes_chat_prompts(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "hi"}\n')
    ds = load_train_dataset(DatasetConfig(path=str(path), system_prompt="be brief"))
    assert ds[0]["prompt"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


@pytest.mark.parametrize(
    ("content", "config", "message"),
    [
        ('{"prompt": "a"}\nnot json\n', {}, "line 2: invalid JSON"),
        ('{"question": "a"}\n', {}, "no prompt column 'prompt'"),
        ('{"prompt": "a", "q": "b"}\n', {"prompt_column": "q"}, "both 'prompt'"),
    ],
)
def test_bad_datasets(tmp_path: Path, content: str, config: dict[str, Any], message: str) -> None:
    pytest.importorskip("datasets")
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_train_dataset(DatasetConfig(path=str(path), **config))


def test_missing_local_dataset(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_train_dataset(DatasetConfig(path=str(tmp_path / "gone.jsonl")))


# --- sample log ------------------------------------------------------------------------


def test_sample_log_joins_per_reward_functions(tmp_path: Path) -> None:
    log = SampleLog(tmp_path / "s.jsonl", every=1, max_rows=2, weights={"a": 2.0, "b": 0.5})
    samples = [Sample("p", "r1", "7"), Sample("p", "r2", "7"), Sample("p", "r3", "7")]
    log.record(
        "a",
        samples,
        [
            RewardReport(1.0, {"a": Score(1.0)}),
            RewardReport(None, {"a": Unscored("x")}, reason="a: x"),
            RewardReport(0.0),
        ],
    )
    log.record(
        "b",
        samples,
        [
            RewardReport(4.0, {"b": Score(4.0)}),
            RewardReport(None, {}, reason="b: y"),
            RewardReport(0.0),
        ],
    )
    assert log.write(step=3) == 2  # max_rows
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert rows[0] == {
        "step": 3,
        "prompt": "p",
        "completion": "r1",
        "reference": "7",
        "reward": 2.0 * 1.0 + 0.5 * 4.0,
        "components": {"a": 1.0, "b": 4.0},
    }
    assert rows[1]["reward"] is None and rows[1]["components"] == {"a": None}
    assert rows[1]["unscored_reason"] == "a: x; b: y"


def test_hub_id_goes_to_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    calls: list[tuple[Any, ...]] = []

    def fake_load(path: str, name: str | None = None, split: str | None = None) -> Any:
        calls.append((path, name, split))  # no network in tests: stand in for the hub
        return datasets.Dataset.from_list([{"question": "q", "answer": "1"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    ds = load_train_dataset(
        DatasetConfig(path="openai/gsm8k", name="main", split="test", prompt_column="question")
    )
    assert calls == [("openai/gsm8k", "main", "test")]
    assert ds.column_names == ["prompt", "answer"]
