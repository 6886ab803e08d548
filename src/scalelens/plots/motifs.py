"""Figures of the cross-scale motif analysis (each takes a ScaleAnalysis part, writes one PNG)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from scipy.cluster.hierarchy import dendrogram  # noqa: E402

from scalelens.motifs.census import (  # noqa: E402
    CONNECTED_LABELS,
    KEY_MOTIFS,
    MOTIF_CHAIN,
    MOTIF_FAN_IN,
    MOTIF_FAN_OUT,
    MOTIF_FFL,
    TRIAD_DESCRIPTIONS,
    label_index,
)
from scalelens.motifs.scale import (  # noqa: E402
    BaselineComparison,
    ModelClustering,
    ScaleAnalysis,
    format_params,
)
from scalelens.plots._common import save_figure  # noqa: E402

SCALE_CMAP = "viridis"
LINE_COLORS = plt.get_cmap("tab10").colors
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
PER_TASK_MOTIFS: tuple[str, ...] = (MOTIF_FFL, MOTIF_CHAIN, MOTIF_FAN_IN, MOTIF_FAN_OUT)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    return save_figure(fig, path, dpi=130)


def _model_colors(n: int) -> list:
    """Sequential colours from small (dark) to large (light) models."""
    cmap = plt.get_cmap(SCALE_CMAP)
    return [cmap(0.1 + 0.75 * i / max(n - 1, 1)) for i in range(n)]


def _size_labels(analysis: ScaleAnalysis) -> list[str]:
    return [f"{m}\n({format_params(p)})" for m, p in zip(analysis.models, analysis.n_params)]


def _set_size_axis(ax: plt.Axes, analysis: ScaleAnalysis) -> None:
    ax.set_xticks(analysis.log10_params)
    ax.set_xticklabels([format_params(p) for p in analysis.n_params])
    ax.set_xlabel("model size (log10 parameters)")
    pad = 0.15 * max(np.ptp(analysis.log10_params), 0.5)
    ax.set_xlim(analysis.log10_params.min() - pad, analysis.log10_params.max() + pad)


def _symmetric_norm(values: np.ndarray) -> TwoSlopeNorm:
    vmax = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    vmax = max(vmax, 1e-9)
    return TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)


def plot_scale_heatmap(
    analysis: ScaleAnalysis,
    path: str | Path,
    labels: Sequence[str] = CONNECTED_LABELS,
    title: str = "Motif Z-score profile across model scales",
) -> Path:
    """Models (rows, by size) x triad classes: mean Z, diverging colours, annotated."""
    idx = [label_index(lab) for lab in labels]
    values = analysis.mean_z[:, idx]
    fig, ax = plt.subplots(figsize=(1.0 + 0.85 * len(labels), 1.6 + 0.75 * len(analysis.models)))
    im = ax.imshow(values, cmap="RdBu_r", norm=_symmetric_norm(values), aspect="auto")
    vmax = np.nanmax(np.abs(values)) or 1.0
    for (i, j), v in np.ndenumerate(values):
        ax.text(
            j,
            i,
            f"{v:+.1f}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if abs(v) > 0.6 * vmax else "black",
        )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticks(range(len(analysis.models)))
    ax.set_yticklabels(_size_labels(analysis), fontsize=8)
    ax.set_xlabel("triad class (MAN label)")
    cbar = fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02)
    cbar.set_label(f"mean Z ({analysis.null_model} null)")
    ax.set_title(title)
    return _save(fig, path)


def plot_ffl_across_scales(analysis: ScaleAnalysis, path: str | Path) -> Path:
    """Mean Z of the FFL (030T) per model with +-1 std error bars against log10 params."""
    stats = {s.model: s for s in analysis.ffl.per_model}
    x = analysis.log10_params
    y = np.array([stats[m].mean_z for m in analysis.models])
    err = np.array([stats[m].std_z for m in analysis.models])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.errorbar(
        x,
        y,
        yerr=err,
        fmt="-",
        color="#d62728",
        lw=2,
        capsize=5,
        zorder=2,
        label=f"{analysis.ffl.label} (FFL) mean Z +- 1 sd",
    )
    ax.scatter(x, y, c=_model_colors(len(x)), s=90, edgecolors="black", zorder=3)
    for xi, yi, m in zip(x, y, analysis.models):
        pct = stats[m].pct_enriched
        ax.annotate(
            f"{pct:.0f}% graphs\nZ>={analysis.ffl.z_threshold:g}",
            (xi, yi),
            textcoords="offset points",
            xytext=(10, -4),
            fontsize=8,
        )
    ax.axhline(
        analysis.ffl.z_threshold,
        color="grey",
        ls="--",
        lw=1,
        label=f"Z = {analysis.ffl.z_threshold:g}",
    )
    ax.axhline(0, color="black", lw=0.6)
    _set_size_axis(ax, analysis)
    ax.set_ylabel("Z-score")
    ax.set_title(f"FFL (030T) enrichment across scales: {analysis.ffl.verdict}")
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def plot_key_motif_scaling(
    analysis: ScaleAnalysis, path: str | Path, labels: Sequence[str] = KEY_MOTIFS
) -> Path:
    """Mean Z (+- std) of key motifs against log10 params, with the fitted linear trend."""
    trends = {t.label: t for t in analysis.trends}
    x = analysis.log10_params
    fig, ax = plt.subplots(figsize=(8.5, 5))
    xs = np.linspace(x.min(), x.max(), 20)
    for k, label in enumerate(labels):
        j = label_index(label)
        color = LINE_COLORS[k % len(LINE_COLORS)]
        t = trends[label]
        mark = "" if t.direction == "flat" else f" ({t.direction})"
        ax.errorbar(
            x + 0.01 * (k - len(labels) / 2),
            analysis.mean_z[:, j],
            yerr=analysis.std_z[:, j],
            fmt=MARKERS[k % len(MARKERS)],
            color=color,
            capsize=3,
            label=f"{label} {TRIAD_DESCRIPTIONS[label]}: slope {t.slope:+.2f}/dec{mark}",
        )
        ax.plot(xs, t.intercept + t.slope * xs, color=color, lw=1.2, ls="--", alpha=0.8)
    ax.axhline(0, color="black", lw=0.6)
    ax.axhline(2, color="grey", lw=0.8, ls=":")
    ax.axhline(-2, color="grey", lw=0.8, ls=":")
    _set_size_axis(ax, analysis)
    ax.set_ylabel("mean Z-score (+- 1 sd over graphs)")
    ax.set_title("Key motif Z-scores across model scales (dashed: linear fit in log10 params)")
    ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def plot_per_task_scaling(
    analysis: ScaleAnalysis, path: str | Path, labels: Sequence[str] = PER_TASK_MOTIFS
) -> Path:
    """One panel per task: mean Z (+- std) of the given motifs against log10 params."""
    n_tasks = len(analysis.tasks)
    n_cols = min(n_tasks, 2)
    n_rows = int(np.ceil(n_tasks / n_cols))
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(6 * n_cols, 3.8 * n_rows), squeeze=False, sharey=True
    )
    x = analysis.log10_params
    for t, task in enumerate(analysis.tasks):
        ax = axes.flat[t]
        for k, label in enumerate(labels):
            j = label_index(label)
            ax.errorbar(
                x,
                analysis.task_mean_z[:, t, j],
                yerr=analysis.task_std_z[:, t, j],
                fmt="-" + MARKERS[k % len(MARKERS)],
                color=LINE_COLORS[k],
                capsize=3,
                label=f"{label} {TRIAD_DESCRIPTIONS[label]}",
            )
        ax.axhline(0, color="black", lw=0.6)
        n_graphs = ", ".join(str(n) for n in analysis.task_n_graphs[:, t])
        ax.set_title(f"{task} (graphs per model: {n_graphs})")
        _set_size_axis(ax, analysis)
        ax.set_ylabel("mean Z-score")
    for ax in list(axes.flat)[n_tasks:]:
        ax.set_visible(False)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(
        handles,
        names,
        loc="lower center",
        ncol=len(labels),
        fontsize=8,
        bbox_to_anchor=(0.5, -0.03),
    )
    fig.suptitle("Per-task motif scaling", fontsize=13)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, path)


def plot_sp_overlay(
    analysis: ScaleAnalysis, path: str | Path, labels: Sequence[str] = CONNECTED_LABELS
) -> Path:
    """Every model's mean significance profile over the connected classes, overlaid."""
    idx = [label_index(lab) for lab in labels]
    fig, ax = plt.subplots(figsize=(10, 4.8))
    xs = np.arange(len(labels))
    for i, (model, color) in enumerate(
        zip(_size_labels(analysis), _model_colors(len(analysis.models)))
    ):
        ax.plot(
            xs,
            analysis.mean_sp[i, idx],
            "-" + MARKERS[i % len(MARKERS)],
            color=color,
            lw=2,
            label=model.replace("\n", " "),
        )
        ax.fill_between(
            xs,
            analysis.mean_sp[i, idx] - analysis.std_sp[i, idx],
            analysis.mean_sp[i, idx] + analysis.std_sp[i, idx],
            color=color,
            alpha=0.12,
        )
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_xlabel("triad class (MAN label)")
    ax.set_ylabel("mean SP (band: +- 1 sd)")
    ax.set_title("Significance profiles across model scales")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_cosine_matrix(clustering: ModelClustering, path: str | Path) -> Path:
    """Cosine similarity of the models' mean SP vectors, annotated."""
    k = len(clustering.models)
    fig, ax = plt.subplots(figsize=(2.5 + 1.1 * k, 2.0 + 1.0 * k))
    sim = clustering.similarity
    im = ax.imshow(sim, cmap="RdBu_r", vmin=-1, vmax=1)
    for (i, j), v in np.ndenumerate(sim):
        ax.text(
            j,
            i,
            f"{v:.3f}",
            ha="center",
            va="center",
            fontsize=9,
            color="white" if abs(v) > 0.7 else "black",
        )
    ax.set_xticks(range(k))
    ax.set_xticklabels(clustering.models, rotation=45, ha="right")
    ax.set_yticks(range(k))
    ax.set_yticklabels(clustering.models)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label("cosine similarity")
    ax.set_title("Model similarity (mean SP vectors)")
    return _save(fig, path)


def plot_dendrogram(clustering: ModelClustering, path: str | Path) -> Path:
    """Average-linkage dendrogram of the models on cosine distance of mean SP."""
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(clustering.models) < 2:
        ax.text(0.5, 0.5, "need >= 2 models to cluster", ha="center", va="center")
        ax.set_axis_off()
    else:
        dendrogram(
            clustering.linkage,
            labels=list(clustering.models),
            ax=ax,
            color_threshold=0,
            above_threshold_color="#34495e",
        )
        ax.set_ylabel("cosine distance (1 - cos)")
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        top = float(clustering.linkage[:, 2].max())
        ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)
    ax.set_title("Model clustering (average linkage on mean SP)")
    return _save(fig, path)


def plot_baseline_comparison(comparison: BaselineComparison, path: str | Path) -> Path:
    """Grouped bars per class: the baseline's mean Z (+- std) beside each model's."""
    labels = comparison.labels
    names = [comparison.baseline_name, *comparison.models]
    means = np.vstack([comparison.baseline_mean_z, comparison.model_mean_z])
    stds = np.vstack([comparison.baseline_std_z, comparison.model_std_z])
    colors = ["#7f7f7f", *_model_colors(len(comparison.models))]
    width = 0.8 / len(names)
    xs = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(9, 0.9 * len(labels)), 4.8))
    for i, (name, color) in enumerate(zip(names, colors)):
        ax.bar(
            xs + (i - (len(names) - 1) / 2) * width,
            means[i],
            width,
            yerr=stds[i],
            color=color,
            capsize=2,
            label=name,
            hatch="//" if i == 0 else None,
            edgecolor="black",
            lw=0.4,
            error_kw={"elinewidth": 0.7},
        )
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_xlabel("triad class (MAN label)")
    ax.set_ylabel("mean Z-score (+- 1 sd)")
    ax.set_title(
        f"Baseline {comparison.baseline_name} ({comparison.baseline_n_graphs} graphs) vs models: "
        "mean Z per class"
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


#: File names written by plot_all (stem -> function of the analysis).
FIGURE_NAMES: tuple[str, ...] = (
    "scale_heatmap",
    "ffl_across_scales",
    "key_motif_scaling",
    "per_task_scaling",
    "sp_overlay",
    "cosine_matrix",
    "dendrogram",
    "baseline_comparison",
)


def plot_all(analysis: ScaleAnalysis,
             out: str | Path | Mapping[str, Path]) -> dict[str, Path]:
    """Write every figure (baseline only if present); name -> path. `out` is a folder (files
    <name>.png) or a mapping from figure name to file."""
    if isinstance(out, Mapping):
        where = {name: Path(out[name]) for name in FIGURE_NAMES}
    else:
        where = {name: Path(out) / f"{name}.png" for name in FIGURE_NAMES}
    paths = {
        "scale_heatmap": plot_scale_heatmap(analysis, where["scale_heatmap"]),
        "ffl_across_scales": plot_ffl_across_scales(analysis, where["ffl_across_scales"]),
        "key_motif_scaling": plot_key_motif_scaling(analysis, where["key_motif_scaling"]),
        "per_task_scaling": plot_per_task_scaling(analysis, where["per_task_scaling"]),
        "sp_overlay": plot_sp_overlay(analysis, where["sp_overlay"]),
        "cosine_matrix": plot_cosine_matrix(analysis.clustering, where["cosine_matrix"]),
        "dendrogram": plot_dendrogram(analysis.clustering, where["dendrogram"]),
    }
    if analysis.baseline is not None:
        paths["baseline_comparison"] = plot_baseline_comparison(
            analysis.baseline, where["baseline_comparison"])
    return paths


def placeholder_figure(path: str | Path, message: str) -> Path:
    """A small figure that says why a figure is absent (DVC expects every declared plot)."""
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10)
    return _save(fig, path)
