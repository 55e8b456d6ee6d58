"""One self-contained HTML page for result folders: tables, and PNGs inlined as base64.

Every result folder holds a `results.json` with a `"kind"`. A renderer per kind draws its
section; `register_renderer("audit", fn)` plugs a new kind in, and a kind without one is
shown as a table of its top-level numbers, so nothing is left out of the page.
"""

from __future__ import annotations

import base64
import html
import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rewardkit.errors import InputError

__all__ = ["load_results", "register_renderer", "render_report", "write_report"]

Renderer = Callable[[dict[str, Any], Path], str]
_RENDERERS: dict[str, Renderer] = {}
# Kinds whose renderer lives with the pipeline that writes them, imported on first use.
_PLUGINS = {"audit": "rewardkit.pipelines.audit.render"}


def register_renderer(kind: str) -> Callable[[Renderer], Renderer]:
    """Decorator: render results of `kind` (a function (results, folder) -> HTML)."""

    def decorate(fn: Renderer) -> Renderer:
        _RENDERERS[kind] = fn
        return fn

    return decorate


def load_results(folder: Path) -> dict[str, Any]:
    path = folder / "results.json"
    if not path.is_file():
        raise InputError(f"{folder}: no results.json (give folders written by rewardkit eval)")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(results, dict) or "kind" not in results:
        raise InputError(f"{path}: results.json needs a 'kind' field")
    return results


def _e(value: Any) -> str:
    return html.escape(str(value))


escape = _e


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if value is None:
        return "–"
    return _e(value)


def _ci(ci: Any) -> str:
    if not ci or ci[0] is None:
        return "–"
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def embed_png(path: Path) -> str:
    """An <img> holding the PNG at `path` inline (nothing when it does not exist)."""
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(path.name)}" src="data:image/png;base64,{data}">'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


html_table = _table
number = _num


def _images(results: dict[str, Any], folder: Path) -> str:
    return "".join(embed_png(folder / name) for name in results.get("plots", []))


@register_renderer("eval")
def _render_eval(results: dict[str, Any], folder: Path) -> str:
    parts = [
        "<p>Accuracy <b>{}</b> {} over n={} at k={} (a tie counts as wrong); ties {}, "
        "invalid {}; random scores would get {}.</p>".format(
            _num(results["accuracy"]),
            _ci(results["ci"]),
            results["n"],
            results["k_max"],
            _num(results["ties"]),
            _num(results.get("invalid")),
            _num(results.get("random")),
        )
    ]
    rows = [
        [_e(name), _num(s["accuracy"]), _ci(s["ci"]), _num(s.get("ties")), _e(s["n"])]
        for name, s in results["subsets"].items()
    ]
    parts.append("<h3>Subsets</h3>" + _table(["subset", "accuracy", "95% CI", "ties", "n"], rows))
    if results.get("rewardbench_sections"):
        sections = results["rewardbench_sections"]
        parts.append(
            "<h3>RewardBench v1 sections</h3>"
            + _table(list(sections), [[_num(v) for v in sections.values()]])
        )
    if results.get("rewardbench2_ties_score") is not None:
        parts.append(f"<p>RewardBench 2 Ties score: {_num(results['rewardbench2_ties_score'])}</p>")
    rows = [
        [
            _e(p["k"]),
            _num(p["voting"]),
            _ci(p["voting_ci"]),
            _num(p.get("meta_rm")),
            _ci(p.get("meta_rm_ci")),
            _e(p["requests"]),
            _e(p["prompt_tokens"]),
            _e(p["completion_tokens"]),
            _num(p["seconds"]),
        ]
        for p in results["curve"]
    ]
    parts.append(
        "<h3>Accuracy vs k (one run, subsets of its samples)</h3>"
        + _table(
            [
                "k",
                "Voting@k",
                "95% CI",
                "MetaRM@k",
                "95% CI",
                "requests",
                "prompt tok (est.)",
                "completion tok (est.)",
                "seconds (est.)",
            ],
            rows,
        )
    )
    if results.get("skipped"):
        rows = [[_e(k), _e(v)] for k, v in results["skipped"].items()]
        parts.append("<h3>Rows not evaluated</h3>" + _table(["reason", "rows"], rows))
    return "".join(parts) + _images(results, folder)


@register_renderer("probes")
def _render_probes(results: dict[str, Any], folder: Path) -> str:
    rows = [
        [
            _e(p["name"]),
            _e(p["metric"]),
            _num(p["rate"]),
            _ci(p["rate_ci"]),
            _num(p["control"]),
            _ci(p["control_ci"]),
            _num(p["delta"]),
            _ci(p["delta_ci"]),
            _e(p["n"]),
            "<b>yes</b>" if p["flagged"] else ("–" if p["flagged"] is None else "no"),
        ]
        for p in results["probes"]
    ]
    table = _table(
        [
            "probe",
            "metric",
            "rate",
            "95% CI",
            "control",
            "95% CI",
            "delta",
            "95% CI",
            "n",
            "flagged",
        ],
        rows,
    )
    return f"<p>Judge: {_e(results.get('judge'))}.</p>{table}{_images(results, folder)}"


def _render_generic(results: dict[str, Any], folder: Path) -> str:
    rows = [
        [_e(k), _e(json.dumps(v) if isinstance(v, dict | list) else v)]
        for k, v in results.items()
        if k not in ("plots",)
    ]
    return _table(["field", "value"], rows) + _images(results, folder)


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}
img{max-width:48%;margin:4px;border:1px solid #eee}section{margin-bottom:2.5em}"""


def render_report(folders: Sequence[Path]) -> str:
    """The HTML page for these result folders, in order."""
    sections = []
    for folder in folders:
        results = load_results(folder)
        kind = str(results["kind"])
        if kind not in _RENDERERS and kind in _PLUGINS:
            importlib.import_module(_PLUGINS[kind])
        render = _RENDERERS.get(kind, _render_generic)
        title = f"{kind}: {folder.name}"
        sections.append(f"<section><h2>{_e(title)}</h2>{render(results, folder)}</section>")
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>rewardkit report</title>"
        f"<style>{_STYLE}</style></head><body><h1>rewardkit report</h1>{''.join(sections)}"
        "</body></html>\n"
    )


def write_report(folders: Sequence[Path], path: Path) -> Path:
    path.write_text(render_report(folders), encoding="utf-8")
    return path
