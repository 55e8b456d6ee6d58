"""judge-grpo really trains: the examples/spct demo's judge_agreement rises on CPU."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("trl")

from rewardkit.cli.main import main
from rewardkit.rules.judge_agreement import JudgeAgreementReward
from rewardkit.testing.grpo_toy import build_tiny_judge, toy_judge_rows
from rewardkit.types import Sample

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "spct"


def test_example_dataset_is_the_toy_rows() -> None:
    rows = [json.loads(line) for line in (EXAMPLE / "toy_rl.jsonl").read_text().splitlines()]
    assert rows == toy_judge_rows(8)
    # the labelled best is shown first, and the verdict word for it earns +1, the other -1
    rule = JudgeAgreementReward()
    for row in rows:
        label = json.loads(row["judge_label"])
        assert label["best"] == 0 and label["responses"][0].startswith("good")
        prompt = row["prompt"][0]["content"]
        right = rule.score(Sample(prompt, "Scores:\\boxed{8,3}", reference=row["judge_label"]))
        wrong = rule.score(Sample(prompt, "Scores:\\boxed{3,8}", reference=row["judge_label"]))
        loose = rule.score(Sample(prompt, "\\boxed{8,3}", reference=row["judge_label"]))
        assert (right.value, wrong.value, loose.value) == (1.0, -1.0, -1.0)


def test_example_judge_agreement_rises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("config.yaml", "toy_rl.jsonl"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    build_tiny_judge(tmp_path / "tiny-judge")

    assert main(["train", "judge-grpo", "--config", str(tmp_path / "config.yaml")]) == 0
    out = capsys.readouterr().out
    match = re.search(
        r"trained 20 steps; mean reward first 5 logged steps (\S+), last 5 (\S+)", out
    )
    assert match, out
    first, last = float(match[1]), float(match[2])
    # a random judge's verdict agrees about 1 time in 8 (-0.7); after training nearly always
    assert first < -0.3 and last > 0.5 and last - first > 1.0, (first, last)

    rows = [
        json.loads(line)
        for line in (tmp_path / "runs" / "toy-judge-grpo" / "samples.jsonl")
        .read_text()
        .splitlines()
    ]
    final = [r for r in rows if r["step"] == 20]
    assert len(final) == 4 and sum(r["reward"] == 1.0 for r in final) >= 3, final
