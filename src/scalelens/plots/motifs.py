"""Figures of the motif study across scales (each takes a MotifScaleStudy, makes one figure).

Every figure shows every null model (one panel each, or one line style each), each model's
family (colour per family, the family in the labels) and the graphs' quality beside the
Z-scores (faithfulness vs its random baseline and influence kept, in the model labels or a
panel of their own). Within-family steps are joined by lines; across families nothing is
joined and fits are labelled descriptive. A figure of a study that read any synthetic set has
SYNTHETIC at the start of its title, a watermark, and the title in the PNG's metadata.

``build_figures(study)`` returns {name: Figure} (for tests and notebooks); ``plot_all`` saves
them; FIGURE_NAMES is the list dvc.yaml declares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
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
from scalelens.motifs.scale import format_params  # noqa: E402
from scalelens.motifs.study import MotifScaleStudy  # noqa: E402
from scalelens.plots._common import family_colors  # noqa: E402

LINE_COLORS = plt.get_cmap("tab10").colors
MODEL_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
NULL_STYLES = {"config": {"ls": "-", "marker": "o"}, "layer": {"ls": "--", "marker": "s"},
               "er": {"ls": ":", "marker": "^"}}
PER_TASK_MOTIFS: tuple[str, ...] = (MOTIF_FFL, MOTIF_CHAIN, MOTIF_FAN_IN, MOTIF_FAN_OUT)
SYNTHETIC_WORD = "SYNTHETIC"
ACROSS_NOTE = "across families: descriptive only (size confounded with family)"

#: File names written by plot_all, in order.
FIGURE_NAMES: tuple[str, ...] = (
    "scale_heatmap",
    "ffl_across_scales",
    "ffl_vs_graph_size",
    "key_motif_scaling",
    "per_task_scaling",
    "sp_overlay",
    "cosine_matrix",
    "dendrogram",
    "baseline_comparison",
)


# -- shared pieces ----------------------------------------------------------------------------

def figure_title(study: MotifScaleStudy, text: str) -> str:
    """The figure's title: SYNTHETIC and the synthetic sets first when the study read any."""
    if not study.synthetic:
        return text
    return (f"{SYNTHETIC_WORD} DATA - not measured on any model (synthetic sets: "
            f"{', '.join(study.synthetic_sets)})\n{text}")


def _finish(fig: plt.Figure, study: MotifScaleStudy, text: str) -> plt.Figure:
    title = figure_title(study, text)
    fig.suptitle(title, fontsize=11, color="#b00000" if study.synthetic else "black", y=1.0,
                 va="bottom")
    if study.synthetic:
        fig.text(0.5, 0.5, SYNTHETIC_WORD, fontsize=70, color="#d62728", alpha=0.13,
                 rotation=25, ha="center", va="center", zorder=0)
    fig._scalelens_title = title  # noqa: SLF001 - read back by save_figure below
    return fig


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Save (title in the PNG metadata) and close."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = getattr(fig, "_scalelens_title", "")
    fig.savefig(path, dpi=130, bbox_inches="tight", metadata={"Title": title})
    plt.close(fig)
    return path


def _colors(study: MotifScaleStudy) -> dict[str, str]:
    """Model -> its family's colour."""
    fam = family_colors([study.sets[m].family for m in study.models])
    return {m: fam[study.sets[m].family] for m in study.models}


def _shades(study: MotifScaleStudy) -> dict[str, tuple]:
    """Model -> its family's colour, lighter for each larger model of the same family (so the
    models of one family stay apart in bars and overlays)."""
    from matplotlib.colors import to_rgb

    out, seen = {}, {}
    for m, color in _colors(study).items():
        rank = seen[color] = seen.get(color, -1) + 1
        mix = min(0.55, 0.28 * rank)
        out[m] = tuple(c + (1 - c) * mix for c in to_rgb(color))
    return out


def _quality_text(study: MotifScaleStudy, name: str) -> str:
    q = study.sets[name].quality
    if q.get("faithfulness") is None:
        return "graph quality: n/a"
    parts = [f"faith {q['faithfulness']:.2f} vs rnd {q['faithfulness_random']:.2f}"
             if q.get("faithfulness_random") is not None else f"faith {q['faithfulness']:.2f}"]
    if q.get("influence_kept") is not None:
        parts.append(f"infl {q['influence_kept']:.2f}")
    return ", ".join(parts)


def model_label(study: MotifScaleStudy, name: str, quality: bool = True) -> str:
    """'<set>\\n<family>, <size>[\\n<quality>]'."""
    f = study.sets[name]
    size = format_params(f.n_params) if f.n_params else "size n/a"
    text = f"{name}\n{f.family}, {size}" + (" SYNTHETIC" if f.synthetic else "")
    return text + (f"\n{_quality_text(study, name)}" if quality else "")


def _null_title(study: MotifScaleStudy, null: str) -> str:
    read = study.by_null[null]
    return (f"{null} null - FFL backbone {read.analysis.ffl.verdict}; within-family: "
            f"{read.questions['ffl'].verdict} (FFL), {read.questions['profile'].verdict} "
            "(profile)")


def _panels(n: int, width: float, height: float, **kw):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, **kw)
    return fig, list(axes[0])


def _log_sizes(study: MotifScaleStudy) -> np.ndarray:
    return np.log10([study.sets[m].n_params for m in study.models])


def _size_axis(ax: plt.Axes, study: MotifScaleStudy) -> None:
    x = _log_sizes(study)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{format_params(study.sets[m].n_params)}\n{study.sets[m].family}"
                        for m in study.models], fontsize=7.5)
    colors = _colors(study)
    for lab, m in zip(ax.get_xticklabels(), study.models):
        lab.set_color(colors[m])
    pad = 0.15 * max(float(np.ptp(x)) if x.size else 0.0, 0.5)
    ax.set_xlim(x.min() - pad, x.max() + pad)
    ax.set_xlabel("model size (log10 parameters) and family")


def _family_steps(study: MotifScaleStudy) -> list[tuple[str, list[int]]]:
    """(family, model indices by size) for families with >= 2 models."""
    out = []
    for family in dict.fromkeys(study.sets[m].family for m in study.models):
        idx = [i for i, m in enumerate(study.models) if study.sets[m].family == family]
        if len(idx) >= 2:
            out.append((family, idx))
    return out


def _symmetric_norm(values: np.ndarray, floor: float = 4.0) -> TwoSlopeNorm:
    """Diverging colours around 0 reaching at least +-floor (2 x the enrichment threshold),
    so |Z| below the threshold stays pale whatever the panel's range."""
    finite = values[np.isfinite(values)]
    vmax = max(float(np.abs(finite).max()) if finite.size else 0.0, floor)
    return TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)


def _placeholder(study: MotifScaleStudy, text: str, message: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 2.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10, wrap=True)
    return _finish(fig, study, text)


# -- figures ----------------------------------------------------------------------------------

def scale_heatmap(study: MotifScaleStudy, labels: Sequence[str] = CONNECTED_LABELS):
    """Per null: models (rows, by size) x connected classes, mean Z annotated."""
    idx = [label_index(lab) for lab in labels]
    k = len(study.models)
    fig, axes = _panels(len(study.null_models), 1.2 + 0.62 * len(labels), 1.9 + 0.85 * k)
    for ax, null in zip(axes, study.null_models):
        values = study.by_null[null].analysis.mean_z[:, idx]
        norm = _symmetric_norm(values, 2 * study.by_null[null].analysis.ffl.z_threshold)
        im = ax.imshow(values, cmap="RdBu_r", norm=norm, aspect="auto")
        vmax = norm.vmax
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(v) > 0.6 * vmax else "black")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k))
        ax.set_yticklabels([model_label(study, m) for m in study.models], fontsize=7)
        for lab, m in zip(ax.get_yticklabels(), study.models):
            lab.set_color(_colors(study)[m])
        ax.set_title(_null_title(study, null), fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02).set_label(f"mean Z ({null} null)")
    fig.tight_layout()
    return _finish(fig, study, "Mean Z per triad class and model, under each null model "
                   "(rows by size; family and graph quality in the row labels)")


def ffl_across_scales(study: MotifScaleStudy):
    """FFL mean Z +- sd per model under each null (line style per null, colour per family,
    within-family steps joined); beside it, the graphs' quality per model."""
    fig, (ax, axq) = plt.subplots(1, 2, figsize=(14, 6.4),
                                  gridspec_kw={"width_ratios": [1.3, 1]})
    colors = _colors(study)
    x = _log_sizes(study)
    k = label_index(MOTIF_FFL)
    for n, null in enumerate(study.null_models):
        a = study.by_null[null].analysis
        style = NULL_STYLES.get(null, {"ls": "-", "marker": "o"})
        dx = 0.02 * (n - (len(study.null_models) - 1) / 2)
        for i, m in enumerate(study.models):
            ax.errorbar(x[i] + dx, a.mean_z[i, k], yerr=a.std_z[i, k], fmt=style["marker"],
                        color=colors[m], mec="black", ms=8, capsize=4, zorder=3)
        for _, idx in _family_steps(study):
            ax.plot(x[idx] + dx, a.mean_z[idx, k], ls=style["ls"], color=colors[
                study.models[idx[0]]], lw=2, zorder=2)
    ax.axhline(study.by_null[study.null_models[0]].analysis.ffl.z_threshold, color="grey",
               ls=":", lw=1)
    ax.axhline(0, color="black", lw=0.6)
    _size_axis(ax, study)
    ax.set_ylabel("mean Z of 030T (+- 1 sd over graphs)")
    handles = [Line2D([], [], color="black", ls=NULL_STYLES.get(n, {}).get("ls", "-"),
                      marker=NULL_STYLES.get(n, {}).get("marker", "o"),
                      label=f"{n} null: FFL {study.by_null[n].analysis.ffl.verdict}")
               for n in study.null_models]
    fam = family_colors([study.sets[m].family for m in study.models])
    handles += [Line2D([], [], color=c, lw=6, label=f"family {f}") for f, c in fam.items()]
    handles.append(Line2D([], [], color="none", label="lines join sizes of one family; "
                          + ACROSS_NOTE))
    # legends under the panels, where no point, error bar or bar can sit
    ax.legend(handles=handles, fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncol=2, frameon=False)
    ax.set_title("FFL (030T) enrichment per model", fontsize=10)
    names = ("faithfulness", "faithfulness_random", "influence_kept")
    shown = ("faithfulness", "faithfulness (random units)", "influence kept")
    pos = np.arange(len(study.models))
    for j, (name, label) in enumerate(zip(names, shown)):
        vals = [study.sets[m].quality.get(name) for m in study.models]
        heights = [np.nan if v is None else v for v in vals]
        axq.bar(pos + (j - 1) * 0.26, heights, 0.26, label=label,
                       color=("#333333", "#aaaaaa", "#6fa8dc")[j], edgecolor="black", lw=0.4)
    if all(study.sets[m].quality.get("faithfulness") is None for m in study.models):
        axq.set_ylim(0, 1)
        axq.text(0.5, 0.5, "no quality scores: these graphs carry no\nmetadata.scalelens.quality "
                 "(imported or synthetic sets)", ha="center", va="center",
                 transform=axq.transAxes, fontsize=9)
    axq.axhline(0, color="black", lw=0.6)
    axq.set_xticks(pos)
    axq.set_xticklabels([model_label(study, m, quality=False) for m in study.models],
                        fontsize=7.5)
    for lab, m in zip(axq.get_xticklabels(), study.models):
        lab.set_color(colors[m])
    axq.set_ylabel("mean over the model's graphs")
    axq.set_title("graph quality (metadata.scalelens.quality)", fontsize=10)
    axq.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3,
               frameon=False)
    fig.tight_layout()
    verdicts = "; ".join(f"{n}: {study.by_null[n].questions['ffl'].verdict}"
                         for n in study.null_models)
    caveats = dict.fromkeys(c for n in study.null_models
                            for c in study.by_null[n].questions["ffl"].caveats)
    lines = [f"FFL (030T) across scales under each null; within-family read - {verdicts}"]
    lines += [f"caveat: {c}" for c in caveats]
    return _finish(fig, study, "\n".join(lines))


def ffl_vs_graph_size(study: MotifScaleStudy):
    """Per null: Z(030T) of every graph against its edge count (Z grows with graph size, and
    graph size differs per model: read the per-model means with this in view)."""
    fig, axes = _panels(len(study.null_models), 6.5, 4.8, sharey=False)
    colors = _shades(study)
    k = label_index(MOTIF_FFL)
    for ax, null in zip(axes, study.null_models):
        read = study.by_null[null]
        for i, m in enumerate(study.models):
            edges = read.graph_edges[m]
            z = read.analysis.profiles[m].z[:, k]
            ax.scatter(np.maximum(edges, 1), z, color=colors[m], edgecolor="black", lw=0.4,
                       marker=MODEL_MARKERS[i % len(MODEL_MARKERS)], s=36,
                       label=f"{m} ({study.sets[m].family}): {_quality_text(study, m)}")
        ax.set_xscale("log")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xlabel("edges of the graph (after the census drops error nodes)")
        ax.set_ylabel(f"Z(030T), {null} null")
        ax.set_title(f"{null} null: one point per graph", fontsize=9)
        ax.legend(fontsize=6.5)
    fig.tight_layout()
    return _finish(fig, study, "FFL Z-score against graph size, per graph and null model")


def key_motif_scaling(study: MotifScaleStudy, labels: Sequence[str] = KEY_MOTIFS):
    """Per null: mean Z (+- sd) of the key motifs against size; within-family steps solid,
    the across-family linear fit dashed (descriptive)."""
    fig, axes = _panels(len(study.null_models), 7.5, 5.0, sharey=True)
    x = _log_sizes(study)
    steps = _family_steps(study)
    for ax, null in zip(axes, study.null_models):
        a = study.by_null[null].analysis
        trends = {t.label: t for t in a.trends}
        xs = np.linspace(x.min(), x.max(), 20)
        for k, label in enumerate(labels):
            j = label_index(label)
            color = LINE_COLORS[k % len(LINE_COLORS)]
            t = trends[label]
            ax.errorbar(x + 0.012 * (k - len(labels) / 2), a.mean_z[:, j], yerr=a.std_z[:, j],
                        fmt=MODEL_MARKERS[k % len(MODEL_MARKERS)], color=color, capsize=3,
                        label=f"{label} {TRIAD_DESCRIPTIONS[label]}: across-family slope "
                              f"{t.slope:+.2f}/dec")
            if len(study.models) >= 2:
                ax.plot(xs, t.intercept + t.slope * xs, color=color, lw=0.9, ls=":", alpha=0.7)
            for _, idx in steps:
                ax.plot(x[idx], a.mean_z[idx, j], color=color, lw=1.8)
        ax.axhline(0, color="black", lw=0.6)
        _size_axis(ax, study)
        ax.set_ylabel("mean Z (+- 1 sd over graphs)")
        ax.set_title(_null_title(study, null), fontsize=8)
        ax.legend(fontsize=6.5, loc="best",
                  title="solid: within a family; dotted: " + ACROSS_NOTE, title_fontsize=6.5)
    fig.tight_layout()
    return _finish(fig, study, "Key motif Z-scores across model scales, under each null model")


def per_task_scaling(study: MotifScaleStudy, labels: Sequence[str] = PER_TASK_MOTIFS):
    """Tasks (rows) x nulls (columns): mean Z (+- sd) of the given motifs against size."""
    tasks = study.by_null[study.null_models[0]].analysis.tasks
    n_rows, n_cols = max(len(tasks), 1), len(study.null_models)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(6.2 * n_cols, 3.4 * n_rows),
                             squeeze=False)
    x = _log_sizes(study)
    for c, null in enumerate(study.null_models):
        a = study.by_null[null].analysis
        for r, task in enumerate(tasks):
            ax = axes[r, c]
            for k, label in enumerate(labels):
                j = label_index(label)
                ax.errorbar(x, a.task_mean_z[:, r, j], yerr=a.task_std_z[:, r, j],
                            fmt=MODEL_MARKERS[k], color=LINE_COLORS[k], capsize=3,
                            label=f"{label} {TRIAD_DESCRIPTIONS[label]}")
                for _, idx in _family_steps(study):
                    ax.plot(x[idx], a.task_mean_z[idx, r, j], color=LINE_COLORS[k], lw=1.5)
            ax.axhline(0, color="black", lw=0.6)
            n_graphs = ", ".join(str(n) for n in a.task_n_graphs[:, r])
            ax.set_title(f"{task}, {null} null (graphs per model: {n_graphs})", fontsize=8)
            _size_axis(ax, study)
            ax.set_ylabel("mean Z")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(labels), fontsize=8,
               bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _finish(fig, study, "Per-task motif scaling under each null model (lines join "
                   "sizes of one family)")


def sp_overlay(study: MotifScaleStudy, labels: Sequence[str] = CONNECTED_LABELS):
    """Per null: every model's mean significance profile, coloured by family."""
    idx = [label_index(lab) for lab in labels]
    fig, axes = _panels(len(study.null_models), 8.0, 4.6, sharey=True)
    colors = _shades(study)
    xs = np.arange(len(labels))
    for ax, null in zip(axes, study.null_models):
        a = study.by_null[null].analysis
        for i, m in enumerate(study.models):
            ax.plot(xs, a.mean_sp[i, idx], "-" + MODEL_MARKERS[i % len(MODEL_MARKERS)],
                    color=colors[m], lw=1.8, label=model_label(study, m).replace("\n", " | "))
            ax.fill_between(xs, a.mean_sp[i, idx] - a.std_sp[i, idx],
                            a.mean_sp[i, idx] + a.std_sp[i, idx], color=colors[m], alpha=0.1)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=45, ha="right")
        ax.set_ylabel("mean SP (band: +- 1 sd)")
        ax.set_title(_null_title(study, null), fontsize=8)
        ax.legend(fontsize=6.5)
    fig.tight_layout()
    return _finish(fig, study, "Significance profiles across model scales, under each null")


def cosine_matrix(study: MotifScaleStudy):
    """Per null: cosine similarity of the models' mean SP vectors, annotated."""
    k = len(study.models)
    fig, axes = _panels(len(study.null_models), 2.8 + 1.2 * k, 2.4 + 1.0 * k)
    names = [f"{m}\n({study.sets[m].family})" for m in study.models]
    for ax, null in zip(axes, study.null_models):
        sim = study.by_null[null].analysis.clustering.similarity
        im = ax.imshow(sim, cmap="RdBu_r", vmin=-1, vmax=1)
        for (i, j), v in np.ndenumerate(sim):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(v) > 0.7 else "black")
        ax.set_xticks(range(k))
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=7.5)
        ax.set_yticks(range(k))
        ax.set_yticklabels(names, fontsize=7.5)
        for labs in (ax.get_xticklabels(), ax.get_yticklabels()):
            for lab, m in zip(labs, study.models):
                lab.set_color(_colors(study)[m])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label("cosine similarity")
        ax.set_title(f"{null} null", fontsize=9)
    fig.tight_layout()
    return _finish(fig, study, "Model similarity (mean SP vectors), under each null model")


def dendrogram_figure(study: MotifScaleStudy):
    """Per null: average-linkage dendrogram on cosine distance of mean SP."""
    fig, axes = _panels(len(study.null_models), 6.5, 4.2)
    colors = _colors(study)
    for ax, null in zip(axes, study.null_models):
        cl = study.by_null[null].analysis.clustering
        if len(cl.models) < 2:
            ax.text(0.5, 0.5, "need >= 2 models to cluster", ha="center", va="center")
            ax.set_axis_off()
        else:
            dendrogram(cl.linkage, labels=[f"{m} ({study.sets[m].family})" for m in cl.models],
                       ax=ax, color_threshold=0, above_threshold_color="#34495e")
            for lab in ax.get_xticklabels():
                lab.set_color(colors[lab.get_text().rsplit(" (", 1)[0]])
            plt.setp(ax.get_xticklabels(), rotation=30, ha="right", fontsize=8)
            ax.set_ylabel("cosine distance (1 - cos)")
            top = float(cl.linkage[:, 2].max())
            ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)
        ax.set_title(f"{null} null", fontsize=9)
    fig.tight_layout()
    return _finish(fig, study, "Model clustering (average linkage on mean SP), under each null")


def baseline_comparison(study: MotifScaleStudy):
    """Per null: the baseline's mean Z (+- sd) beside each model's, per connected class."""
    text = "Baseline vs models: mean Z per class, under each null model"
    if study.baseline is None:
        return _placeholder(study, text, "no baseline: motifs.baseline is empty")
    fig, axes = plt.subplots(len(study.null_models), 1, squeeze=False,
                             figsize=(max(10, 0.95 * len(CONNECTED_LABELS)),
                                      4.2 * len(study.null_models)))
    colors = _shades(study)
    for ax, null in zip(axes[:, 0], study.null_models):
        comp = study.by_null[null].analysis.baseline
        names = [f"{comp.baseline_name} (baseline)",
                 *[model_label(study, m, quality=False).replace("\n", " ") for m in comp.models]]
        means = np.vstack([comp.baseline_mean_z, comp.model_mean_z])
        stds = np.vstack([comp.baseline_std_z, comp.model_std_z])
        shades = ["#7f7f7f", *[colors[m] for m in comp.models]]  # by family, lighter by size
        width = 0.8 / len(names)
        xs = np.arange(len(comp.labels))
        for i, (name, color) in enumerate(zip(names, shades)):
            ax.bar(xs + (i - (len(names) - 1) / 2) * width, means[i], width, yerr=stds[i],
                   color=color, capsize=2, label=name, hatch="//" if i == 0 else None,
                   edgecolor="black", lw=0.4, error_kw={"elinewidth": 0.7})
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(xs)
        ax.set_xticklabels(comp.labels, rotation=45, ha="right")
        ax.set_ylabel("mean Z (+- 1 sd)")
        ax.set_title(f"{null} null: baseline {comp.baseline_name} ({comp.baseline_n_graphs} "
                     "graphs)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _finish(fig, study, text)


_BUILDERS = {
    "scale_heatmap": scale_heatmap,
    "ffl_across_scales": ffl_across_scales,
    "ffl_vs_graph_size": ffl_vs_graph_size,
    "key_motif_scaling": key_motif_scaling,
    "per_task_scaling": per_task_scaling,
    "sp_overlay": sp_overlay,
    "cosine_matrix": cosine_matrix,
    "dendrogram": dendrogram_figure,
    "baseline_comparison": baseline_comparison,
}
assert tuple(_BUILDERS) == FIGURE_NAMES


def build_figures(study: MotifScaleStudy,
                  names: Sequence[str] = FIGURE_NAMES) -> dict[str, plt.Figure]:
    """{name: open Figure}; the caller saves or closes them."""
    return {name: _BUILDERS[name](study) for name in names}


def plot_all(study: MotifScaleStudy, out: str | Path | Mapping[str, Path]) -> dict[str, Path]:
    """Write every figure; `out` is a folder (files <name>.png) or {name: file}. name -> path."""
    where = ({n: Path(out[n]) for n in FIGURE_NAMES} if isinstance(out, Mapping)
             else {n: Path(out) / f"{n}.png" for n in FIGURE_NAMES})
    paths = {}
    for name in FIGURE_NAMES:  # one at a time: at most one figure open
        paths[name] = save_figure(_BUILDERS[name](study), where[name])
    return paths


def png_title(path: str | Path) -> str:
    """The title a figure of this module stored in its PNG metadata."""
    from PIL import Image

    with Image.open(path) as im:
        return str(im.info.get("Title", ""))
