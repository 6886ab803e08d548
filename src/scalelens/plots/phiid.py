"""Figures 2a-2c: pairwise synergy/redundancy heatmaps, syn-red grid, layer profiles by depth."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm

from scalelens.plots._common import family_colors, save_figure
from scalelens.ranking import HeadRanking, LayerProfile

_LINE_COLORS = plt.get_cmap("tab10").colors
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _save(fig: plt.Figure, path: str | Path, dpi: int = 150) -> Path:
    return save_figure(fig, path, dpi)


def _layer_ticks(n_layers: int, n_heads_per_layer: int) -> tuple[np.ndarray, list[str]]:
    """Tick positions at layer centres (at most ~12 labels) and their layer labels."""
    step = max(1, int(np.ceil(n_layers / 12)))
    layers = np.arange(0, n_layers, step)
    return layers * n_heads_per_layer + (n_heads_per_layer - 1) / 2, [
        str(layer) for layer in layers
    ]


def _robust_limits(matrix: np.ndarray) -> tuple[float, float]:
    """1st and 99th percentiles of the finite entries (outliers would wash out the map)."""
    finite = matrix[np.isfinite(matrix)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1, 99])
    return float(low), float(high if high > low else low + 1e-12)


def _pair_panel(ax, fig, matrix, cmap_name, label, n_layers, n_heads_per_layer) -> None:
    """One heatmap of a pair matrix with layer boundaries, layer ticks and a colour bar."""
    cmap = plt.get_cmap(cmap_name).with_extremes(bad="#d9d9d9")
    low, high = _robust_limits(matrix)
    image = ax.imshow(
        np.ma.masked_invalid(matrix), cmap=cmap, vmin=low, vmax=high, interpolation="nearest"
    )
    n_heads = n_layers * n_heads_per_layer
    boundaries = np.arange(1, n_layers) * n_heads_per_layer - 0.5
    line_width = 0.6 if n_layers <= 16 else 0.35
    for position in boundaries:
        ax.axhline(position, color="white", linewidth=line_width, alpha=0.8)
        ax.axvline(position, color="white", linewidth=line_width, alpha=0.8)
    ticks, labels = _layer_ticks(n_layers, n_heads_per_layer)
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set_xlim(-0.5, n_heads - 0.5)
    ax.set_ylim(n_heads - 0.5, -0.5)
    ax.set_xlabel("Layer (its heads in flat order)")
    ax.set_ylabel("Layer (its heads in flat order)")
    ax.set_title(label)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, extend="both")
    bar.set_label(label)


def plot_pairwise_heatmaps(
    sts: np.ndarray,
    rtr: np.ndarray,
    n_layers: int,
    n_heads_per_layer: int,
    path: str | Path,
    *,
    unit: str = "nats",
    title: str | None = None,
) -> Path:
    """Figure 2a: pairwise synergy (sts) and redundancy (rtr) heatmaps side by side.

    Heads in flat order (layer-major), white lines at layer boundaries, colour limits at the
    1st/99th percentiles; grey = undefined pairs and the diagonal.
    """
    n_heads = n_layers * n_heads_per_layer
    if np.shape(sts) != (n_heads, n_heads) or np.shape(rtr) != (n_heads, n_heads):
        raise ValueError(
            f"sts/rtr must be [{n_heads}, {n_heads}], got {np.shape(sts)}, {np.shape(rtr)}"
        )
    fig, axes = plt.subplots(1, 2, figsize=(16, 7.4), layout="constrained")
    _pair_panel(axes[0], fig, sts, "magma", f"Synergy sts ({unit})", n_layers, n_heads_per_layer)
    _pair_panel(
        axes[1], fig, rtr, "viridis", f"Redundancy rtr ({unit})", n_layers, n_heads_per_layer
    )
    fig.suptitle(title or f"Pairwise PhiID between {n_heads} heads ({n_layers} layers)")
    return _save(fig, path, dpi=200 if n_heads > 600 else 150)


def _symmetric_limit(grid: np.ndarray, step: float = 0.05) -> float:
    """Colour limit +-L around 0: the largest |score| rounded up to `step`, at most 1.

    Real scores rarely reach +-1; a fixed +-1 range would wash the grid out to near-white.
    """
    finite = np.abs(grid[np.isfinite(grid)])
    largest = float(finite.max()) if finite.size else 1.0
    return float(min(1.0, max(step, np.ceil(largest / step - 1e-9) * step)))


def plot_syn_red_grid(ranking: HeadRanking, path: str | Path, *, title: str | None = None) -> Path:
    """Figure 2b: layers x heads grid of normalised syn-red scores (red = synergistic).

    Blue = redundant; the colour scale is symmetric around 0 and spans the largest |score|.
    """
    grid = ranking.score_grid(normalised=True)
    n_layers, n_heads = grid.shape
    width = float(np.clip(2.5 + 0.28 * n_heads, 5.0, 13.0))
    height = float(np.clip(1.5 + 0.22 * n_layers, 4.0, 11.0))
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#d9d9d9")
    limit = _symmetric_limit(grid)
    image = ax.imshow(
        np.ma.masked_invalid(grid), cmap=cmap, norm=TwoSlopeNorm(0.0, -limit, limit),
        aspect="auto", origin="lower", interpolation="nearest",
    )  # fmt: skip
    head_step = max(1, int(np.ceil(n_heads / 16)))
    layer_step = max(1, int(np.ceil(n_layers / 18)))
    ax.set_xticks(np.arange(0, n_heads, head_step))
    ax.set_yticks(np.arange(0, n_layers, layer_step))
    ax.set_xlabel("Head")
    ax.set_ylabel("Layer (0 = first)")
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    bar.set_label("Syn-red score (normalised; + synergistic, - redundant)")
    ax.set_title(title or "Syn-red score per head")
    return _save(fig, path)


def plot_layer_profiles(
    profiles: Mapping[str, LayerProfile], path: str | Path, *, title: str | None = None,
    families: Mapping[str, str] | None = None,
) -> Path:
    """Figure 2c: mean syn-red score per layer against normalised depth, one line per model.

    The peak of each profile is starred; the shaded band is the middle third of depth. With
    `families` (model -> family) a line takes its family's colour (a marker per model) and its
    label names the family, so sizes of one family read as one hue.
    """
    if not profiles:
        raise ValueError("plot_layer_profiles needs at least one model profile")
    fig, ax = plt.subplots(figsize=(8.5, 5.6 + 0.15 * len(profiles)), layout="constrained")
    ax.axvspan(1 / 3, 2 / 3, color="#f2f2f2", zorder=0, label="middle third of depth")
    ax.axhline(0.0, color="#888888", linewidth=0.8, zorder=1)
    colors = family_colors([families[m] for m in profiles]) if families else {}
    for k, (model, profile) in enumerate(profiles.items()):
        color = colors[families[model]] if families else _LINE_COLORS[k % len(_LINE_COLORS)]
        family = f" [{families[model]}]" if families else ""
        verdict = "middle > outer" if profile.middle_more_synergistic else "middle not > outer"
        ax.plot(
            profile.depth, profile.mean_score, color=color, marker=_MARKERS[k % len(_MARKERS)],
            markersize=4, linewidth=1.6, zorder=3,
            label=f"{model}{family} ({len(profile.layers)} layers; peak "
            f"{profile.peak_depth:.2f}; {verdict})",
        )  # fmt: skip
        ax.plot(
            profile.peak_depth, profile.mean_score[profile.peak_layer], marker="*",
            markersize=14, color=color, markeredgecolor="black", zorder=4,
        )  # fmt: skip
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("Normalised depth (layer / (n_layers - 1))")
    ax.set_ylabel("Mean syn-red score (normalised)")
    ax.set_title(title or "Syn-red profile across depth")
    # below the axes: profiles are jagged and fill the panel, so no corner is free of data
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8, frameon=False,
              ncol=1 if len(profiles) <= 4 else 2)
    return _save(fig, path)
