"""Intervention figures: every plot writes a PNG; the circular layout groups heads by layer."""

import numpy as np

from scalelens.ablation import summarise_curves
from scalelens.graphs import graph_cores
from scalelens.plots.interventions import (
    circular_layer_layout,
    plot_ablation_curves,
    plot_ablation_overlay,
    plot_graph_cores,
    plot_perturbation_bars,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG and path.stat().st_size > 5000


def test_circular_layout_puts_layers_on_contiguous_arcs():
    pos = circular_layer_layout(3, 4)
    assert pos.shape == (12, 2)
    np.testing.assert_allclose(np.hypot(pos[:, 0], pos[:, 1]), 1.0)
    angle = np.unwrap(np.arctan2(pos[:, 1], pos[:, 0]))
    steps = -np.diff(angle)  # clockwise: angles decrease along the flat index
    assert np.all(steps > 0)
    within, between = steps[[0, 1, 2, 4, 5, 6, 8, 9, 10]], steps[[3, 7]]
    np.testing.assert_allclose(within, within[0])
    assert np.all(between > within[0])  # a gap between layers
    assert np.sum(steps) < 2 * np.pi


def test_every_figure_is_written(tmp_path):
    rng = np.random.default_rng(0)
    frac = np.linspace(0, 1, 6)
    syn, red = 3 * frac ** 0.5, 3 * frac ** 2
    rand = np.array([3 * frac * (1 + 0.05 * rng.standard_normal(6)) for _ in range(3)])
    s = summarise_curves(frac, np.vstack([syn, red, rand]),
                         ["syn_first", "red_first", "random", "random", "random"])
    assert _is_png(plot_ablation_curves(tmp_path / "a.png", frac, syn, red, rand, "m", s))
    assert _is_png(plot_ablation_overlay(tmp_path / "o.png", {"m1": (frac, syn, rand),
                                                                "m2": (frac, 2 * syn, rand)}))
    m = rng.random((24, 24))
    m = (m + m.T) / 2
    np.fill_diagonal(m, np.nan)
    cores = graph_cores(m, m ** 2, 0.1, 0)
    assert _is_png(plot_graph_cores(tmp_path / "g.png", cores, 6, 4, "m"))
    names = ["baseline", "synergistic", "redundant", "random", "random"]
    labels = names[:3] + ["random_seed0", "random_seed1"]
    assert _is_png(plot_perturbation_bars(tmp_path / "b.png", labels, names,
                                          [0.5, 0.1, 0.4, 0.3, 0.35], [1, 2, 1.1, 1.3, 1.2], "m"))
