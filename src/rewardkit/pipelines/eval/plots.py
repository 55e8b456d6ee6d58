"""PNG plots for eval and probe results (matplotlib, Agg backend, imported only here).

matplotlib is the `plot` extra; without it the run still writes every table and the HTML
report, and says which PNGs it could not draw.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = ["plot_eval", "plot_probes"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        print(
            "rewardkit: matplotlib is not installed, no PNG plots (pip install 'rewardkit[plot]')",
            file=sys.stderr,
        )
        return None
    matplotlib.use("Agg")  # no display, no GUI toolkit: files only
    import matplotlib.pyplot as plt

    return plt


def _errors(value: float, ci: list[float]) -> tuple[float, float]:
    return (max(0.0, value - ci[0]), max(0.0, ci[1] - value))


def plot_eval(outdir: Path, results: dict[str, Any]) -> list[Path]:
    """curve.png (accuracy vs k with 95% CIs) and subsets.png (accuracy per subset)."""
    plt = _pyplot()
    if plt is None:
        return []
    written = []
    curve = results["curve"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = [p["k"] for p in curve]
    for key, label in (("voting", "Voting@k"), ("meta_rm", "MetaRM@k")):
        if key not in curve[0]:
            continue
        ys = [p[key] for p in curve]
        errs = list(zip(*(_errors(p[key], p[f"{key}_ci"]) for p in curve), strict=True))
        ax.errorbar(ks, ys, yerr=errs, marker="o", capsize=4, label=label)
    chance = results.get("random", 0.5)
    ax.axhline(chance, color="grey", linestyle=":", label=f"random ({chance:.2f})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (judgments per item)")
    ax.set_ylabel("accuracy (ties wrong)")
    ax.set_title(f"{results.get('judge', 'judge')}: accuracy vs k (n={results['n']}, 95% CI)")
    ax.legend()
    fig.tight_layout()
    written.append(outdir / "curve.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    subsets = results["subsets"]
    names = list(subsets)
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(names) + 1.2))
    values = [subsets[n]["accuracy"] for n in names]
    errs = list(
        zip(*(_errors(subsets[n]["accuracy"], subsets[n]["ci"]) for n in names), strict=True)
    )
    ax.barh(names, values, xerr=errs, capsize=3, color="#4c78a8")
    ax.axvline(results.get("random", 0.5), color="grey", linestyle=":")
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"accuracy at k={results['k_max']} (95% CI)")
    fig.tight_layout()
    written.append(outdir / "subsets.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


def plot_probes(outdir: Path, results: dict[str, Any]) -> list[Path]:
    """probes.png: each probe's rate beside its clean control, with 95% CIs."""
    plt = _pyplot()
    if plt is None:
        return []
    probes = results["probes"]
    names = [p["name"] for p in probes]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(names) + 1.4))
    ys = range(len(names))
    for offset, key, label, color in (
        (-0.18, "rate", "probe", "#e45756"),
        (0.18, "control", "control", "#4c78a8"),
    ):
        values = [p[key] if p[key] is not None else 0.0 for p in probes]
        errs = list(
            zip(
                *(_errors(p[key] or 0.0, p[f"{key}_ci"] or [0.0, 0.0]) for p in probes), strict=True
            )
        )
        ax.barh(
            [y + offset for y in ys],
            values,
            height=0.34,
            xerr=errs,
            capsize=3,
            label=label,
            color=color,
        )
    ax.set_yticks(list(ys), names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("rate (95% CI)")
    ax.legend()
    fig.tight_layout()
    path = outdir / "probes.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
