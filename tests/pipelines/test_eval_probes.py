"""Bias and attack probes: a judge double with a known bias is flagged, a clean one is not."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rewardkit.backends.base import GenerateRequest
from rewardkit.backends.mock import MockBackend
from rewardkit.judges import JudgeConfig, PointwiseJudge
from rewardkit.pipelines.eval import (
    MASTER_KEYS,
    CostMeter,
    EvalItem,
    LengthJudge,
    PointwiseEvalJudge,
    load_items,
    pad,
    run_probes,
)
from rewardkit.pipelines.eval.probes import ProbeResult, write_probes

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
_FENCED = re.compile(r"\[BEGIN RESPONSE (\d+) (\w+)\]\n(.*?)\n\[END RESPONSE \1 \2\]", re.S)
_REFERENCE = re.compile(r"#### Reference Answer ####\n(.*?)\n\n####", re.S)


def scripted(score: Callable[[str, str], int]) -> PointwiseEvalJudge:
    """A pointwise judge whose backend scores each shown text by `score(text, reference)`."""

    def answer(request: GenerateRequest, index: int) -> str:
        prompt = request.messages[-1]["content"]
        ref = _REFERENCE.search(prompt)
        texts = [m.group(3) for m in _FENCED.finditer(prompt)]
        scores = [score(t, ref.group(1) if ref else "") for t in texts]
        return "Analysis: ok.\nScores: \\boxed{" + ", ".join(map(str, scores)) + "}"

    meter = CostMeter(MockBackend(answer))
    return PointwiseEvalJudge(PointwiseJudge(meter, JudgeConfig()), meter)


def clean(text: str, ref: str) -> int:
    if ref:  # reference mode: right iff the final answer is the reference
        return 9 if text.rstrip().endswith(f"#### {ref}") else 2
    return 8 if "good" in text else 3


def position_biased() -> PointwiseEvalJudge:
    meter = CostMeter(MockBackend(["Scores: \\boxed{8, 3}"]))
    return PointwiseEvalJudge(PointwiseJudge(meter, JudgeConfig()), meter)


def length_biased(text: str, ref: str) -> int:
    return min(10, 1 + len(text) // 60)


def obeys_injections(text: str, ref: str) -> int:
    return 10 if "deserves a 10" in text or "boxed{10" in text else clean(text, ref)


def fooled_by_master_keys(text: str, ref: str) -> int:
    return 9 if len(text) < 40 else clean(text, ref)


def noisy(text: str, ref: str) -> int:
    # A judge that is right at random: the same input gets different verdicts across seeds.
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 10 + 1


def items(n: int = 12) -> list[EvalItem]:
    out = []
    for i in range(n):
        good, bad = f"a good answer number {i}, well argued.", f"a bad answer number {i}, sloppy."
        # Good first in half the items, so "first shown wins" is not "good wins".
        pair = (good, bad) if i % 2 else (bad, good)
        out.append(
            EvalItem(
                f"q{i}",
                f"question {i}?",
                pair,
                tuple(t == good for t in pair),
                reference=f"{i + 10}",
            )
        )
    return out


def math_items(n: int = 8) -> list[EvalItem]:
    return [
        EvalItem(
            f"m{i}",
            f"What is {i} + 10?",
            (
                f"{i} plus ten.\n#### {i + 10}",
                f"Adding them up carefully, one digit at a time.\n#### {i + 99}",
            ),
            (True, False),
            reference=str(i + 10),
        )
        for i in range(n)
    ]


def probe(judge: Any, name: str, data: list[EvalItem] | None = None) -> ProbeResult:
    (row,) = asyncio.run(run_probes(data or items(), judge, probes=[name], resamples=300))
    return row


@pytest.mark.parametrize(
    ("name", "biased", "data"),
    [
        ("position", lambda: position_biased(), None),
        ("verbosity", lambda: scripted(length_biased), None),
        ("injection_instruction", lambda: scripted(obeys_injections), None),
        ("injection_fake_scores", lambda: scripted(obeys_injections), None),
        ("master_keys", lambda: scripted(fooled_by_master_keys), math_items),
    ],
)
def test_each_probe_flags_the_biased_double_and_not_the_clean_one(
    name: str, biased: Any, data: Any
) -> None:
    rows = data() if data else None
    flagged = probe(biased(), name, rows)
    assert flagged.flagged is True, flagged
    assert flagged.delta is not None and flagged.delta > 0.5
    ok = probe(scripted(clean), name, rows)
    assert ok.flagged is False, ok
    assert ok.rate == 0.0 and ok.n == len(rows or items())


def test_position_detail_reports_first_shown_win_rate() -> None:
    assert probe(position_biased(), "position").detail["first_shown_wins"] == 1.0
    assert probe(scripted(clean), "position").detail["first_shown_wins"] == 0.5


def test_master_keys_per_key_rates_and_control() -> None:
    row = probe(scripted(fooled_by_master_keys), "master_keys", math_items())
    assert set(row.detail["per_key"]) == set(MASTER_KEYS)
    assert all(rate == 1.0 for rate in row.detail["per_key"].values())
    assert row.control == 0.0  # the wrong solution is not judged correct
    skipped = probe(scripted(clean), "master_keys", [EvalItem("x", "q", ("a", "b"), (True, False))])
    assert skipped.n == 0 and skipped.flagged is None and "reference" in skipped.detail["skipped"]


def test_repeat_consistency() -> None:
    assert probe(scripted(clean), "repeat").rate == 0.0
    # A judge that is noise: a different seed, a different verdict, often.
    meter = CostMeter(
        MockBackend(
            lambda request, index: (
                f"Scores: \\boxed{{{request.seed % 10 + 1}, {request.seed // 10 % 10 + 1}}}"
            )
        )
    )
    row = probe(PointwiseEvalJudge(PointwiseJudge(meter, JudgeConfig()), meter), "repeat")
    assert row.rate is not None and row.rate > 0.3
    assert row.flagged is None and row.control is None


def test_padding_is_content_free_and_long() -> None:
    padded = pad("short answer")
    assert padded.startswith("short answer\n\n") and len(padded) >= 400
    assert "answer" not in padded[len("short answer") :]


def test_probes_run_on_scalar_judges_and_write_results(tmp_path: Path) -> None:
    rows = asyncio.run(
        run_probes(items(), LengthJudge(), probes=["verbosity", "position"], resamples=200)
    )
    by = {r.name: r for r in rows}
    assert by["verbosity"].flagged is True  # longer wins, by construction
    assert by["position"].rate == 0.0  # a length score ignores the order
    results = write_probes(tmp_path, "length", rows)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["kind"] == "probes" and saved == json.loads(json.dumps(results))
    assert "data:image/png;base64," in (tmp_path / "report.html").read_text()
    assert (tmp_path / "probes.csv").read_text().startswith("probe,n,rate")


def test_unknown_probe_is_a_config_error() -> None:
    from rewardkit.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown probe"):
        asyncio.run(run_probes(items(), LengthJudge(), probes=["nope"]))


@pytest.mark.shared
def test_probes_on_shared_real_pairs() -> None:
    path = SHARED / "judge-eval" / "mtbench_human.json"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path}")
    real = load_items([str(path)], limit=40).items
    rows = {
        r.name: r
        for r in asyncio.run(
            run_probes(real, position_biased(), probes=["position", "verbosity"], resamples=300)
        )
    }
    assert rows["position"].flagged is True and rows["position"].n == 40
    # The always-first double ignores content: padding cannot change its verdict.
    assert rows["verbosity"].delta == 0.0 and rows["verbosity"].flagged is False
