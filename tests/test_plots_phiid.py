"""Figures 2a-2c render to PNG from small inputs and reject mismatched shapes."""

from __future__ import annotations

import numpy as np
import pytest

from scalelens.plots.phiid import plot_layer_profiles, plot_pairwise_heatmaps, plot_syn_red_grid
from scalelens.ranking import layer_profile, rank_heads


def _matrices(n_layers: int, n_heads: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = n_layers * n_heads
    values = rng.random((2, n, n))
    sts, rtr = values + values.transpose(0, 2, 1)
    np.fill_diagonal(sts, np.nan)
    np.fill_diagonal(rtr, np.nan)
    return sts, rtr


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_render_to_png(tmp_path):
    sts, rtr = _matrices(4, 3, seed=0)
    ranking = rank_heads(sts, rtr, 4, 3)
    other = rank_heads(*_matrices(6, 2, seed=1), 6, 2)
    paths = [
        plot_pairwise_heatmaps(sts, rtr, 4, 3, tmp_path / "fig2a.png", unit="nats"),
        plot_syn_red_grid(ranking, tmp_path / "fig2b.png"),
        plot_layer_profiles(
            {"small": layer_profile(ranking), "other": layer_profile(other)},
            tmp_path / "sub" / "fig2c.png",
        ),
    ]
    assert all(path.exists() and _is_png(path) for path in paths)


def test_heatmaps_reject_wrong_shape(tmp_path):
    sts, rtr = _matrices(2, 2, seed=2)
    with pytest.raises(ValueError, match="sts/rtr"):
        plot_pairwise_heatmaps(sts, rtr, 3, 2, tmp_path / "bad.png")


def test_profiles_need_a_model(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        plot_layer_profiles({}, tmp_path / "empty.png")


def test_syn_red_colour_limit_spans_the_largest_score():
    from scalelens.plots.phiid import _symmetric_limit

    assert _symmetric_limit(np.array([[0.12, -0.31], [np.nan, 0.0]])) == pytest.approx(0.35)
    assert _symmetric_limit(np.array([[0.35, -0.2]])) == pytest.approx(0.35)
    assert _symmetric_limit(np.array([[0.001]])) == pytest.approx(0.05)
    assert _symmetric_limit(np.array([[1.0, -1.0]])) == 1.0
    assert _symmetric_limit(np.full((2, 2), np.nan)) == 1.0
