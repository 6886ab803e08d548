"""Synergistic and redundant cores as graphs (figures 3b, 3c).

From a symmetric pairwise matrix (sts or rtr, [n, n]): one node per head (all n, isolated ones
included), and an undirected edge for each of the strongest `top_pct` of the upper-triangle pairs
with a finite value -- k = max(1, round(top_pct * n_finite_pairs)) pairs, ties at the threshold
broken by pair order (row-major), edges with weight <= 0 dropped -- weighted by the matrix value.

Metrics per graph:
- global efficiency: networkx `global_efficiency`, the mean over ordered node pairs of
  1 / shortest-path length (hops, unweighted; 0 between disconnected nodes);
- Louvain modularity: python-louvain `best_partition` (weighted, seeded), then `modularity`;
- n_communities: Louvain communities among non-isolated nodes (isolated nodes are counted apart);
- mean degree 2E / n and density 2E / (n (n - 1)).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import networkx as nx
import numpy as np
from community import community_louvain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoreGraph:
    """A thresholded head graph: edges as index arrays plus its graph-theoretic metrics."""

    kind: str  # "synergy" | "redundancy"
    n_nodes: int
    edges_i: np.ndarray  # int64 [E], i < j
    edges_j: np.ndarray  # int64 [E]
    weights: np.ndarray  # float64 [E]
    weight_threshold: float  # smallest kept weight (NaN when no edge)
    global_efficiency: float
    modularity: float
    n_communities: int
    n_isolated: int
    mean_degree: float
    density: float
    community: np.ndarray  # int64 [n] Louvain community per node (-1 for isolated nodes)

    @property
    def n_edges(self) -> int:
        return int(self.edges_i.size)

    def metrics(self) -> dict[str, float | int]:
        """The scalar metrics, for json and MLflow."""
        return {"n_nodes": self.n_nodes, "n_edges": self.n_edges,
                "weight_threshold": self.weight_threshold,
                "global_efficiency": self.global_efficiency, "modularity": self.modularity,
                "n_communities": self.n_communities, "n_isolated": self.n_isolated,
                "mean_degree": self.mean_degree, "density": self.density}


@dataclass(frozen=True)
class GraphCores:
    """The synergy (sts) and redundancy (rtr) graphs of one model, built the same way."""

    synergy: CoreGraph
    redundancy: CoreGraph
    top_pct: float
    louvain_seed: int


def top_edges(matrix: np.ndarray, top_pct: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, weight) of the strongest top_pct of finite upper-triangle pairs with weight > 0."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"expected a square [n, n] matrix, got shape {m.shape}")
    if not 0 < top_pct <= 1:
        raise ValueError(f"top_pct must be in (0, 1] (e.g. 0.10), got {top_pct}")
    i, j = np.triu_indices(m.shape[0], k=1)
    w = m[i, j]
    finite = np.isfinite(w)
    i, j, w = i[finite], j[finite], w[finite]
    if w.size == 0:
        return i, j, w
    k = max(1, int(round(top_pct * w.size)))
    keep = np.argsort(-w, kind="stable")[:k]
    keep = keep[w[keep] > 0]
    keep.sort()
    return i[keep].astype(np.int64), j[keep].astype(np.int64), w[keep]


def build_graph(n_nodes: int, edges_i, edges_j, weights) -> nx.Graph:
    """Undirected weighted networkx graph on nodes 0..n-1."""
    g = nx.Graph()
    g.add_nodes_from(range(n_nodes))
    g.add_weighted_edges_from(zip(edges_i.tolist(), edges_j.tolist(), weights.tolist()))
    return g


def louvain_partition(g: nx.Graph, seed: int) -> tuple[np.ndarray, float]:
    """(community per node, -1 for isolated; weighted modularity) from seeded Louvain."""
    labels = np.full(g.number_of_nodes(), -1, dtype=np.int64)
    if g.number_of_edges() == 0:
        return labels, float("nan")
    part = community_louvain.best_partition(g, weight="weight", random_state=seed)
    q = float(community_louvain.modularity(part, g, weight="weight"))
    # relabel communities of connected nodes 0..c-1 in order of their smallest node
    first_seen: dict[int, int] = {}
    for node in sorted(part):
        if g.degree(node) == 0:
            continue
        labels[node] = first_seen.setdefault(part[node], len(first_seen))
    return labels, q


def core_graph(matrix: np.ndarray, kind: str, top_pct: float = 0.10,
               louvain_seed: int = 0) -> CoreGraph:
    """Threshold one matrix to its strongest edges and measure the resulting graph."""
    n = int(np.asarray(matrix).shape[0])
    ei, ej, w = top_edges(matrix, top_pct)
    g = build_graph(n, ei, ej, w)
    labels, q = louvain_partition(g, louvain_seed)
    e = int(ei.size)
    n_isolated = int(sum(1 for _, d in g.degree() if d == 0))
    return CoreGraph(
        kind=kind, n_nodes=n, edges_i=ei, edges_j=ej, weights=w,
        weight_threshold=float(w.min()) if e else float("nan"),
        global_efficiency=float(nx.global_efficiency(g)) if n > 1 else float("nan"),
        modularity=q, n_communities=int(labels.max() + 1), n_isolated=n_isolated,
        mean_degree=2 * e / n if n else float("nan"),
        density=2 * e / (n * (n - 1)) if n > 1 else float("nan"),
        community=labels,
    )


def graph_cores(sts: np.ndarray, rtr: np.ndarray, top_pct: float = 0.10,
                louvain_seed: int = 0) -> GraphCores:
    """Synergy and redundancy graphs of one model (figure 3b) and their metrics (figure 3c)."""
    if np.shape(sts) != np.shape(rtr):
        raise ValueError(f"sts {np.shape(sts)} and rtr {np.shape(rtr)} must have the same shape")
    return GraphCores(core_graph(sts, "synergy", top_pct, louvain_seed),
                      core_graph(rtr, "redundancy", top_pct, louvain_seed), top_pct, louvain_seed)
