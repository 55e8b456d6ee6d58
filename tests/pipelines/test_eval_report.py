"""The HTML report: one page per set of result folders, plug-in renderers, escaped content."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rewardkit.errors import InputError
from rewardkit.pipelines.eval import register_renderer, render_report
from rewardkit.pipelines.eval.report import _RENDERERS


def folder(tmp_path: Path, name: str, results: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "results.json").write_text(json.dumps(results))
    return path


def eval_results(subset: str) -> dict[str, Any]:
    point = {
        "k": 1,
        "voting": 0.5,
        "voting_ci": [0.4, 0.6],
        "requests": 3,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "tokens": 15,
        "seconds": 0.1,
    }
    return {
        "kind": "eval",
        "accuracy": 0.5,
        "ties": 0.0,
        "invalid": 0.0,
        "n": 4,
        "k_max": 1,
        "ci": [0.1, 0.9],
        "subsets": {subset: {"accuracy": 0.5, "n": 4, "ci": [0.1, 0.9]}},
        "curve": [point],
    }


def test_data_cannot_inject_markup_into_the_page(tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script>"
    page = render_report([folder(tmp_path, "x", eval_results(hostile))])
    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_unknown_kinds_are_shown_and_new_kinds_plug_in(tmp_path: Path) -> None:
    custom = folder(tmp_path, "custom", {"kind": "custom", "diverged": True, "steps": 40})
    page = render_report([custom])
    assert "diverged" in page and "custom: custom" in page  # the generic table
    try:
        register_renderer("custom")(
            lambda results, where: f"<p>proxy vs gold, {results['steps']} steps</p>"
        )
        assert "proxy vs gold, 40 steps" in render_report([custom])
    finally:
        _RENDERERS.pop("custom", None)


def test_audit_folders_show_the_verdict_the_curves_and_the_plot(tmp_path: Path) -> None:
    audit = {
        "kind": "audit",
        "steps": [0, 2, 4],
        "proxy": [0.1, 0.5, 0.9],
        "gold": [0.2, 0.2, 0.1],
        "divergence": {"flagged": True, "first_step": 4, "rule": {"window": 1, "delta": 0.1}},
    }
    where = folder(tmp_path, "hacked", audit)
    (where / "audit.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    page = render_report([where])
    assert "Reward hacking flagged</b> from step 4" in page
    assert "<td>0.900</td><td>0.100</td>" in page
    assert 'alt="audit.png" src="data:image/png;base64,' in page
    honest = folder(tmp_path, "honest", {**audit, "divergence": {"flagged": False}})
    assert "No divergence between proxy and gold" in render_report([honest])


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no results.json"), ("{", "not valid JSON"), ('{"a": 1}', "needs a 'kind'")],
)
def test_bad_folders_are_input_errors(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "results.json").write_text(content)
    with pytest.raises(InputError, match=message):
        render_report([tmp_path])
