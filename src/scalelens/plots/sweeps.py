"""Figures of the sweep studies: SI ladder (B11), residual gain (H25), UA correlation by depth.

Every figure shows each model's family: one colour per family (legend), the family in the tick
labels, and lines joining the sizes of one family (the within-family steps). Across-family
trends are drawn grey and labelled descriptive.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from scalelens.plots._common import ACROSS_COLOR, family_colors, save_figure
from scalelens.sweeps.gain import H25Decision, H25ModelEntry, H25Report
from scalelens.sweeps.si import B11Verdict
from scalelens.sweeps.uniformity import PeakStabilityReport, UniformityStudy
from scalelens.sweeps.verdicts import NOT_APPLICABLE

METRIC_MARKERS = {"G_seed": "o", "G_last": "s"}
METRIC_LABELS = {"G_seed": "G_seed = |h[-2]|/|h[-3]| (2nd-to-last block)",
                 "G_last": "G_last (last block, pre final norm)"}
MODEL_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
MODEL_LINESTYLES = ("-", "--", "-.", ":")
ACROSS_NOTE = "across families: descriptive only"


def _save(fig: plt.Figure, path: str | Path) -> Path:
    return save_figure(fig, path, dpi=130)


def _family_handles(colors: Mapping[str, str], inferred: set[str] = frozenset(),
                    decided: Sequence[str] = ()) -> list:
    handles = []
    for f, c in colors.items():
        tags = [t for t, on in (("inferred", f in inferred), ("decided on", f in decided)) if on]
        label = f"family {f}" + (f" ({', '.join(tags)})" if tags else "")
        handles.append(Patch(facecolor=c, edgecolor="black", label=label))
    return handles


def _wrap(text: str, width: int = 150) -> str:
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())


def _asym_err(points: Sequence[float], lows: Sequence, highs: Sequence) -> np.ndarray:
    """Error-bar half-widths [2, n] from intervals; 0 where an interval is missing."""
    pts = np.asarray(points, dtype=float)
    lo = np.array([p if v is None or not math.isfinite(v) else v for p, v in zip(pts, lows)])
    hi = np.array([p if v is None or not math.isfinite(v) else v for p, v in zip(pts, highs)])
    return np.vstack([np.maximum(pts - lo, 0.0), np.maximum(hi - pts, 0.0)])


def _family_order(rows: Sequence, family, size) -> list:
    """Rows grouped by family (families by their smallest size), each family by size."""
    smallest: dict[str, float] = {}
    for r in rows:
        s = size(r) if size(r) is not None else math.inf
        smallest[family(r)] = min(smallest.get(family(r), math.inf), s)
    return sorted(rows, key=lambda r: (smallest[family(r)], family(r),
                                       size(r) is None, size(r) or 0.0))


def _color_ticklabels(ax, colors: Sequence[str]) -> None:
    for label, color in zip(ax.get_xticklabels(), colors):
        label.set_color(color)


def _size_axis(ax, sizes: np.ndarray) -> bool:
    """Log x when sizes span more than a factor 20; returns whether it is log."""
    log_x = sizes.size > 0 and sizes.min() > 0 and sizes.max() / sizes.min() > 20
    if log_x:
        ax.set_xscale("log")
        ax.set_xlim(sizes.min() / 1.6, sizes.max() * 2.5)
    elif sizes.size:
        ax.set_xlim(0, sizes.max() * 1.15)
    return bool(log_x)


# --------------------------------------------------------------------------------------------
# B11
# --------------------------------------------------------------------------------------------


def plot_si_ladder(verdict: B11Verdict, path: str | Path, title: str | None = None) -> Path:
    """Two panels: SI_seed bars by family with the target band and 95% intervals; size vs SI
    with the within-family steps joined and the across-family trend (descriptive)."""
    rows = _family_order(verdict.models, lambda e: e.family, lambda e: e.size_b)
    colors = family_colors([e.family for e in rows])
    inferred = {e.family for e in rows if e.family_inferred}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 6.5))
    band_lo, band_hi = verdict.band
    top = max([1.0] + [(e.high or e.si) + 0.1 for e in rows]
              + [(e.si_heads_high or e.si_heads) + 0.08 for e in rows if e.si_heads is not None])
    faded = verdict.premise.met  # models the rule does not count are faded once it applies

    x = np.arange(len(rows))
    err = _asym_err([e.si for e in rows], [e.low for e in rows], [e.high for e in rows])
    bars = ax1.bar(x, [e.si for e in rows], yerr=err, color=[colors[e.family] for e in rows],
                   capsize=5, edgecolor="black")
    for bar, e in zip(bars, rows):
        bar.set_hatch("" if e.source == "measured" else "//")
        bar.set_alpha(0.3 if faded and not e.counted else 0.85)
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
    handles += _family_handles(colors, inferred, verdict.premise.decided_on)
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//",
                         label="hatched: reference (seed value, no interval)"))
    if faded and any(not e.counted for e in rows):
        handles.append(Patch(facecolor="lightgray", edgecolor="black", alpha=0.3,
                             label="faded: not counted by B11 (not Phi family)"))
    if verdict.undecided_models:
        handles.append(Patch(facecolor="none", edgecolor="none",
                             label="? = interval straddles a band edge (undecided)"))
    labels = [f"{e.name}\n({e.size_b:g}B)\n{e.family}"
              if e.size_b is not None and f"{e.size_b:g}B" not in e.name
              else f"{e.name}\n{e.family}" for e in rows]
    ax1.set_xticks(x, labels, fontsize=7, rotation=20, ha="right", rotation_mode="anchor")
    _color_ticklabels(ax1, [colors[e.family] for e in rows])
    ax1.set_ylim(0, top)
    ax1.set_ylabel("Specialization Index SI_seed (95% bootstrap CI)")
    tier = verdict.tier or "no tier"
    ax1.set_title(f"SI by model, grouped by family ({verdict.verdict}, {tier})",
                  fontweight="bold")
    ax1.legend(handles=handles, loc="upper right", fontsize=7)

    sized = [e for e in rows if e.size_b is not None]
    sizes = np.array([e.size_b for e in sized], dtype=float)
    for family, color in colors.items():
        fam = sorted((e for e in sized if e.family == family), key=lambda e: e.size_b)
        if not fam:
            continue
        fs = np.array([e.size_b for e in fam])
        fsi = np.array([e.si for e in fam])
        ax2.errorbar(fs, fsi, yerr=_asym_err(fsi, [e.low for e in fam], [e.high for e in fam]),
                     fmt="none", ecolor=color, capsize=4, alpha=0.7)
        measured = [e for e in fam if e.source == "measured"]
        if len(measured) >= 2:
            ax2.plot([e.size_b for e in measured], [e.si for e in measured], "-", color=color,
                     lw=2, alpha=0.8)
        for e in fam:
            ax2.scatter([e.size_b], [e.si], s=120, marker="s" if e.source == "measured" else "D",
                        c=color, edgecolors="black", linewidths=1.5, zorder=5,
                        alpha=0.35 if faded and not e.counted else 1.0)
    for i, e in enumerate(sized):
        ax2.annotate(f"{e.name} [{e.family}]", (e.size_b, e.si),
                     xytext=(8, 8 if i % 2 == 0 else -14), textcoords="offset points", fontsize=7)
    log_x = _size_axis(ax2, sizes)
    slope = verdict.across_family.get("linear_slope_si_per_b")
    if slope is not None and math.isfinite(slope):
        pts = [e for e in sized if e.source == "measured"]
        ps = np.array([e.size_b for e in pts])
        intercept = float(np.mean([e.si for e in pts]) - slope * ps.mean())
        xs = (np.geomspace if log_x else np.linspace)(ps.min(), ps.max(), 200)
        ax2.plot(xs, slope * xs + intercept, "--", color=ACROSS_COLOR, alpha=0.7)
    ax2.axhline(verdict.target, color="green", ls="--", lw=2, alpha=0.7)
    ax2.axhspan(band_lo, band_hi, color="green", alpha=0.1)
    ax2.set_ylim(0, top)
    ax2.set_xlabel("Model size (B parameters" + (", log scale)" if log_x else ")"))
    ax2.set_ylabel("Specialization Index SI_seed")
    ax2.set_title("Size vs SI: lines join the sizes of one family", fontweight="bold")
    legend2 = _family_handles(colors, inferred, verdict.premise.decided_on) + [
        Line2D([], [], color="black", lw=2, label="within-family step (measured)"),
        Line2D([], [], color=ACROSS_COLOR, ls="--",
               label=f"linear trend over all measured models ({ACROSS_NOTE}"
                     + (f", slope {slope:.4f} per B)" if slope is not None
                        and math.isfinite(slope) else ")")),
        Line2D([], [], color="black", marker="s", ls="none", label="measured"),
        Line2D([], [], color="black", marker="D", ls="none", label="reference"),
        Patch(facecolor="green", alpha=0.2, label="target band")]
    ax2.legend(handles=legend2, loc="best", fontsize=7)
    head = f"B11: SI size ladder - {verdict.verdict}" + (
        " (premise not met: no tier)" if verdict.verdict == NOT_APPLICABLE else "")
    fig.suptitle(_wrap(title or f"{head}\n{verdict.reason}"), fontweight="bold")
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# H25
# --------------------------------------------------------------------------------------------


def _gain_rows(decision: H25Decision) -> list[H25ModelEntry]:
    return _family_order(decision.across_family.models, lambda e: e.family, lambda e: e.size_b)


def plot_gain(report: H25Report, path: str | Path, title: str | None = None) -> Path:
    """Three panels: rho vs G with 95% intervals (colour = family, marker = metric, lines join
    the sizes of one family); G per model grouped by family; rho-G regressions within each
    decided family and across all models (descriptive)."""
    metrics = (("G_seed", report.g_seed), ("G_last", report.g_last))
    rows = _gain_rows(report.g_seed)
    colors = family_colors([e.family for e in rows])
    inferred = set(report.premise.checked.get("inferred_families", []))
    decided = report.premise.decided_on
    fig, axes = plt.subplots(1, 3, figsize=(19, 6.5))
    ax1, ax2, ax3 = axes
    offsets = {"G_seed": -0.2, "G_last": 0.2}
    for key, decision in metrics:
        entries = _gain_rows(decision)
        if not entries:
            continue
        marker = METRIC_MARKERS[key]
        for family, color in colors.items():
            fam = sorted((e for e in entries if e.family == family),
                         key=lambda e: (e.size_b is None, e.size_b or 0.0))
            if not fam:
                continue
            g = np.array([e.gain.point for e in fam])
            err = _asym_err(g, [e.gain.low for e in fam], [e.gain.high for e in fam])
            rho = np.array([e.rho for e in fam])
            ax1.errorbar(rho, g, yerr=err, fmt=marker, color=color, ms=8, capsize=4,
                         mfc=color if key == "G_seed" else "white", mew=2)
            if len(fam) >= 2:
                ax1.plot(rho, g, "-" if key == "G_seed" else "--", color=color, alpha=0.7)
            ax3.scatter(rho, g, marker=marker, s=70, zorder=5, edgecolors=color,
                        facecolors=color if key == "G_seed" else "white", linewidths=2)
        x = np.arange(len(entries))
        g = np.array([e.gain.point for e in entries])
        err = _asym_err(g, [e.gain.low for e in entries], [e.gain.high for e in entries])
        bars = ax2.bar(x + offsets[key], g, width=0.4, yerr=err, capsize=3,
                       color=[colors[e.family] for e in entries], edgecolor="black",
                       alpha=0.85 if key == "G_seed" else 0.45)
        for bar in bars:
            bar.set_hatch("" if key == "G_seed" else "//")
        ax2.set_xticks(x, [f"{e.model}\n{e.family}\nrho={e.rho:.3f}" for e in entries],
                       fontsize=7, rotation=30)
        _color_ticklabels(ax2, [colors[e.family] for e in entries])
        _regression(ax3, decision.across_family.models, ACROSS_COLOR, ":" if key == "G_last"
                    else "--", f"{key} all models ({ACROSS_NOTE}): r = "
                    f"{_fmt(decision.across_family.pearson_r)}")
        for family, v in decision.by_family.items():
            _regression(ax3, v.models, colors[family], "-" if key == "G_seed" else "-.",
                        f"{key} within {family} (decided): {v.verdict}, r = "
                        f"{_fmt(v.pearson_r)}")
    for e in rows:
        ax1.annotate(e.model, (e.rho, e.gain.point), xytext=(5, 5), textcoords="offset points",
                     fontsize=7)
    for ax in axes:
        ax.axhline(1.0, color="black", ls="--", alpha=0.5)
        ax.grid(True, alpha=0.3)
        ax.set_ylabel("Residual stream gain G")
    threshold = report.g_seed.across_family.rho_threshold
    ax1.axvline(threshold, color="gray", ls=":", alpha=0.7)
    metric_handles = [
        Line2D([], [], color="black", marker="o", ls="-", label=METRIC_LABELS["G_seed"]
               + f" - {report.g_seed.verdict}"),
        Line2D([], [], color="black", marker="s", mfc="white", ls="--",
               label=METRIC_LABELS["G_last"] + f" - {report.g_last.verdict}"),
        Line2D([], [], color="gray", ls=":", label=f"rho = {threshold:g}")]
    ax1.set_xlabel("rho = n_heads / d_head")
    ax1.set_title("rho vs G (95% bootstrap CI; G < 1 dampens); lines join one family's sizes")
    ax1.legend(handles=_family_handles(colors, inferred, decided) + metric_handles, fontsize=7,
               loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    ax2.set_xlabel("model (grouped by family, by size)")
    ax2.set_title("G by model: solid G_seed, hatched G_last")
    ax3.set_xlabel("rho = n_heads / d_head")
    ax3.set_title("Correlation: rho -> dampening? (decided within a family only)")
    if ax3.get_legend_handles_labels()[0]:
        ax3.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.suptitle(_wrap(title or f"H25 residual gain: G_seed {report.g_seed.verdict}, "
                                f"G_last {report.g_last.verdict}"), fontweight="bold")
    fig.tight_layout()
    return _save(fig, path)


def _fmt(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _regression(ax, entries: Sequence[H25ModelEntry], color: str, ls: str, label: str) -> None:
    rho = np.array([e.rho for e in entries])
    g = np.array([e.gain.point for e in entries])
    if len(entries) < 2 or np.ptp(rho) == 0:
        return
    # scipy.stats costs about 1 s at import: only the stages that call this pay it
    from scipy import stats

    fit = stats.linregress(rho, g)
    xs = np.linspace(rho.min() * 0.9, rho.max() * 1.1, 100)
    ax.plot(xs, fit.slope * xs + fit.intercept, ls, color=color, label=label)


# --------------------------------------------------------------------------------------------
# Uniformity asymmetry
# --------------------------------------------------------------------------------------------


def plot_uniformity(
    studies: Sequence[UniformityStudy],
    path: str | Path,
    report: PeakStabilityReport | None = None,
    title: str | None = None,
) -> Path:
    """Three panels: r(UA, preference) by absolute layer and by % depth (colour = family, line
    style = size within the family), and the peak depth against model size with the sizes of
    one family joined."""
    rows = {m["model"]: m for m in (report.across_family.models if report else ())}
    family = {s.model: rows.get(s.model, {}).get("family", "") or "unknown" for s in studies}
    size = {s.model: rows.get(s.model, {}).get("size_b") for s in studies}
    ordered = _family_order(list(studies), lambda s: family[s.model], lambda s: size[s.model])
    colors = family_colors([family[s.model] for s in ordered])
    rank: dict[str, int] = {}
    seen: dict[str, int] = {}
    for s in ordered:
        rank[s.model] = seen.get(family[s.model], 0)
        seen[family[s.model]] = rank[s.model] + 1
    inferred = set(report.premise.checked.get("inferred_families", [])) if report else set()
    decided = report.premise.decided_on if report else ()

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(21, 6.5),
                                        gridspec_kw={"width_ratios": [1, 1, 0.8]})
    for s in ordered:
        color = colors[family[s.model]]
        marker = MODEL_MARKERS[rank[s.model] % len(MODEL_MARKERS)]
        ls = MODEL_LINESTYLES[rank[s.model] % len(MODEL_LINESTYLES)]
        sz = size[s.model]
        label = (f"{s.model} [{family[s.model]}"
                 + (f", {sz:g}B" if sz is not None else "") + f", {s.n_layers} layers]")
        for ax, xs in ((ax1, np.asarray(s.layers)), (ax2, np.asarray(s.depth_pct))):
            ax.plot(xs, s.r, marker=marker, ls=ls, color=color, lw=2, ms=7, alpha=0.85,
                    label=label)
            ax.fill_between(xs, s.r_low, s.r_high, color=color, alpha=0.12)
        ax2.plot([s.peak.max_pos_pct], [s.peak.max_pos_r], "*", color=color, ms=16, mec="black")
    for ax in (ax1, ax2):
        ax.axhline(0, color="gray", ls="--", alpha=0.5)
        ax.set_ylabel("r(UA, output preference)")
        ax.set_ylim(-1.05, 1.05)
        ax.grid(True, alpha=0.3)
        # below the axes: inside, it would hide a curve or an interval band
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(len(studies), 2),
                  fontsize=7)
    ax1.set_xlabel("hidden-state index (0 = embeddings)")
    ax1.set_title("By layer (absolute); bands: 95% bootstrap CI over pairs", fontweight="bold")
    ax2.set_xlabel("layer position (% of depth)")
    ax2.set_title("By normalised depth; stars: peak (max r)", fontweight="bold")

    sized = [s for s in ordered if size[s.model] is not None]
    for fam, color in colors.items():
        members = sorted((s for s in sized if family[s.model] == fam), key=lambda s: size[s.model])
        if not members:
            continue
        xs = np.array([size[s.model] for s in members])
        ys = np.array([s.peak.max_pos_pct for s in members])
        err = _asym_err(ys, [s.peak_pct_low for s in members], [s.peak_pct_high for s in members])
        ax3.errorbar(xs, ys, yerr=err, fmt="o", color=color, ms=9, capsize=4, mec="black")
        if len(members) >= 2:
            ax3.plot(xs, ys, "-", color=color, lw=2)
        for s in members:
            ax3.annotate(s.model, (size[s.model], s.peak.max_pos_pct), xytext=(6, 6),
                         textcoords="offset points", fontsize=7)
    if report is not None and math.isfinite(report.across_family.mean_peak_pct):
        ax3.axhline(report.across_family.mean_peak_pct, color=ACROSS_COLOR, ls="--", alpha=0.6)
    log_x = _size_axis(ax3, np.array([size[s.model] for s in sized], dtype=float))
    ax3.set_ylim(-5, 105)
    ax3.set_xlabel("Model size (B parameters" + (", log scale)" if log_x else ")"))
    ax3.set_ylabel("peak depth (% of depth, 95% bootstrap CI)")
    ax3.set_title("Peak depth by size: lines join one family's sizes", fontweight="bold")
    ax3.grid(True, alpha=0.3)
    handles = _family_handles(colors, inferred, decided) + [
        Line2D([], [], color="black", lw=2, label="within-family step")]
    if report is not None:
        handles.append(Line2D([], [], color=ACROSS_COLOR, ls="--",
                              label=f"mean over all models ({ACROSS_NOTE}; std "
                                    f"{report.across_family.std_peak_pct:.1f} %)"))
    ax3.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=7)
    if title is None and report is not None:
        title = f"Uniformity asymmetry by depth - peak {report.verdict}: {report.reason}"
    fig.suptitle(_wrap(title or "Uniformity asymmetry by depth"), fontweight="bold")
    fig.tight_layout()
    return _save(fig, path)
