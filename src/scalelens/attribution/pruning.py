"""Pruning an attribution graph to the nodes and edges that carry the logits' influence.

The steps follow circuit-tracer's ``prune_graph`` on an adjacency ``A[target, source]``:

1. node influence ``I`` (``scalelens.attribution.influence``); keep the prunable nodes (units)
   whose influence is at least the threshold at which the top-influence nodes carry
   `node_threshold` of the total; embeddings and logits are always kept;
2. zero the rows and columns of dropped nodes; renormalise that pruned adjacency by its own
   row sums and recompute the influence ``I'`` on it (both as circuit-tracer); edge scores
   ``N'[t, s] * (I'[t] + w[t])``; keep the edges carrying `edge_threshold` of the total score;
3. drop units left without a kept outgoing edge or without a kept incoming edge, and their edges,
   until nothing changes;
4. keep at most `max_nodes` units, the most influential first (ties: lower index first), then
   step 3 again.

Differences from circuit-tracer, all deliberate: entries that are exactly zero are never kept
as edges (circuit-tracer keeps every entry whose score reaches a zero threshold) and units of
zero influence are never kept; step 1 may normalise rows by their exact full mass (`row_mass`,
see ``normalize_rows``: attribution passes it, since its rows store only some entries and a graph
has no error nodes to hold the rest); step 4 is new. Step 2 renormalises over the kept nodes in
either case: with exact masses there, a unit's incoming edges would score its coverage times its
influence, a second-order small number, and the edge threshold would cut every edge into units.

``influence_kept`` = sum of ``I`` over the kept non-logit nodes / sum of ``I`` over all
non-logit nodes (units and embeddings) of the unpruned graph: the share of the influence on the
logits, as the node threshold measures it, that the kept nodes carry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalelens.attribution.influence import edge_influence, find_threshold, node_influence


@dataclass(frozen=True)
class PruneResult:
    """Kept nodes and edges of one graph, with the influences that chose them."""

    node_mask: np.ndarray  # bool [n]
    edge_mask: np.ndarray  # bool [n, n], [target, source]
    node_influence: np.ndarray  # float64 [n], on the unpruned graph
    cumulative: np.ndarray  # float64 [n]: share of total influence of the nodes ranked <= this one
    influence_kept: float
    influence_kept_units: float  # the same over units only (kept units / all units)

    @property
    def n_nodes(self) -> int:
        return int(self.node_mask.sum())

    @property
    def n_edges(self) -> int:
        return int(self.edge_mask.sum())


def _drop_dangling(node_mask: np.ndarray, edge_mask: np.ndarray, prunable: np.ndarray) -> None:
    """In place: prunable nodes need a kept outgoing and a kept incoming edge (iterated)."""
    while True:
        edge_mask[~node_mask, :] = False
        edge_mask[:, ~node_mask] = False
        has_out = edge_mask.any(0)
        has_in = edge_mask.any(1)
        new = node_mask & (~prunable | (has_out & has_in))
        if np.array_equal(new, node_mask):
            return
        node_mask[:] = new


def _share(values: np.ndarray, kept: np.ndarray, among: np.ndarray) -> float:
    total = values[among].sum()
    return float(values[among & kept].sum() / total) if total > 0 else float("nan")


def prune_graph(adjacency: np.ndarray, logit_weights: np.ndarray, prunable: np.ndarray,
                node_threshold: float = 0.8, edge_threshold: float = 0.98, max_nodes: int = 0,
                row_mass: np.ndarray | None = None) -> PruneResult:
    """Prune a graph (see module docstring). `prunable` marks the units; `max_nodes` 0 = no cap.

    `logit_weights` [n] is the logit probabilities on the logit nodes and zero elsewhere.
    """
    adjacency = np.asarray(adjacency, dtype=np.float64)
    weights = np.asarray(logit_weights, dtype=np.float64)
    prunable = np.asarray(prunable, dtype=bool)
    influence = node_influence(adjacency, weights, row_mass)
    node_mask = (influence >= find_threshold(influence, node_threshold)) & (influence > 0)
    node_mask |= ~prunable

    pruned = adjacency.copy()
    pruned[~node_mask, :] = 0
    pruned[:, ~node_mask] = 0
    scores = edge_influence(pruned, weights)  # renormalised over the kept nodes, as circuit-tracer
    edge_mask = (scores >= find_threshold(scores, edge_threshold)) & (pruned != 0)
    _drop_dangling(node_mask, edge_mask, prunable)

    if max_nodes and int((node_mask & prunable).sum()) > max_nodes:
        candidates = np.flatnonzero(node_mask & prunable)
        order = candidates[np.lexsort((candidates, -influence[candidates]))]
        node_mask[order[max_nodes:]] = False
        _drop_dangling(node_mask, edge_mask, prunable)

    order = np.lexsort((np.arange(influence.size), -influence))
    cumulative = np.zeros_like(influence)
    total = influence.sum()
    if total > 0:
        cumulative[order] = np.cumsum(influence[order]) / total
    not_logit = weights == 0
    return PruneResult(
        node_mask=node_mask,
        edge_mask=edge_mask,
        node_influence=influence,
        cumulative=cumulative,
        influence_kept=_share(influence, node_mask, not_logit),
        influence_kept_units=_share(influence, node_mask, prunable),
    )
