"""The audit's section of `rewardkit report`: the divergence verdict, the curves, the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewardkit.pipelines.eval.report import embed_png, escape, html_table, number, register_renderer

__all__: list[str] = []


@register_renderer("audit")
def render_audit(results: dict[str, Any], folder: Path) -> str:
    divergence = results.get("divergence") or {}
    if divergence.get("flagged"):
        verdict = f"<p><b>Reward hacking flagged</b> from step {escape(divergence.get('first_step'))}.</p>"
    else:
        verdict = "<p>No divergence between proxy and gold.</p>"
    rule = divergence.get("rule") or {}
    if rule:
        verdict += (
            "<p>Rule: " + ", ".join(f"{escape(k)}={escape(v)}" for k, v in rule.items()) + "</p>"
        )
    rows = [
        [escape(step), number(proxy), number(gold)]
        for step, proxy, gold in zip(
            results.get("steps", []),
            results.get("proxy", []),
            results.get("gold", []),
            strict=False,
        )
    ]
    table = html_table(["step", "proxy", "gold"], rows)
    return verdict + table + embed_png(folder / "audit.png")
