"""Z-scores, zero-variance flags, significance profiles, enrichment and the per-graph result."""

import json

import numpy as np
import pytest

from scalelens.motifs.analysis import GraphMotifResult, analyze_graph, graph_seed
from scalelens.motifs.census import CONNECTED_MASK, TRIAD_LABELS, label_index
from scalelens.motifs.loader import graph_from_edges
from scalelens.motifs.nulls import erdos_renyi_edges
from scalelens.motifs.zscores import enrichment, significance_profile, z_scores


def test_z_scores_by_definition_and_zero_variance_flag():
    null = np.zeros((4, 16))
    null[:, 0] = [1, 2, 3, 4]  # mean 2.5, sample std sqrt(5/3)
    null[:, 1] = 7  # zero variance
    observed = np.zeros(16)
    observed[0], observed[1] = 6, 9
    zs = z_scores(observed, null)
    assert zs.null_mean[0] == 2.5
    assert zs.null_std[0] == pytest.approx(np.sqrt(5 / 3))
    assert zs.z[0] == pytest.approx(3.5 / np.sqrt(5 / 3))
    assert zs.z[1] == 0.0 and zs.zero_variance[1] and zs.null_std[1] == 0.0
    assert zs.zero_variance[2:].all() and not zs.zero_variance[0]
    with pytest.raises(ValueError, match="at least 2"):
        z_scores(observed, null[:1])


def test_significance_profile_unit_norm_over_connected_classes():
    z = np.arange(16, dtype=float) - 5
    sp = significance_profile(z)
    assert np.linalg.norm(sp) == pytest.approx(1.0)
    assert np.all(sp[~CONNECTED_MASK] == 0)
    assert sp[CONNECTED_MASK] == pytest.approx(
        z[CONNECTED_MASK] / np.linalg.norm(z[CONNECTED_MASK])
    )
    only_unconnected = np.zeros(16)
    only_unconnected[:3] = 5
    assert np.all(significance_profile(only_unconnected) == 0)
    batch = significance_profile(np.stack([z, 2 * z]))
    assert batch[0] == pytest.approx(batch[1])


def test_enrichment_threshold_and_connected_only():
    z = np.zeros(16)
    z[label_index("003")] = 50  # not a connected class: never called
    z[label_index("030T")] = 2.0
    z[label_index("021C")] = -2.5
    z[label_index("021D")] = 1.99
    assert enrichment(z) == (("030T",), ("021C",))
    assert enrichment(z, threshold=3) == ((), ())


def small_graph(seed=0):
    src, dst = erdos_renyi_edges(25, 90, np.random.default_rng(seed))
    return graph_from_edges(25, src, dst, graph_id="g", model="m", task="t")


def test_analyze_graph_consistent_and_json_round_trip():
    g = small_graph()
    r = analyze_graph(g, n_random=10, seed=3, swaps_per_edge=3)
    assert r.observed.sum() == 25 * 24 * 23 // 6
    assert r.null_counts.shape == (10, 16)
    assert np.allclose(r.null_mean, r.null_counts.mean(axis=0))
    nz = ~r.zero_variance
    assert np.allclose(r.z[nz], (r.observed[nz] - r.null_mean[nz]) / r.null_std[nz])
    assert np.linalg.norm(r.sp) == pytest.approx(1.0)
    d = json.loads(json.dumps(r.to_json_dict(include_null_counts=True)))
    assert list(d["census"]) == list(TRIAD_LABELS) and len(d["sp"]) == 13
    back = GraphMotifResult.from_json_dict(d)
    for field in ("observed", "null_mean", "null_std", "z", "zero_variance", "sp", "null_counts"):
        assert np.array_equal(getattr(back, field), getattr(r, field)), field
    assert (back.graph_id, back.model, back.task, back.seed) == ("g", "m", "t", 3)
    row = r.table_row()
    assert row["z_030T"] == r.z[label_index("030T")] and "sp_003" not in row
    with pytest.raises(ValueError, match="missing key 'z'"):
        GraphMotifResult.from_json_dict({k: v for k, v in d.items() if k != "z"})


def test_analyze_graph_reproducible_by_seed():
    g = small_graph(1)
    a = analyze_graph(g, n_random=5, seed=9, swaps_per_edge=2)
    b = analyze_graph(g, n_random=5, seed=9, swaps_per_edge=2)
    assert np.array_equal(a.z, b.z)
    with pytest.raises(ValueError, match="n_random"):
        analyze_graph(g, n_random=1)


def test_graph_seed_stable_and_distinct():
    assert graph_seed(0, "m", "t", "g1") == graph_seed(0, "m", "t", "g1")
    assert graph_seed(0, "m", "t", "g1") != graph_seed(0, "m", "t", "g2")
    assert graph_seed(0, "m", "t", "g1") != graph_seed(1, "m", "t", "g1")
