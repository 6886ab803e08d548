"""Null models preserve what they claim, are reproducible by seed and independent of n_jobs."""

from collections import Counter

import numpy as np
import pytest
from scipy import stats

from scalelens.motifs.analysis import analyze_graph
from scalelens.motifs.census import label_index
from scalelens.motifs.loader import graph_from_edges
from scalelens.motifs.nulls import (
    NullSpec,
    erdos_renyi_edges,
    layer_pair_classes,
    null_censuses,
    null_spec_for_graph,
    sample_null_edges,
    swap_edges,
    swap_targets,
)


def random_digraph(n, m, seed):
    return erdos_renyi_edges(n, m, np.random.default_rng(seed))


def layered_dag(seed, n_layers=5, per_layer=8, p=0.35):
    """Random DAG with edges only from lower to higher layers."""
    rng = np.random.default_rng(seed)
    layers = np.repeat(np.arange(n_layers), per_layer)
    n = layers.size
    adj = (rng.random((n, n)) < p) & (layers[:, None] < layers[None, :])
    src, dst = np.nonzero(adj)
    return graph_from_edges(n, src, dst, layers=layers)


def generators(k):
    return [np.random.default_rng(seed) for seed in range(k)]


def assert_simple(n, src, dst, m):
    assert src.size == dst.size == m
    assert np.all(src != dst)
    assert np.unique(src * n + dst).size == m


@pytest.mark.parametrize("dense_max_nodes", [10_000, 0])  # n*n tables, and the sorted fallback
def test_config_swaps_preserve_degrees_and_simplicity(dense_max_nodes):
    n, m = 60, 700
    src, dst = random_digraph(n, m, 0)
    s2, d2 = swap_edges(
        src, dst, n, 10 * m, np.random.default_rng(1), dense_max_nodes=dense_max_nodes
    )
    assert_simple(n, s2, d2, m)
    assert np.array_equal(np.bincount(s2, minlength=n), np.bincount(src, minlength=n))
    assert np.array_equal(np.bincount(d2, minlength=n), np.bincount(dst, minlength=n))
    assert np.mean(d2 != dst) > 0.8  # it actually rewires


def test_dense_and_sorted_tables_give_identical_chains():
    n, m = 40, 300
    src, dst = random_digraph(n, m, 3)
    a = swap_edges(src, dst, n, 5 * m, np.random.default_rng(7), dense_max_nodes=10_000)
    b = swap_edges(src, dst, n, 5 * m, np.random.default_rng(7), dense_max_nodes=0)
    assert np.array_equal(a[1], b[1])


@pytest.mark.parametrize("layered", [False, True])
def test_chains_in_a_batch_equal_chains_run_alone(layered):
    g = layered_dag(4)
    classes = layer_pair_classes(g.layers, g.src, g.dst) if layered else None
    batch = swap_targets(g.src, g.dst, g.n_nodes, 4 * g.n_edges, generators(5), classes)
    alone = [
        swap_edges(g.src, g.dst, g.n_nodes, 4 * g.n_edges, r, classes)[1] for r in generators(5)
    ]
    assert np.array_equal(batch, np.stack(alone))
    assert len({row.tobytes() for row in batch}) == 5


def test_layer_null_preserves_layer_pair_counts_and_degrees():
    g = layered_dag(0)
    spec = null_spec_for_graph(g, "layer", swaps_per_edge=10)
    s2, d2 = sample_null_edges(spec, np.random.default_rng(5))
    assert_simple(g.n_nodes, s2, d2, g.n_edges)
    before = Counter(map(tuple, g.edge_layer_pairs.tolist()))
    after = Counter(zip(g.layers[s2].tolist(), g.layers[d2].tolist()))
    assert before == after
    assert np.array_equal(
        np.bincount(s2, minlength=g.n_nodes), np.bincount(g.src, minlength=g.n_nodes)
    )
    assert np.array_equal(
        np.bincount(d2, minlength=g.n_nodes), np.bincount(g.dst, minlength=g.n_nodes)
    )
    assert np.mean(d2 != g.dst) > 0.5


def test_layer_pair_classes_ids():
    layers = np.array([-1, 0, 0, 1])
    ids = layer_pair_classes(layers, np.array([0, 0, 1, 2]), np.array([1, 2, 3, 3]))
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[0] != ids[2]


def test_erdos_renyi_keeps_n_and_density():
    n, m = 50, 400
    for seed in range(3):
        src, dst = erdos_renyi_edges(n, m, np.random.default_rng(seed))
        assert_simple(n, src, dst, m)
        assert src.max() < n and dst.max() < n
    with pytest.raises(ValueError, match="cannot place"):
        erdos_renyi_edges(3, 7, np.random.default_rng(0))


def test_swap_chain_samples_bipartite_realisations_uniformly():
    # sources {0,1,2} -> targets {3,4,5}, every degree 2: exactly 6 realisations (J - permutation)
    src = np.array([0, 0, 1, 1, 2, 2])
    dst = np.array([3, 4, 4, 5, 5, 3])
    rng = np.random.default_rng(11)
    seen = Counter()
    for _ in range(600):
        s2, d2 = swap_edges(src, dst, 6, 60, rng)  # 20 rounds of 3 proposals
        seen[frozenset(zip(s2.tolist(), d2.tolist()))] += 1
    assert len(seen) == 6
    assert stats.chisquare(list(seen.values())).pvalue > 0.01


def test_reproducible_by_seed_and_independent_of_n_jobs():
    g = layered_dag(1)
    for kind in ("config", "er", "layer"):
        spec = null_spec_for_graph(g, kind, swaps_per_edge=3)
        one = null_censuses(spec, n_random=6, seed=42, n_jobs=1)
        again = null_censuses(spec, n_random=6, seed=42, n_jobs=1)
        two = null_censuses(spec, n_random=6, seed=42, n_jobs=2)
        other = null_censuses(spec, n_random=6, seed=43, n_jobs=1)
        assert np.array_equal(one, again) and np.array_equal(one, two)
        assert not np.array_equal(one, other)
        assert np.all(one.sum(axis=1) == g.n_nodes * (g.n_nodes - 1) * (g.n_nodes - 2) // 6)


def test_layer_null_on_layered_dag_flags_zero_variance_classes():
    g = layered_dag(2)
    r = analyze_graph(g, null_model="layer", n_random=8, seed=0, swaps_per_edge=3)
    # edges only go up the layers, so no null graph can hold a mutual edge or a 3-cycle
    for label in ("102", "111D", "111U", "030C", "201", "120D", "120U", "120C", "210", "300"):
        k = label_index(label)
        assert r.zero_variance[k] and r.z[k] == 0.0 and r.null_std[k] == 0.0
    assert not r.zero_variance[label_index("030T")]


def test_spec_validation():
    with pytest.raises(ValueError, match="unknown"):
        NullSpec("rewire", 3, np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="edge_classes"):
        NullSpec("layer", 3, np.array([0]), np.array([1]))
    spec = NullSpec("config", 3, np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="n_random"):
        null_censuses(spec, n_random=0)
