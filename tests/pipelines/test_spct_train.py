"""SPCT training on tiny models built in code: judge-sft, judge-grpo, meta-rm (all slow)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("trl")

from rewardkit.backends.base import GenerateRequest
from rewardkit.backends.mock import MockBackend
from rewardkit.cli.main import main
from rewardkit.errors import ConfigError
from rewardkit.judges import JudgeConfig, JudgeQuery, PointwiseJudge, TransformersMetaRM
from rewardkit.judges.meta_rm import read_meta_records
from rewardkit.pipelines.spct import RFTConfig, rft
from rewardkit.pipelines.spct.experiment import TEMPLATE, make_items, run_meta_rm_experiment
from rewardkit.pipelines.spct.grpo import JudgeGRPOConfig, load_judge_grpo_config
from rewardkit.pipelines.spct.toy import TELLTALE, ScriptedJudge, tiny_causal_lm, tiny_classifier
from rewardkit.rules.judge_agreement import JudgeAgreementReward
from rewardkit.testing.fake_openai import FakeOpenAI
from rewardkit.types import Sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rft_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RFT output of a scripted judge that is right half the time, over 12 pairs."""
    out = tmp_path_factory.mktemp("spct") / "rft"
    judge = PointwiseJudge(MockBackend(ScriptedJudge(0.5)), JudgeConfig(template=TEMPLATE))
    summary = rft(make_items(12, 0, "t"), judge, out, RFTConfig(n_rft=4, progress=False))
    assert summary.sft_rows > 8 and summary.meta_rm_records == 48
    return out


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_judge_sft_loss_falls(
    rft_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [json.loads(line) for line in (rft_dir / "sft.jsonl").read_text().splitlines()]
    texts = [m["content"] for row in rows for m in row["messages"]]
    tiny_causal_lm(texts, tmp_path / "judge", max_positions=512)
    config = write_config(
        tmp_path / "sft.yaml",
        {
            "model": "judge",
            "dataset": str(rft_dir / "sft.jsonl"),
            "output_dir": "run",
            "sft": {
                "max_steps": 12,
                "learning_rate": 1e-2,
                "per_device_train_batch_size": 4,
                "logging_steps": 1,
                "save_steps": 12,
                "max_length": 512,
                "seed": 0,
                "use_cpu": True,
                "disable_tqdm": True,
            },
        },
    )
    assert main(["train", "judge-sft", "--config", str(config)]) == 0
    assert "trained 12 steps" in capsys.readouterr().out
    state = json.loads((tmp_path / "run" / "checkpoint-12" / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses  # 4.4 -> 3.2 measured
    # an existing run is not silently overwritten
    assert main(["train", "judge-sft", "--config", str(config)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_judge_grpo_reward_is_judge_agreement_under_trl(rft_dir: Path, tmp_path: Path) -> None:
    # A policy whose whole vocabulary is verdict pieces, so its outputs are judgments.
    words = ["Scores:", "\\boxed{8,", "\\boxed{3,", "3}", "8}", "Analysis:", "fine"]
    tiny_causal_lm([" ".join(words)], tmp_path / "judge", max_positions=1024)
    config = write_config(
        tmp_path / "grpo.yaml",
        {
            "model": "judge",
            "dataset": str(rft_dir / "rl.jsonl"),
            "output_dir": "run",
            "limit": 4,
            "samples": {"every": 1, "max_rows": 8},
            "grpo": {
                "max_steps": 3,
                "per_device_train_batch_size": 8,
                "num_generations": 4,
                "max_completion_length": 6,
                "learning_rate": 1e-2,
                "logging_steps": 1,
                "save_strategy": "no",
                "seed": 0,
                "use_cpu": True,
                "disable_tqdm": True,
                "gradient_checkpointing": False,
            },
        },
    )
    loaded = load_judge_grpo_config(config)
    run_config = loaded.to_run_config()
    assert run_config.grpo["beta"] == 0.08 and run_config.dataset.reference_column == "judge_label"
    assert main(["train", "judge-grpo", "--config", str(config)]) == 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert {r["step"] for r in rows} == {1, 2, 3}
    rule = JudgeAgreementReward()
    for row in rows:  # what TRL trained on is exactly the rule applied to the completion
        expected = rule.score(Sample(row["prompt"], row["completion"], reference=row["reference"]))
        assert row["reward"] == expected.value and row["reward"] in (-1.0, 1.0)


def test_judge_grpo_config_refuses_two_betas() -> None:
    config = JudgeGRPOConfig(model="m", dataset="d", output_dir="o", grpo={"beta": 0.0})
    with pytest.raises(ConfigError, match="beta"):
        config.to_run_config()


def test_meta_rm_trains_and_loads_as_meta_rm(rft_dir: Path, tmp_path: Path) -> None:
    # Records from a judge whose wrong judgments say a telltale sentence.
    out = tmp_path / "rft"
    judge = PointwiseJudge(MockBackend(ScriptedJudge(0.5)), JudgeConfig(template=TEMPLATE))
    rft(make_items(16, 3, "m"), judge, out, RFTConfig(n_rft=4, progress=False))
    records = list(read_meta_records(out / "meta_rm.jsonl"))
    assert {r.label for r in records} == {0, 1}
    tiny_classifier([r.text() for r in records], tmp_path / "base", max_positions=256)
    config = write_config(
        tmp_path / "meta.yaml",
        {
            "model": "base",
            "data": ["rft/meta_rm.jsonl"],
            "output_dir": "meta-rm",
            "max_length": 256,
            "train": {
                "num_train_epochs": 3,
                "per_device_train_batch_size": 16,
                "learning_rate": 3e-3,
                "save_strategy": "no",
                "use_cpu": True,
                "disable_tqdm": True,
            },
        },
    )
    assert main(["train", "meta-rm", "--config", str(config)]) == 0
    meta = TransformersMetaRM(str(tmp_path / "meta-rm"), max_length=256)
    clean = records[[r.label for r in records].index(1)]
    [right, wrong] = meta.score_texts(
        [clean.text(), clean.text().replace("Scores:", TELLTALE + "\nScores:")]
    )
    assert right > 0 > wrong
    # and the judge takes it as --meta-rm would: a guided vote keeps the clean judgments
    guided = PointwiseJudge(
        MockBackend(ScriptedJudge(0.5)), JudgeConfig(template=TEMPLATE, samples=8, keep=2), meta
    )
    item = make_items(1, 99, "x")[0]
    result = asyncio.run(guided.judge(JudgeQuery(item.prompt, item.responses)))
    kept = [result.judgments[v] for v in result.voters]
    clean_count = sum(TELLTALE not in j.text for j in result.judgments)
    assert len(kept) == 2 and 0 < clean_count < 8
    assert sum(TELLTALE not in j.text for j in kept) == min(2, clean_count)

    # the same folder through `rewardkit judge --meta-rm PATH --keep 2` (HTTP judge)
    def scripted(body: dict[str, Any], index: int) -> str:
        request = GenerateRequest(messages=tuple(body["messages"]), seed=body.get("seed"))
        return ScriptedJudge(0.5)(request, index)

    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        json.dumps({"id": "x", "prompt": item.prompt, "responses": list(item.responses)})
    )
    with FakeOpenAI(reply=scripted).run_in_thread() as server:
        argv = [
            "judge",
            str(rows),
            "-o",
            str(tmp_path / "judged.jsonl"),
            "--base-url",
            server.base_url,
            "--model",
            "small",
            "--samples",
            "8",
            "--template",
            str(write_template(tmp_path)),
            "--meta-rm",
            str(tmp_path / "meta-rm"),
            "--keep",
            "2",
            "--no-progress",
        ]
        assert main(argv) == 0
    [line] = [json.loads(x) for x in (tmp_path / "judged.jsonl").read_text().splitlines()]
    assert len(line["voters"]) == 2
    assert all(j["meta_score"] is not None for j in line["judgments"] if j["scores"])
    voted = [line["judgments"][v]["text"] for v in line["voters"]]
    clean_count = sum(TELLTALE not in j["text"] for j in line["judgments"])
    assert sum(TELLTALE not in t for t in voted) == min(2, clean_count)


def write_template(tmp_path: Path) -> Path:
    path = tmp_path / "template.txt"
    path.write_text(TEMPLATE)
    return path


def test_meta_rm_lifts_voting_on_held_out_items(tmp_path: Path) -> None:
    # The benchmark's measurement at a smaller size, with a looser bar.
    result = run_meta_rm_experiment(tmp_path, train_items=16, eval_items=20, epochs=3)
    assert result.meta_rm_accuracy >= result.voting_accuracy + 0.2, result
