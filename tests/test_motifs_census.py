"""Triad census: hand-counted graphs and agreement with networkx.triadic_census by MAN label."""

from math import comb

import networkx as nx
import numpy as np
import pytest

from scalelens.motifs.census import (
    CONNECTED_LABELS,
    CONNECTED_MASK,
    TRIAD_LABELS,
    census_as_dict,
    label_index,
    triad_census,
)


def census_of(n, edges):
    """Census by label; asserts that the igraph and bitset methods agree."""
    e = np.array(edges, dtype=np.int64).reshape(-1, 2)
    by_igraph = census_as_dict(triad_census(n, e[:, 0], e[:, 1], method="igraph"))
    by_bitset = census_as_dict(triad_census(n, e[:, 0], e[:, 1], method="bitset"))
    assert by_igraph == by_bitset
    return by_bitset


def nonzero(census):
    return {k: v for k, v in census.items() if v}


def test_hand_built_graph_counts_by_name():
    # FFL 0->1->2, 0->2; mutual 2<->3; isolated node 4. All 10 triples classified by hand.
    edges = [(0, 1), (1, 2), (0, 2), (2, 3), (3, 2)]
    assert nonzero(census_of(5, edges)) == {
        "030T": 1,  # {0,1,2}
        "012": 4,  # {0,1,3} {0,1,4} {0,2,4} {1,2,4}
        "111D": 2,  # {0,2,3} {1,2,3}: asymmetric edge into the mutual pair's node 2
        "003": 2,  # {0,3,4} {1,3,4}
        "102": 1,  # {2,3,4}
    }


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        # 3-cycle plus 3->0: {0,1,2} cycle; {0,1,3} chain 3->0->1; {0,2,3} 2->0<-3; {1,2,3} 1->2
        ([(0, 1), (1, 2), (2, 0), (3, 0)], {"030C": 1, "021C": 1, "021U": 1, "012": 1}),
        # B=0 sends to 1 and 2 which are mutual: 120D (A<-B->C, A<->C); {0,1,3}, {0,2,3}: 012
        ([(0, 1), (0, 2), (1, 2), (2, 1)], {"120D": 1, "012": 2, "102": 1}),
        # 1 and 2 both send to 0 and are mutual: 120U
        ([(1, 0), (2, 0), (1, 2), (2, 1)], {"120U": 1, "012": 2, "102": 1}),
        # mutual 0<->1 and 1->2 (111U: A<->B->C); 2->3 makes the chain 1->2->3
        ([(0, 1), (1, 0), (1, 2), (2, 3)], {"111U": 1, "021C": 1, "102": 1, "012": 1}),
        # complete mutual triangle
        ([(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0)], {"300": 1, "102": 3}),
    ],
)
def test_small_graphs_known_classes(edges, expected):
    assert nonzero(census_of(4, edges)) == expected


def test_each_networkx_triad_graph_maps_to_its_own_label():
    for label in TRIAD_LABELS:
        g = nx.triad_graph(label)
        index = {v: i for i, v in enumerate(sorted(g.nodes()))}
        edges = [(index[u], index[v]) for u, v in g.edges()]
        assert nonzero(census_of(3, edges)) == {label: 1}


@pytest.mark.parametrize("method", ["igraph", "bitset"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_random_graphs_match_networkx_by_name(seed, method):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 90))  # > 64 nodes exercises multi-word bitsets
    p = float(rng.uniform(0.02, 0.4))
    adj = (rng.random((n, n)) < p) & ~np.eye(n, dtype=bool)
    src, dst = np.nonzero(adj)
    ours = census_as_dict(triad_census(n, src, dst, method=method))
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from(zip(src.tolist(), dst.tolist()))
    theirs = nx.triadic_census(g)
    assert set(theirs) == set(TRIAD_LABELS)
    assert ours == {k: int(v) for k, v in theirs.items()}
    assert sum(ours.values()) == comb(n, 3)


def test_disconnected_graph_counts_all_triples():
    # two disjoint edges: every triple spans components; census covers all C(6,3) = 20 of them
    c = census_of(6, [(0, 1), (2, 3)])
    assert sum(c.values()) == 20
    assert c["012"] == 8 and c["003"] == 12
    assert all(c[lab] == 0 for lab in CONNECTED_LABELS)


def test_auto_method_switches_to_igraph_above_the_bitset_limit(monkeypatch):
    from scalelens.motifs import census

    src, dst = np.array([0, 1, 2]), np.array([1, 2, 0])
    calls = []
    monkeypatch.setattr(census, "_igraph_census", lambda *a: calls.append(a) or np.zeros(16))
    census.triad_census(4, src, dst)
    assert calls == []
    monkeypatch.setattr(census, "BITSET_MAX_NODES", 3)
    census.triad_census(4, src, dst)
    assert len(calls) == 1


def test_tiny_and_invalid_inputs():
    assert triad_census(2, np.array([0]), np.array([1])).tolist() == [0] * 16
    with pytest.raises(ValueError, match="out of range"):
        triad_census(3, np.array([0]), np.array([3]))
    with pytest.raises(ValueError, match="census method 'fast' is unknown"):
        triad_census(3, np.array([0]), np.array([1]), method="fast")
    with pytest.raises(ValueError, match="unknown triad label"):
        label_index("030X")


def test_connected_mask_selects_the_13_connected_classes():
    assert CONNECTED_MASK.sum() == 13
    assert [lab for lab, m in zip(TRIAD_LABELS, CONNECTED_MASK) if not m] == ["003", "012", "102"]
