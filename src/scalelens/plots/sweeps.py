"""Figures of the sweep studies: SI ladder (B11), residual gain (H25), UA correlation by depth."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch
from scipy import stats

from scalelens.plots._common import save_figure
from scalelens.sweeps.gain import H25Report, H25Verdict
from scalelens.sweeps.si import B11Verdict
from scalelens.sweeps.uniformity import PeakStabilityVerdict, UniformityStudy

MEASURED_COLOR = "#8e44ad"
REFERENCE_COLOR = "#3498db"
METRIC_STYLE = {
    "G_seed": {"color": "#1f77b4", "marker": "o",
               "label": "G_seed = |h[-2]|/|h[-3]| (2nd-to-last block)"},
    "G_last": {"color": "#d62728", "marker": "s", "label": "G_last (last block, pre final norm)"},
}
LINE_COLORS = plt.get_cmap("tab10").colors
LINE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _save(fig: plt.Figure, path: str | Path) -> Path:
    return save_figure(fig, path, dpi=130)


def _asym_err(points: Sequence[float], lows: Sequence, highs: Sequence) -> np.ndarray:
    """Error-bar half-widths [2, n] from intervals; 0 where an interval is missing."""
    pts = np.asarray(points, dtype=float)
    lo = np.array([p if v is None or not math.isfinite(v) else v for p, v in zip(pts, lows)])
    hi = np.array([p if v is None or not math.isfinite(v) else v for p, v in zip(pts, highs)])
    return np.vstack([np.maximum(pts - lo, 0.0), np.maximum(hi - pts, 0.0)])


def plot_si_ladder(verdict: B11Verdict, path: str | Path, title: str | None = None) -> Path:
    """Two panels: SI_seed bars with the target band and 95% intervals; size vs SI with trend."""
    rows = sorted(verdict.models, key=lambda e: (e.size_b is None, e.size_b or 0.0))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 6))
    band_lo, band_hi = verdict.band
    top = max([1.0] + [(e.high or e.si) + 0.1 for e in rows]
              + [(e.si_heads_high or e.si_heads) + 0.08 for e in rows if e.si_heads is not None])

    names = [e.name if e.size_b is None else f"{e.name}\n({e.size_b:g}B)" for e in rows]
    x = np.arange(len(rows))
    colors = [MEASURED_COLOR if e.source == "measured" else REFERENCE_COLOR for e in rows]
    hatches = ["" if e.source == "measured" else "//" for e in rows]
    err = _asym_err([e.si for e in rows], [e.low for e in rows], [e.high for e in rows])
    bars = ax1.bar(x, [e.si for e in rows], yerr=err, color=colors, alpha=0.85, capsize=5,
                   edgecolor="black")
    for bar, hatch in zip(bars, hatches):
        bar.set_hatch(hatch)
    for i, e in enumerate(rows):
        flag = " ?" if e.band_status == "undecided" else ""
        ax1.annotate(f"{e.si:.3f}{flag}", (i, (e.high or e.si) + 0.02), ha="center",
                     fontweight="bold", fontsize=9)
        if e.si_heads is not None:
            h_err = _asym_err([e.si_heads], [e.si_heads_low], [e.si_heads_high])
            ax1.errorbar([i + 0.25], [e.si_heads], yerr=h_err, fmt="D", mfc="white",
                         mec="black", ecolor="gray", capsize=3,
                         label="SI_heads (relabelling-invariant)" if i == 0 else None)
    ax1.axhline(verdict.target, color="green", ls="--", lw=2, label=f"target SI = {verdict.target}")
    ax1.axhspan(band_lo, band_hi, color="green", alpha=0.2,
                label=f"+/- {verdict.tolerance} tolerance")
    handles, _ = ax1.get_legend_handles_labels()
    handles += [
        Patch(facecolor=MEASURED_COLOR, edgecolor="black", label="measured (95% bootstrap CI)"),
        Patch(facecolor=REFERENCE_COLOR, edgecolor="black", hatch="//",
              label="reference (seed value)"),
    ]
    if verdict.undecided_models:
        handles.append(Patch(facecolor="none", edgecolor="none",
                             label="? = interval straddles a band edge (undecided)"))
    ax1.set_xticks(x, names, fontsize=8)
    ax1.set_ylim(0, top)
    ax1.set_ylabel("Specialization Index SI_seed")
    ax1.set_title(f"SI by model ({verdict.verdict}, {verdict.tier})", fontweight="bold")
    ax1.legend(handles=handles, loc="upper right", fontsize=8)

    sized = [e for e in rows if e.size_b is not None]
    if sized:
        sizes = np.array([e.size_b for e in sized])
        sis = np.array([e.si for e in sized])
        s_err = _asym_err(sis, [e.low for e in sized], [e.high for e in sized])
        ax2.errorbar(sizes, sis, yerr=s_err, fmt="none", ecolor="gray", capsize=4)
        ax2.scatter(sizes, sis, s=120, marker="s", c=[MEASURED_COLOR if e.source == "measured"
                                                       else REFERENCE_COLOR for e in sized],
                    edgecolors="black", linewidths=1.5, zorder=5)
        # neighbours alternate above / below their marker so close sizes stay readable
        for i, e in enumerate(sized):
            ax2.annotate(e.name, (e.size_b, e.si), xytext=(8, 8 if i % 2 == 0 else -14),
                         textcoords="offset points", fontsize=8)
        log_x = sizes.min() > 0 and sizes.max() / sizes.min() > 20
        if len(sized) >= 3 and np.ptp(sizes) > 0:
            slope, intercept = np.polyfit(sizes, sis, 1)  # the seed's trend: linear in size
            xs = (np.geomspace if log_x else np.linspace)(sizes.min(), sizes.max(), 200)
            ax2.plot(xs, slope * xs + intercept, "r--", alpha=0.6,
                     label=f"linear trend (slope = {slope:.4f} per B)")
        if log_x:  # sizes spanning orders of magnitude would pile up at 0 on a linear axis
            ax2.set_xscale("log")
            ax2.set_xlim(sizes.min() / 1.6, sizes.max() * 2.5)
        else:
            ax2.set_xlim(0, sizes.max() * 1.15)
    else:
        ax2.text(0.5, 0.5, "no model sizes given", ha="center", transform=ax2.transAxes)
    ax2.axhline(verdict.target, color="purple", ls="--", lw=2, alpha=0.7)
    ax2.axhspan(band_lo, band_hi, color="purple", alpha=0.1, label="target band")
    ax2.set_ylim(0, top)
    ax2.set_xlabel("Model size (B parameters" + (", log scale)" if sized and log_x else ")"))
    ax2.set_ylabel("Specialization Index SI_seed")
    ax2.set_title("Size vs SI", fontweight="bold")
    ax2.legend(loc="best", fontsize=8)
    fig.suptitle(title or f"B11: SI size ladder - {verdict.verdict}", fontweight="bold")
    fig.tight_layout()
    return _save(fig, path)


def _gain_arrays(v: H25Verdict) -> tuple:
    rows = sorted(v.models, key=lambda e: e.rho)
    rho = np.array([e.rho for e in rows])
    g = np.array([e.gain.point for e in rows])
    err = _asym_err(g, [e.gain.low for e in rows], [e.gain.high for e in rows])
    return rows, rho, g, err


def plot_gain(report: H25Report, path: str | Path, title: str | None = None) -> Path:
    """Three panels: rho vs G with 95% intervals; G per model; rho-G regression with r and p.

    G_seed (circles, blue) and G_last (squares, red) are drawn in every panel.
    """
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.5))
    metrics = (("G_seed", report.g_seed), ("G_last", report.g_last))
    ax1, ax2, ax3 = axes
    offsets = {"G_seed": -0.2, "G_last": 0.2}
    for key, v in metrics:
        style = METRIC_STYLE[key]
        rows, rho, g, err = _gain_arrays(v)
        if not rows:
            continue
        ax1.errorbar(rho, g, yerr=err, fmt=style["marker"], color=style["color"], ms=8,
                     capsize=4, label=f"{style['label']} - {v.verdict}")
        x = np.arange(len(rows))
        ax2.bar(x + offsets[key], g, width=0.4, yerr=err, capsize=3, color=style["color"],
                alpha=0.75, label=key)
        ax2.set_xticks(x, [f"{e.model}\nrho={e.rho:.3f}" for e in rows], fontsize=8,
                       rotation=30)
        ax3.scatter(rho, g, marker=style["marker"], color=style["color"], s=70, zorder=5)
        if len(rows) >= 2 and np.ptp(rho) > 0:
            fit = stats.linregress(rho, g)
            xs = np.linspace(rho.min() * 0.9, rho.max() * 1.1, 100)
            r_txt = "n/a" if not math.isfinite(v.pearson_r) else f"{v.pearson_r:.3f}"
            p_txt = "n/a (< 3 models)" if not math.isfinite(v.pearson_p) else f"{v.pearson_p:.3g}"
            ax3.plot(xs, fit.slope * xs + fit.intercept, "--", color=style["color"],
                     label=f"{key}: r = {r_txt}, p = {p_txt}")
    for _key, v in metrics[:1]:
        rows, rho, g, _ = _gain_arrays(v)
        for e, x_, y_ in zip(rows, rho, g):
            ax1.annotate(e.model, (x_, y_), xytext=(5, 5), textcoords="offset points",
                         fontsize=8)
    for ax in axes:
        ax.axhline(1.0, color="black", ls="--", alpha=0.5)
        ax.grid(True, alpha=0.3)
        ax.set_ylabel("Residual stream gain G")
    threshold = report.g_seed.rho_threshold
    ax1.axvline(threshold, color="gray", ls=":", alpha=0.7, label=f"rho = {threshold:g}")
    ax1.set_xlabel("rho = n_heads / d_head")
    ax1.set_title("rho vs G (95% bootstrap CI; G < 1 dampens)")
    ax1.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    ax2.set_xlabel("model (sorted by rho)")
    ax2.set_title("G by model")
    ax2.legend(fontsize=8)
    ax3.set_xlabel("rho = n_heads / d_head")
    ax3.set_title("Correlation: rho -> dampening?")
    ax3.legend(fontsize=8, loc="best")
    fig.suptitle(title or f"H25 residual gain: G_seed {report.g_seed.verdict}, "
                          f"G_last {report.g_last.verdict}", fontweight="bold")
    fig.tight_layout()
    return _save(fig, path)


def plot_uniformity(
    studies: Sequence[UniformityStudy],
    path: str | Path,
    verdict: PeakStabilityVerdict | None = None,
    title: str | None = None,
) -> Path:
    """Two panels of r(UA, preference) by layer: absolute hidden-state index and % depth."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(16, 6))
    for i, s in enumerate(studies):
        color = LINE_COLORS[i % len(LINE_COLORS)]
        marker = LINE_MARKERS[i % len(LINE_MARKERS)]
        layers = np.asarray(s.layers)
        for ax, xs in ((ax1, layers), (ax2, np.asarray(s.depth_pct))):
            ax.plot(xs, s.r, f"{marker}-", color=color, lw=2, ms=7, alpha=0.85,
                    label=f"{s.model} ({s.n_layers} layers)")
            ax.fill_between(xs, s.r_low, s.r_high, color=color, alpha=0.15)
        ax2.plot([s.peak.max_pos_pct], [s.peak.max_pos_r], "*", color=color, ms=16, mec="black")
    for ax in (ax1, ax2):
        ax.axhline(0, color="gray", ls="--", alpha=0.5)
        ax.set_ylabel("r(UA, output preference)")
        ax.set_ylim(-1.05, 1.05)
        ax.grid(True, alpha=0.3)
        # below the axes: inside, it would hide a curve or an interval band
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(len(studies), 3),
                  fontsize=8)
    ax1.set_xlabel("hidden-state index (0 = embeddings)")
    ax1.set_title("By layer (absolute); bands: 95% bootstrap CI over pairs", fontweight="bold")
    ax2.set_xlabel("layer position (% of depth)")
    ax2.set_title("By normalised depth; stars: peak (max r)", fontweight="bold")
    if title is None and verdict is not None:
        title = (f"Uniformity asymmetry by depth - peak {verdict.verdict} "
                 f"(std {verdict.std_peak_pct:.1f} % of depth)")
    fig.suptitle(title or "Uniformity asymmetry by depth", fontweight="bold")
    fig.tight_layout()
    return _save(fig, path)
