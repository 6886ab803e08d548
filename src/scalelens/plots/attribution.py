"""Figures of the attribution stage: how good each graph of a model is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scalelens.plots._common import plt, save_figure


def plot_graph_quality(frame: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Per graph: faithfulness against its random baseline (left; above the diagonal = the graph
    keeps more of the target logit than as many random units), and graph size (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    tasks = sorted(frame["task"].unique())
    colours = dict(zip(tasks, plt.cm.tab10.colors))
    for task in tasks:
        g = frame[frame["task"] == task]
        left.scatter(g["faithfulness_random"], g["faithfulness"], s=36, color=colours[task],
                     label=task, edgecolor="black", linewidth=0.4)
        right.scatter(g["n_units_kept"], g["n_edges"], s=36, color=colours[task],
                      edgecolor="black", linewidth=0.4)
    values = np.concatenate([frame["faithfulness"].to_numpy(float),
                             frame["faithfulness_random"].to_numpy(float)])
    values = values[np.isfinite(values)]
    lo, hi = (min(values.min(), 0.0), max(values.max(), 1.0)) if values.size else (0.0, 1.0)
    left.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8, linestyle="--")
    left.set_xlabel("faithfulness of a random unit set of the same size")
    left.set_ylabel("faithfulness of the graph")
    left.set_title("target logit kept, (z_graph - z_none) / (z_full - z_none)", fontsize=9)
    left.legend(fontsize=8, title="task", title_fontsize=8)
    right.set_xlabel("MLP units kept")
    right.set_ylabel("edges kept")
    right.set_title(f"graph size; completeness error <= "
                    f"{frame['completeness_max_rel_error'].max():.1e}, influence kept "
                    f"{frame['influence_kept'].mean():.2f}", fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)
