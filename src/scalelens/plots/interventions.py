"""Figures 3b/3c (core graphs, their metrics), 4a (ablation curves), 4b (perturbation bars)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize

from scalelens.ablation import AblationSummary
from scalelens.graphs import CoreGraph, GraphCores
from scalelens.plots._common import save_figure

SYN_COLOR = "#c0392b"
RED_COLOR = "#2471a3"
RAND_COLOR = "#7f7f7f"
BASE_COLOR = "#4d4d4d"
_MODEL_COLORS = plt.get_cmap("tab10").colors


def _save(fig: plt.Figure, path: str | Path, dpi: int = 150) -> Path:
    return save_figure(fig, path, dpi)


def _band(random_curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (ddof=1; 0 for a single curve) over random seeds, point by point."""
    r = np.atleast_2d(np.asarray(random_curves, dtype=np.float64))
    std = r.std(axis=0, ddof=1) if r.shape[0] > 1 else np.zeros(r.shape[1])
    return r.mean(axis=0), std


# ----------------------------------------------------------------------------- figure 4a


def plot_ablation_curves(path: str | Path, fraction: np.ndarray, syn_first: np.ndarray,
                         red_first: np.ndarray, random_curves: np.ndarray, title: str,
                         summary: AblationSummary | None = None) -> Path:
    """KL (nats) against fraction of heads removed: syn-first, red-first, random mean +- std."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    mean, std = _band(random_curves)
    n_rand = np.atleast_2d(random_curves).shape[0]
    ax.fill_between(fraction, np.maximum(mean - std, 0), mean + std, color=RAND_COLOR, alpha=0.25,
                    linewidth=0, label=f"random ± std ({n_rand} seeds)")
    ax.plot(fraction, mean, color=RAND_COLOR, lw=1.8, ls="--", label="random (mean)")
    ax.plot(fraction, syn_first, color=SYN_COLOR, lw=2.2, marker="o", ms=3.5,
            label="most synergistic first")
    ax.plot(fraction, red_first, color=RED_COLOR, lw=2.0, marker="s", ms=3.2,
            label="most redundant first")
    ax.set_xlabel("fraction of heads removed")
    ax.set_ylabel("KL(intact ‖ ablated), nats")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    if summary is not None:
        verdict = "above" if summary.syn_first_above_random_band else "not above"
        text = (f"AUC syn-first {summary.auc_syn_first:.3g}\n"
                f"AUC red-first {summary.auc_red_first:.3g}\n"
                f"AUC random {summary.auc_random_mean:.3g} ± {summary.auc_random_std:.2g}\n"
                f"ratio syn/random {summary.ratio_syn_random:.2f}\n"
                f"syn-first {verdict} the random band")
        # beside the axes, never over the curves
        ax.text(1.03, 0.5, text, transform=ax.transAxes, ha="left", va="center", fontsize=8,
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.8"})
    return _save(fig, path)


def plot_ablation_overlay(path: str | Path,
                          curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Path:
    """Every model's syn-first and random-mean curves on fraction removed; raw and normalised.

    curves: model -> (fraction [S], syn_first [S], random [n_seeds, S]). The right panel divides
    each model's curves by its KL with every head removed, so models of different scale compare.
    """
    fig, (ax, axn) = plt.subplots(1, 2, figsize=(11, 4.4))
    for i, (model, (frac, syn, rand)) in enumerate(curves.items()):
        color = _MODEL_COLORS[i % len(_MODEL_COLORS)]
        mean, std = _band(rand)
        full = syn[-1] if syn[-1] > 0 else 1.0
        for a, scale in ((ax, 1.0), (axn, full)):
            a.fill_between(frac, np.maximum(mean - std, 0) / scale, (mean + std) / scale,
                           color=color, alpha=0.12, linewidth=0)
            a.plot(frac, mean / scale, color=color, lw=1.4, ls="--")
            a.plot(frac, syn / scale, color=color, lw=2.0, marker="o", ms=3, label=model)
    ax.set_ylabel("KL(intact ‖ ablated), nats")
    axn.set_ylabel("KL / KL with every head removed")
    for a in (ax, axn):
        a.set_xlabel("fraction of heads removed")
        a.set_xlim(0, 1)
        a.set_ylim(bottom=0)
        a.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    handles += [plt.Line2D([], [], color="k", lw=2, marker="o", ms=3),
                plt.Line2D([], [], color="k", lw=1.4, ls="--")]
    labels += ["syn-first (solid)", "random mean ± std (dashed, band)"]
    ax.legend(handles, labels, fontsize=8, frameon=False, loc="upper left")
    fig.suptitle("Cumulative head ablation across models (figure 4a overlay)")
    fig.tight_layout()
    return _save(fig, path)


# ----------------------------------------------------------------------------- figures 3b, 3c


def circular_layer_layout(n_layers: int, n_heads_per_layer: int,
                          gap_frac: float = 0.25) -> np.ndarray:
    """Node positions [n, 2] on the unit circle, layer after layer clockwise from the top, with a
    gap of gap_frac x (heads per layer) empty slots between layers, so each layer is an arc."""
    n = n_layers * n_heads_per_layer
    gap = gap_frac * n_heads_per_layer
    idx = np.arange(n)
    slot = 2 * np.pi / (n + n_layers * gap)
    angle = np.pi / 2 - (idx + (idx // n_heads_per_layer) * gap) * slot
    return np.column_stack([np.cos(angle), np.sin(angle)])


def _chords(p0: np.ndarray, p1: np.ndarray, n_points: int = 12, pull: float = 0.75
            ) -> np.ndarray:
    """Quadratic Bezier curves [E, n_points, 2] from p0 to p1 bent towards the centre.

    Chords between nearby heads (same or adjacent layers) stay near the rim, long-range ones pass
    close to the centre, so layer structure stays visible in a dense circular graph.
    """
    ctrl = (p0 + p1) / 2 * (1 - pull)
    t = np.linspace(0, 1, n_points)[None, :, None]
    return (1 - t) ** 2 * p0[:, None] + 2 * (1 - t) * t * ctrl[:, None] + t ** 2 * p1[:, None]


def _graph_panel(ax, g: CoreGraph, pos: np.ndarray, layer_of: np.ndarray, n_layers: int,
                 color: str, title: str) -> None:
    """Edges as curved chords (width and alpha by weight, strongest drawn last), nodes by layer."""
    if g.n_edges:
        w = g.weights
        lo, hi = float(w.min()), float(w.max())
        t = (w - lo) / (hi - lo) if hi > lo else np.ones_like(w)
        order = np.argsort(t, kind="stable")
        curves = _chords(pos[g.edges_i[order]], pos[g.edges_j[order]])
        # fainter and thinner edges when there are many: 66k edges must not fill the disc
        base_alpha = float(np.clip(8.0 / np.sqrt(g.n_edges), 0.012, 0.6))
        rgba = np.tile(matplotlib.colors.to_rgba(color), (len(order), 1))
        rgba[:, 3] = base_alpha * (0.2 + 0.8 * t[order])
        widths = (0.3 + 1.7 * t[order]) * float(np.clip(15.0 / np.sqrt(g.n_edges), 0.25, 1.0))
        ax.add_collection(LineCollection(curves, colors=rgba, linewidths=widths, zorder=1))
    node_size = float(np.clip(4000.0 / len(pos), 3, 60))
    ax.scatter(pos[:, 0], pos[:, 1], c=layer_of, cmap="viridis", vmin=0, vmax=max(n_layers - 1, 1),
               s=node_size, linewidths=0, zorder=2)
    step = max(1, int(np.ceil(n_layers / 12)))
    for layer in range(0, n_layers, step):
        members = np.flatnonzero(layer_of == layer)
        mid = pos[members].mean(axis=0)
        mid = 1.12 * mid / (np.linalg.norm(mid) or 1.0)
        ax.text(mid[0], mid[1], f"L{layer}", ha="center", va="center", fontsize=7, color="0.3")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(-1.22, 1.22)
    ax.set_ylim(-1.22, 1.22)
    ax.set_aspect("equal")
    ax.axis("off")


def _metrics_panel(ax, cores: GraphCores) -> None:
    """Figure 3c: global efficiency and modularity, synergy vs redundancy, plus degree facts."""
    names = ["global\nefficiency", "modularity"]
    syn = [cores.synergy.global_efficiency, cores.synergy.modularity]
    red = [cores.redundancy.global_efficiency, cores.redundancy.modularity]
    x = np.arange(len(names))
    for off, vals, col, lab in ((-0.18, syn, SYN_COLOR, "synergistic core"),
                                (0.18, red, RED_COLOR, "redundant core")):
        bars = ax.bar(x + off, np.nan_to_num(vals), width=0.34, color=col, label=lab)
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.01, f"{v:.2f}",
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, names)
    ax.set_ylim(0, max(1.0, np.nanmax(syn + red) * 1.2))
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    facts = (f"syn: {cores.synergy.n_edges} edges, mean degree {cores.synergy.mean_degree:.1f}, "
             f"{cores.synergy.n_communities} communities\n"
             f"red: {cores.redundancy.n_edges} edges, mean degree "
             f"{cores.redundancy.mean_degree:.1f}, {cores.redundancy.n_communities} communities")
    ax.set_title("graph metrics (figure 3c)", fontsize=10)
    ax.text(0.5, -0.12, facts, transform=ax.transAxes, ha="center", va="top", fontsize=7.5)
    ax.grid(axis="y", alpha=0.3)


def plot_graph_cores(path: str | Path, cores: GraphCores, n_layers: int, n_heads_per_layer: int,
                     title: str) -> Path:
    """Synergy and redundancy graphs side by side (circular, grouped by layer) + metrics bars."""
    n = n_layers * n_heads_per_layer
    if cores.synergy.n_nodes != n:
        raise ValueError(f"graph has {cores.synergy.n_nodes} nodes, layers x heads = {n}")
    pos = circular_layer_layout(n_layers, n_heads_per_layer)
    layer_of = np.arange(n) // n_heads_per_layer
    fig = plt.figure(figsize=(16, 6.6))
    grid = fig.add_gridspec(2, 3, width_ratios=[1, 1, 0.62], height_ratios=[1, 0.035],
                            wspace=0.15, hspace=0.08)
    pct = f"top {cores.top_pct:.0%} edges"
    _graph_panel(fig.add_subplot(grid[0, 0]), cores.synergy, pos, layer_of, n_layers, SYN_COLOR,
                 f"synergistic core (sts, {pct})")
    _graph_panel(fig.add_subplot(grid[0, 1]), cores.redundancy, pos, layer_of, n_layers,
                 RED_COLOR, f"redundant core (rtr, {pct})")
    cax = fig.add_subplot(grid[1, :2])
    sm = plt.cm.ScalarMappable(norm=Normalize(0, max(n_layers - 1, 1)), cmap="viridis")
    fig.colorbar(sm, cax=cax, orientation="horizontal", label="layer (node colour)")
    _metrics_panel(fig.add_subplot(grid[0, 2]), cores)
    fig.suptitle(title, fontsize=12)
    return _save(fig, path)


# ----------------------------------------------------------------------------- figure 4b


def _verdict_note(ax, verdict) -> None:
    """The verdict and its reason under the panel; an UNINFORMATIVE panel is greyed out."""
    if verdict is None:
        return
    informative = verdict.verdict != "UNINFORMATIVE"
    if not informative:
        ax.set_facecolor("#f2f2f2")
        ax.text(0.5, 0.5, "UNINFORMATIVE", transform=ax.transAxes, ha="center", va="center",
                fontsize=20, color="0.55", alpha=0.6, rotation=20, zorder=0)
    reason = verdict.reason if len(verdict.reason) <= 200 else verdict.reason[:197] + "..."
    words, lines, line = reason.split(), [], ""
    for w in words:  # wrap at ~62 characters
        if line and len(line) + 1 + len(w) > 62:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    ax.text(0.5, -0.2, f"{verdict.verdict}\n" + "\n".join(lines), transform=ax.transAxes,
            ha="center", va="top", fontsize=7.5,
            color="k" if informative else "#a04000",
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.8"})


def plot_perturbation_bars(path: str | Path, labels: Sequence[str], names: Sequence[str],
                           accuracy: Sequence[float], gold_nll_nats: Sequence[float],
                           title: str, accuracy_verdict=None, nll_verdict=None,
                           floor: float | None = None, ceiling: float | None = None) -> Path:
    """Accuracy and gold NLL per condition: bar = mean over the condition's replicates, error bar
    = std (ddof=1), one dot per replicate (noise seed; head set too for random).

    labels: per-run label (e.g. synergistic_noise1); names: its kind (baseline, synergistic,
    redundant, random). Verdicts (objects with .verdict and .reason, see
    scalelens.perturbation.Verdict) are written under their panel; an UNINFORMATIVE one greys
    the panel out. floor / ceiling: the accuracy verdict's premise, drawn as dotted lines.
    """
    kinds = ["baseline", "synergistic", "redundant", "random"]
    colors = {"baseline": BASE_COLOR, "synergistic": SYN_COLOR, "redundant": RED_COLOR,
              "random": RAND_COLOR}
    present = [k for k in kinds if k in names]
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.4))
    for ax, values, ylabel in ((axes[0], accuracy, "accuracy"),
                               (axes[1], gold_nll_nats, "gold-answer NLL, nats (lower = better)")):
        vals = np.asarray(values, dtype=np.float64)
        for x, kind in enumerate(present):
            v = vals[[n == kind for n in names]]
            err = v.std(ddof=1) if v.size > 1 else 0.0
            ax.bar(x, v.mean(), color=colors[kind], width=0.65, alpha=0.85,
                   yerr=err if v.size > 1 else None, capsize=6, ecolor="k")
            if v.size > 1:
                jitter = np.linspace(-0.15, 0.15, v.size)
                ax.scatter(x + jitter, v, color="k", s=14, zorder=3)
            top = max(v.mean() + err, v.max())
            text = f"{v.mean():.3g}" + (f" ± {err:.2g}" if v.size > 1 else "")
            ax.annotate(text, (x, top), xytext=(0, 4), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(present)),
                      [k if k == "baseline" else f"{k}\n(n={names.count(k)})" for k in present])
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    for level, word in ((floor, "floor"), (ceiling, "ceiling")):
        if level is not None:
            axes[0].axhline(level, color="#a04000", ls=":", lw=1.2)
            axes[0].annotate(f"{word} {level:g}", (1.0, level), xycoords=("axes fraction", "data"),
                             xytext=(-2, 2), textcoords="offset points", ha="right",
                             va="bottom", fontsize=7, color="#a04000")
    axes[0].set_ylim(0, 1.08)
    axes[1].set_ylim(0, axes[1].get_ylim()[1] * 1.08)
    axes[0].set_title("accuracy (verdict on the drop)", fontsize=10)
    axes[1].set_title("gold-answer NLL (verdict on the rise)", fontsize=10)
    _verdict_note(axes[0], accuracy_verdict)
    _verdict_note(axes[1], nll_verdict)
    fig.suptitle(title)
    fig.tight_layout()
    if accuracy_verdict is not None or nll_verdict is not None:
        fig.subplots_adjust(bottom=0.3)
    return _save(fig, path)
