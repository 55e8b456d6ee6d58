"""The public surface of rewardkit.judges is what we mean it to be."""

from __future__ import annotations

import subprocess
import sys

import rewardkit.judges as judges

EXPECTED = {
    "PLACEHOLDERS", "REDUCERS", "JudgeConfig", "JudgeQuery", "JudgeResult", "JudgeReward",
    "Judgment", "MetaRM", "MetaRMRecord", "PairJudgment", "PairwiseJudge", "PairwiseResult",
    "ParsedJudgment", "ParsedPreference", "PointwiseJudge", "PromptBuilder", "RemoteMetaRM",
    "TransformersMetaRM", "build_constraint", "expected_scores", "format_meta_input",
    "parse_judgment", "parse_preference", "read_meta_records", "records_from_result",
    "select_top", "validate_template", "vote", "write_meta_records", "available_reducers",
    "reducer",
}  # fmt: skip


def test_all_is_exact_and_importable() -> None:
    assert set(judges.__all__) == EXPECTED
    for name in judges.__all__:
        assert getattr(judges, name) is not None


def test_importing_judges_does_not_import_torch() -> None:
    code = (
        "import sys, rewardkit.judges; print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_registry_points_at_judge_reward() -> None:
    from rewardkit.registry import resolve_factory

    assert resolve_factory("judge") is judges.JudgeReward
