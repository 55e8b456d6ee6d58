"""The loop closes: sampled SFT rows load with `datasets` and train a tiny model with TRL."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("trl")

from rewardkit.backends import MockBackend
from rewardkit.backends.base import GenerateRequest
from rewardkit.errors import ConfigError
from rewardkit.pipelines.sample import SampleRunConfig, run_sample_sync
from rewardkit.pipelines.sft import load_sft_config, train_sft
from rewardkit.testing.grpo_toy import build_tiny_model, toy_prompts

TOY_SPEC = {
    "rewards": [
        {
            "name": "says_seven",
            "reward": "rewardkit.testing.grpo_toy:TargetTokenReward",
            "args": {"target": "7"},
        }
    ]
}


def toy_policy(request: GenerateRequest, index: int) -> str:
    """Half the samples say the digit, half do not: only the former pass `--keep above`."""
    return "7 7 7 7" if index % 2 == 0 else "a b c d"


def sample_toy(tmp_path: Path, fmt: str = "jsonl") -> Path:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in toy_prompts(8)))
    config = SampleRunConfig.model_validate(
        {
            "prompts": prompts,
            "output": tmp_path / "toy-rs",
            "spec": TOY_SPEC,
            "policy": {"backend": "mock"},
            "sampling": {"n": 4},
            "keep": {"policy": "above", "min_reward": 0.5},
            "filters": {"summary": "off", "min_language_consistency": None},
            "dedup": {"exact": False, "near_threshold": None},  # the toy rows repeat on purpose
            "out": {"format": fmt, "progress": False, "bootstrap": 0},
        }
    )
    result = run_sample_sync(config, backend=MockBackend(toy_policy))
    assert result.summary["kept"] == 16 and result.summary["rejected"]["below_min_reward"] == 16
    return result.sft_path


def test_sft_rows_load_with_datasets_unchanged(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    path = sample_toy(tmp_path)
    loaded = datasets.load_dataset("json", data_files=str(path), split="train")
    assert len(loaded) == 16
    row = loaded[0]
    assert row["messages"][-1] == {"role": "assistant", "content": "7 7 7 7"}
    assert json.loads(row["rewards"]) == {"says_seven": 1.0}
    assert row["policy"] == "mock:mock" and json.loads(row["sampling"])["n"] == 4


@pytest.mark.parametrize("fmt", ["parquet", "datasets"])
def test_sft_rows_in_parquet_and_datasets_folder(tmp_path: Path, fmt: str) -> None:
    datasets = pytest.importorskip("datasets")
    path = sample_toy(tmp_path, fmt)
    loaded = (
        datasets.load_from_disk(str(path))
        if fmt == "datasets"
        else datasets.load_dataset("parquet", data_files=str(path), split="train")
    )
    assert len(loaded) == 16 and loaded[0]["messages"][0]["role"] == "user"


def write_sft_config(tmp_path: Path, sft: dict[str, Any], dataset: dict[str, Any]) -> Path:
    config = {"model": "model", "dataset": dataset, "output_dir": "sft-run", "sft": sft}
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample" / "sft.yaml"


@pytest.mark.slow
def test_sft_loss_falls_on_sampled_rows(tmp_path: Path) -> None:
    sft_path = sample_toy(tmp_path)
    build_tiny_model(tmp_path / "tiny-model", seed=0)
    config_path = tmp_path / "sft.yaml"  # the documented example, next to its data
    config_path.write_text(EXAMPLE.read_text())
    started = time.perf_counter()
    result = train_sft(load_sft_config(config_path))
    assert result.output_dir == tmp_path / "runs" / "toy-sft"
    assert sft_path.is_file()
    assert result.global_step == 12
    first, last = result.losses[0], sum(result.losses[-3:]) / 3
    assert last < 0.5 * first, result.losses
    assert (Path(result.output_dir) / "config.json").is_file()
    print(f"sft: {len(result.losses)} logged steps in {time.perf_counter() - started:.1f}s")


@pytest.mark.slow  # imports trl and torch: seconds on a busy machine
def test_sft_config_typo_is_named(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"messages": []}\n')
    path = write_sft_config(tmp_path, {"learning_rat": 1e-5}, {"path": "d.jsonl"})
    from rewardkit.pipelines.sft import build_sft_config

    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        build_sft_config(load_sft_config(path))


def test_sft_config_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump({"model": "m", "dataset": {"path": "x"}, "output_dir": "o", "epochs": 3})
    )
    with pytest.raises(ConfigError, match="epochs"):
        load_sft_config(path)


def test_cli_train_sft_missing_config_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rewardkit.cli.main import main

    assert main(["train", "sft", "--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rewardkit train: error: config file not found: {tmp_path / 'nope.yaml'}"


CHAT = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]


def test_completion_only_splits_the_last_turn(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    from rewardkit.pipelines.sft import SFTDatasetConfig, load_sft_dataset

    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"messages": CHAT, "id": "a"}) + "\n")
    config = SFTDatasetConfig(path=str(path))
    [row] = list(load_sft_dataset(config, completion_only=True))
    assert row["prompt"] == CHAT[:1] and row["completion"] == CHAT[1:]
    assert "messages" not in row and row["id"] == "a"
    [plain] = list(load_sft_dataset(config))
    assert plain["messages"] == CHAT


@pytest.mark.parametrize(
    ("messages", "completion_only", "message"),
    [
        ("hello", False, "d.jsonl:2: messages must be a non-empty list of {role, content} turns"),
        ([{"role": "user"}], False, "d.jsonl:2: messages must be a non-empty list"),
        ([], False, "d.jsonl:2: messages must be a non-empty list"),
        (CHAT[:1], True, "d.jsonl:2: completion_only needs a prompt turn"),
        (CHAT[::-1], True, "d.jsonl:2: completion_only needs a prompt turn"),
    ],
)
def test_malformed_messages_are_named_by_row(
    tmp_path: Path, messages: Any, completion_only: bool, message: str
) -> None:
    pytest.importorskip("datasets")
    from rewardkit.errors import InputError
    from rewardkit.pipelines.sft import SFTDatasetConfig, load_sft_dataset

    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"messages": CHAT}) + "\n" + json.dumps({"messages": messages}))
    with pytest.raises(InputError, match=message.replace("{", r"\{").replace("}", r"\}")):
        load_sft_dataset(SFTDatasetConfig(path=str(path)), completion_only=completion_only)


def test_a_row_without_messages_is_named(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    from rewardkit.errors import InputError
    from rewardkit.pipelines.sft import SFTDatasetConfig, load_sft_dataset

    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"messages": CHAT}) + "\n" + json.dumps({"text": "hi"}))
    with pytest.raises(
        InputError, match=r"d.jsonl:2: no messages column 'messages'; columns: \['text'\]"
    ):
        load_sft_dataset(SFTDatasetConfig(path=str(path)))


def test_judge_sft_is_the_generic_runner_with_completion_only() -> None:
    from rewardkit.pipelines.spct.sft import JudgeSFTConfig

    run = JudgeSFTConfig(model="m", dataset="/d.jsonl", output_dir="/o", limit=3).to_run_config()
    assert run.completion_only and run.dataset.path == "/d.jsonl" and run.dataset.limit == 3
