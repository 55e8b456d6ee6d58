"""A PNG of an audit: proxy vs gold by step, and each hacking feature by step.

matplotlib is imported here only (Agg backend, no display needed); install it with
`pip install 'rewardkit[audit]'`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewardkit.errors import MissingDependencyError

__all__ = ["plot_audit"]


def plot_audit(document: dict[str, Any], path: str | Path) -> Path:
    """Draw a `kind: audit` document (see `record.audit_json`) to `path`."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "audit", "audit plots") from exc

    steps = document["steps"]
    features = {k: v for k, v in document.get("features", {}).items() if any(v)}
    rows = 1 + (len(features) + 3) // 4
    fig = plt.figure(figsize=(12, 3.2 * rows))
    grid = fig.add_gridspec(rows, 4)
    ax = fig.add_subplot(grid[0, :])
    ax.plot(steps, _nan(document["proxy"]), "o-", label="proxy (training reward)")
    ax.plot(steps, _nan(document["gold"]), "s-", label="gold")
    divergence = document.get("divergence", {})
    if divergence.get("first_step") is not None:
        ax.axvline(divergence["first_step"], color="red", linestyle="--", label="divergence")
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward")
    ax.set_title("proxy vs gold" + ("  (flagged)" if divergence.get("flagged") else ""))
    ax.legend(loc="best")
    for i, (name, values) in enumerate(sorted(features.items())):
        sub = fig.add_subplot(grid[1 + i // 4, i % 4])
        sub.plot(steps, _nan(values), ".-")
        sub.set_title(name, fontsize=9)
        sub.tick_params(labelsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _nan(values: list[float | None]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]
