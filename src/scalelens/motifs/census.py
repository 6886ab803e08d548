"""Directed triad census (the 16 MAN isomorphism classes of 3-node subgraphs) via python-igraph.

Which classes are counted: the census always covers *every* unordered triple of nodes of the
whole graph, connected or not, so the 16 counts sum to C(n, 3). The classes 003 (no edge),
012 (one single edge) and 102 (one mutual edge) have a node with no tie to the other two; they
are counted (also across weakly connected components) and Z-scored, but they are not "motifs":
significance profiles and enrichment calls use only the 13 weakly connected classes
021D ... 300 (``CONNECTED_LABELS``).
"""

from __future__ import annotations

import igraph as ig
import numpy as np

#: Standard MAN labels (Holland & Leinhardt): Mutual, Asymmetric, Null dyad counts + orientation.
TRIAD_LABELS: tuple[str, ...] = (
    "003",
    "012",
    "102",
    "021D",
    "021U",
    "021C",
    "111D",
    "111U",
    "030T",
    "030C",
    "201",
    "120D",
    "120U",
    "120C",
    "210",
    "300",
)
#: Classes whose three nodes are weakly connected; the only ones entering SP and enrichment.
CONNECTED_LABELS: tuple[str, ...] = TRIAD_LABELS[3:]
#: Boolean mask over TRIAD_LABELS selecting CONNECTED_LABELS.
CONNECTED_MASK: np.ndarray = np.array([lab in CONNECTED_LABELS for lab in TRIAD_LABELS])
CONNECTED_MASK.setflags(write=False)

MOTIF_FFL = "030T"  # feed-forward loop: A->B, B->C, A->C
MOTIF_CHAIN = "021C"  # directed two-path A->B->C
MOTIF_FAN_IN = "021U"  # A->B<-C
MOTIF_FAN_OUT = "021D"  # A<-B->C
MOTIF_CYCLE = "030C"  # directed 3-cycle
#: Motifs highlighted in the key-motif scaling figure.
KEY_MOTIFS: tuple[str, ...] = (
    MOTIF_FFL,
    MOTIF_CHAIN,
    MOTIF_FAN_IN,
    MOTIF_FAN_OUT,
    "111U",
    MOTIF_CYCLE,
)

#: Human-readable descriptions (A, B, C arbitrary node names), for legends and reports.
TRIAD_DESCRIPTIONS: dict[str, str] = {
    "003": "empty",
    "012": "A->B, C",
    "102": "A<->B, C",
    "021D": "A<-B->C (fan-out)",
    "021U": "A->B<-C (fan-in)",
    "021C": "A->B->C (chain)",
    "111D": "A<->B<-C",
    "111U": "A<->B->C",
    "030T": "A->B->C, A->C (FFL)",
    "030C": "A->B->C->A (cycle)",
    "201": "A<->B<->C",
    "120D": "A<-B->C, A<->C",
    "120U": "A->B<-C, A<->C",
    "120C": "A->B->C, A<->C",
    "210": "A->B<->C, A<->C",
    "300": "complete",
}


def label_index(label: str) -> int:
    """Position of a MAN label in TRIAD_LABELS; raises ValueError naming the valid labels."""
    try:
        return TRIAD_LABELS.index(label)
    except ValueError:
        raise ValueError(
            f"unknown triad label {label!r}; valid labels are {', '.join(TRIAD_LABELS)}"
        ) from None


def to_igraph(n_nodes: int, src: np.ndarray, dst: np.ndarray) -> ig.Graph:
    """Directed igraph graph on nodes 0..n_nodes-1 with edges src[i] -> dst[i]."""
    edges = np.column_stack([np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)])
    return ig.Graph(n=int(n_nodes), edges=edges.tolist(), directed=True)


def triad_census(n_nodes: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Counts of the 16 triad classes, int64 in TRIAD_LABELS order (mapped from igraph by name).

    Expects a simple digraph (no self-loops, no duplicate edges); the counts cover all
    C(n_nodes, 3) triples of the whole graph, including those spanning components.
    """
    src = np.asarray(src)
    dst = np.asarray(dst)
    if src.shape != dst.shape or src.ndim != 1:
        raise ValueError(
            f"src and dst must be equal-length 1-D arrays, got {src.shape}, {dst.shape}"
        )
    if n_nodes < 0:
        raise ValueError(f"n_nodes must be >= 0, got {n_nodes}")
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n_nodes):
        raise ValueError(f"edge endpoints must lie in [0, {n_nodes}), got a node id out of range")
    if n_nodes < 3:
        return np.zeros(len(TRIAD_LABELS), dtype=np.int64)
    tc = to_igraph(n_nodes, src, dst).triad_census()
    # Map by name: TriadCensus accepts MAN labels as item keys.
    return np.array([int(tc[label]) for label in TRIAD_LABELS], dtype=np.int64)


def census_as_dict(counts: np.ndarray) -> dict[str, int]:
    """{MAN label: count} for a 16-vector in TRIAD_LABELS order."""
    counts = np.asarray(counts)
    if counts.shape != (len(TRIAD_LABELS),):
        raise ValueError(f"expected a census of shape (16,), got {counts.shape}")
    return {label: int(c) for label, c in zip(TRIAD_LABELS, counts)}
