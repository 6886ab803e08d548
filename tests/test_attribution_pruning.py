"""Influence and pruning on hand-computed adjacencies; sparse partial influence; settings."""

import numpy as np
import pytest
import scipy.sparse as sp

from scalelens.attribution import AttributionSettings, AttributionSettingsError
from scalelens.attribution.influence import (
    find_threshold,
    node_influence,
    partial_influence,
)
from scalelens.attribution.pruning import prune_graph

# nodes: u0 (layer 0), u1, u2 (layer 1), e0 (embedding), L (logit, probability 1)
U0, U1, U2, E0, LOGIT = range(5)
A = np.zeros((5, 5))
A[U0, E0] = 2.0
A[U1, U0], A[U1, E0] = 1.0, 1.0
A[U2, E0] = -1.0
A[LOGIT, U1], A[LOGIT, U2] = 3.0, -1.0
W = np.array([0, 0, 0, 0, 1.0])
UNITS = np.array([True, True, True, False, False])

# by hand: w N = (u1 .75, u2 .25); then u0 .375, e0 .375 + .25; then e0 .375
I_HAND = np.array([0.375, 0.75, 0.25, 1.0, 0.0])


def test_node_influence_by_hand():
    np.testing.assert_allclose(node_influence(A, W), I_HAND, rtol=1e-15)
    # exact-mass normalisation: each row's mass twice its entries, so every hop halves
    halved = node_influence(A, W, row_mass=2 * np.abs(A).sum(1))
    np.testing.assert_allclose(halved, [0.09375, 0.375, 0.125, 0.203125, 0.0], rtol=1e-15)


def test_find_threshold():
    scores = I_HAND
    # sorted 1, .75, .375, .25, 0 of 2.375: cumulative .42, .74, .89 -> .8 is reached at .375
    assert find_threshold(scores, 0.8) == 0.375
    assert find_threshold(scores, 0.4) == 1.0
    assert find_threshold(scores, 1.0) == 0.25  # the last positive score carries the rest
    assert find_threshold(np.zeros(3), 0.8) == float("inf")


def test_prune_graph_by_hand():
    result = prune_graph(A, W, UNITS, node_threshold=0.8, edge_threshold=0.98)
    # u2 (.25) falls below the .375 threshold; the rest carry (1 + .75 + .375) / 2.375
    assert result.node_mask.tolist() == [True, True, False, True, True]
    assert result.influence_kept == pytest.approx(2.125 / 2.375)
    assert result.influence_kept_units == pytest.approx(1.125 / 1.375)
    kept_edges = {(int(t), int(s)) for t, s in zip(*np.nonzero(result.edge_mask))}
    assert kept_edges == {(U0, E0), (U1, U0), (U1, E0), (LOGIT, U1)}
    # cumulative scores: e0 .42, u1 .74, u0 .89, u2 1, logit 1
    np.testing.assert_allclose(result.cumulative,
                               np.array([2.125, 1.75, 2.375, 1.0, 2.375]) / 2.375)


def test_prune_graph_edges_and_dangling_units():
    # edge scores on the renormalised pruned graph: L<-u1 1.0, u1<-u0 .5, u1<-e0 .5, u0<-e0 .5;
    # at 0.3 only L<-u1 survives, so u1 has no incoming edge, then u0 no outgoing one
    result = prune_graph(A, W, UNITS, node_threshold=0.8, edge_threshold=0.3)
    assert result.node_mask.tolist() == [False, False, False, True, True]
    assert result.n_edges == 0
    assert result.influence_kept == pytest.approx(1.0 / 2.375)


def test_prune_graph_max_nodes():
    result = prune_graph(A, W, UNITS, node_threshold=0.8, edge_threshold=0.98, max_nodes=1)
    assert result.node_mask.tolist() == [False, True, False, True, True]  # u1, the most influential
    kept_edges = {(int(t), int(s)) for t, s in zip(*np.nonzero(result.edge_mask))}
    assert kept_edges == {(U1, E0), (LOGIT, U1)}
    everything = prune_graph(A, W, UNITS, node_threshold=1.0, edge_threshold=1.0)
    assert everything.node_mask.all()
    assert everything.influence_kept == 1.0


def test_partial_influence_matches_dense_influence():
    # rows of L, u1, u2, u0 over the columns u0, u1, u2, e0 (e0 has no row)
    row_nodes = [LOGIT, U1, U2, U0]
    cols = [U0, U1, U2, E0]
    dense = np.abs(A[np.ix_(row_nodes, cols)])
    normalized = dense / dense.sum(1, keepdims=True)
    row_columns = np.array([-1, 1, 2, 0])  # column of each row's node; -1: a logit row
    got = partial_influence(sp.csr_matrix(normalized), row_columns, np.array([1.0, 0, 0, 0]))
    np.testing.assert_allclose(got, I_HAND[cols], rtol=1e-15)
    # a row that was not computed passes nothing on: drop u0's row
    partial = partial_influence(sp.csr_matrix(normalized[:3]), row_columns[:3],
                                np.array([1.0, 0, 0]))
    np.testing.assert_allclose(partial, [0.375, 0.75, 0.25, 0.625], rtol=1e-15)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_logits": 0}, "max_logits must be an integer >= 1"),
    ({"logit_prob": 0.0}, "logit_prob must be a number in (0, 1]"),
    ({"logit_prob": 1.5}, "logit_prob must be a number in (0, 1]"),
    ({"max_feature_nodes": -1}, "max_feature_nodes must be an integer >= 0"),
    ({"batch_size": 0}, "batch_size must be an integer in [1, 4096]"),
    ({"update_interval": 0}, "update_interval must be an integer >= 1"),
    ({"row_top_k": 0}, "row_top_k must be an integer >= 1"),
    ({"node_threshold": 1.2}, "node_threshold must be a number in [0, 1]"),
    ({"edge_threshold": -0.1}, "edge_threshold must be a number in [0, 1]"),
    ({"max_nodes": 2.5}, "max_nodes must be an integer >= 0"),
    ({"ablation": "resample"}, "ablation must be one of zero, mean"),
    ({"random_seed": -1}, "random_seed must be an integer >= 0"),
    ({"completeness_floor": 0}, "completeness_floor must be a number > 0"),
    ({"max_completeness_error": -1.0}, "max_completeness_error must be a number > 0"),
    ({"batch_size": True}, "batch_size must be an integer"),
])
def test_settings_validation(kwargs, message):
    with pytest.raises(AttributionSettingsError, match=message.replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")) as info:
        AttributionSettings(**kwargs)
    assert "\n" not in str(info.value)


def test_settings_defaults_round_trip():
    settings = AttributionSettings()
    assert AttributionSettings(**settings.to_dict()) == settings


def test_prune_graph_with_exact_row_mass():
    # halved hops (see test_node_influence_by_hand): I = u0 .09375, u1 .375, u2 .125, e0 .203125;
    # sorted u1, e0, u2, u0 of .796875: cumulative .47, .73, .88 -> u0 falls out, u2 stays
    result = prune_graph(A, W, UNITS, row_mass=2 * np.abs(A).sum(1))
    assert result.node_mask.tolist() == [False, True, True, True, True]
    kept_edges = {(int(t), int(s)) for t, s in zip(*np.nonzero(result.edge_mask))}
    assert kept_edges == {(U1, E0), (U2, E0), (LOGIT, U1), (LOGIT, U2)}
    assert result.influence_kept == pytest.approx(0.703125 / 0.796875)
