"""Core graphs: edge selection and metrics against hand-computed values on hand-built matrices."""

import numpy as np
import pytest

from scalelens.graphs import core_graph, graph_cores, top_edges


def _sym(n, pairs):
    m = np.full((n, n), np.nan)
    for (i, j), w in pairs.items():
        m[i, j] = m[j, i] = w
    return m


def test_top_edges_keeps_the_strongest_finite_pairs():
    m = _sym(4, {(0, 1): 5.0, (0, 2): 1.0, (0, 3): 4.0, (1, 2): np.nan, (1, 3): 2.0,
                 (2, 3): 3.0})
    i, j, w = top_edges(m, 0.6)  # 5 finite pairs -> round(3.0) = 3 edges
    assert list(zip(i.tolist(), j.tolist(), w.tolist())) == [(0, 1, 5.0), (0, 3, 4.0),
                                                             (2, 3, 3.0)]
    i, j, w = top_edges(m, 0.01)  # at least one edge
    assert (i.tolist(), j.tolist()) == ([0], [1])
    with pytest.raises(ValueError, match="top_pct"):
        top_edges(m, 0.0)
    with pytest.raises(ValueError, match="square"):
        top_edges(np.zeros((2, 3)), 0.1)


def test_ties_break_by_pair_order_and_nonpositive_weights_are_dropped():
    m = _sym(3, {(0, 1): 1.0, (0, 2): 1.0, (1, 2): 1.0})
    i, j, _ = top_edges(m, 0.5)  # round(1.5) = 2 of three tied pairs: the first two
    assert list(zip(i.tolist(), j.tolist())) == [(0, 1), (0, 2)]
    neg = _sym(3, {(0, 1): 2.0, (0, 2): -1.0, (1, 2): 0.0})
    i, j, _ = top_edges(neg, 1.0)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 1)]


def test_two_cliques_metrics_by_hand():
    """Two K4 blocks of weight 1, joined by weak 0.1 pairs; keep the 12 strong of 28 pairs."""
    n = 8
    m = np.full((n, n), 0.1)
    for block in (range(4), range(4, 8)):
        for a in block:
            for b in block:
                m[a, b] = 1.0
    np.fill_diagonal(m, np.nan)
    g = core_graph(m, "synergy", top_pct=12 / 28, louvain_seed=0)
    assert g.n_edges == 12
    assert g.weight_threshold == 1.0
    # each node reaches its 3 block mates in one hop, the other 4 never: 8*3 / (8*7)
    assert g.global_efficiency == pytest.approx(3 / 7)
    # Q = sum_c [L_c / m - (d_c / 2m)^2] = 2 * (6/12 - (12/24)^2) = 0.5
    assert g.modularity == pytest.approx(0.5)
    assert g.n_communities == 2
    assert g.community.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert g.mean_degree == pytest.approx(3.0)
    assert g.density == pytest.approx(24 / 56)
    assert g.n_isolated == 0


def test_path_efficiency_and_isolated_nodes():
    """Path 0-1-2 plus isolated node 3: E = (1 + 1 + 1/2) * 2 / (4 * 3)."""
    m = _sym(4, {(0, 1): 3.0, (1, 2): 2.0, (0, 2): 0.5, (0, 3): 0.1, (1, 3): 0.2, (2, 3): 0.3})
    g = core_graph(m, "redundancy", top_pct=2 / 6)
    assert (g.edges_i.tolist(), g.edges_j.tolist()) == ([0, 1], [1, 2])
    assert g.global_efficiency == pytest.approx(2.5 * 2 / 12)
    assert g.n_isolated == 1
    assert g.community[3] == -1
    assert g.n_communities == 1
    assert g.mean_degree == pytest.approx(1.0)
    # one community holding both edges: Q = 1 - (4/4)^2 = 0
    assert g.modularity == pytest.approx(0.0)


def test_graph_cores_builds_both_and_is_seeded():
    rng = np.random.default_rng(0)
    a = rng.random((30, 30))
    sts, rtr = (a + a.T) / 2, rng.random((30, 30))
    rtr = (rtr + rtr.T) / 2
    c1 = graph_cores(sts, rtr, top_pct=0.1, louvain_seed=5)
    c2 = graph_cores(sts, rtr, top_pct=0.1, louvain_seed=5)
    assert c1.synergy.kind == "synergy" and c1.redundancy.kind == "redundancy"
    assert c1.synergy.n_edges == round(0.1 * 435)
    assert np.array_equal(c1.synergy.community, c2.synergy.community)
    assert c1.redundancy.modularity == c2.redundancy.modularity
    assert set(c1.synergy.metrics()) >= {"global_efficiency", "modularity", "n_communities",
                                         "mean_degree", "density"}
    with pytest.raises(ValueError, match="same shape"):
        graph_cores(sts, rtr[:5, :5])
