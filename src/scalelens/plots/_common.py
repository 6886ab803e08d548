"""What every plots module shares."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The registry's families keep one colour in every figure; other (inferred) families take the
# next free colour in order of appearance.
FAMILY_COLORS = {
    "pythia": "#1f77b4", "phi": "#8e44ad", "gemma3": "#2ca02c", "gemma2": "#17becf",
    "qwen3": "#d62728", "qwen2.5-coder": "#ff7f0e", "smollm2": "#8c564b",
}
EXTRA_COLORS = ("#e377c2", "#bcbd22", "#1b9e77", "#d95f02", "#7570b3", "#e7298a",
                "#66a61e", "#e6ab02", "#a6761d")
ACROSS_COLOR = "#555555"


def family_colors(families) -> dict[str, str]:
    """A colour per family: the registry's fixed ones, then the extra palette in order."""
    colors: dict[str, str] = {}
    spare = iter(c for c in EXTRA_COLORS if c not in FAMILY_COLORS.values())
    for f in families:
        if f not in colors:
            colors[f] = FAMILY_COLORS.get(f) or next(spare, ACROSS_COLOR)
    return colors


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 150) -> Path:
    """Save and close a figure, creating the parent directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
