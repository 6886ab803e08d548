"""Influence on the logits through a row-normalised adjacency (as circuit-tracer's graph.py).

Adjacency ``A[target, source]`` holds signed direct effects. Its normalisation is
``N = |A| / mass`` row by row, where ``mass`` is the row's L1 mass: by default the sum of the
row's own |entries| (circuit-tracer's ``normalize_matrix``), or -- for attribution rows, which
store only some entries -- the exact L1 mass of the FULL row over every source, so stored entries
keep their true share and the rest of the row's mass is simply not in the graph. Rows of zero
mass are all zero.

Influence of node j on the logits: ``I = w N + w N^2 + ...`` (direct plus every indirect path),
with ``w`` the logit probabilities on the logit nodes' rows and zero elsewhere. Attribution
graphs are acyclic (sources sit in strictly lower layers), so the series ends after at most
depth + 1 terms; a cycle raises.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from scalelens.errors import ScalelensError

MAX_ITER = 1000


class InfluenceError(ScalelensError):
    pass


def normalize_rows(abs_matrix: np.ndarray, row_mass: np.ndarray | None = None) -> np.ndarray:
    """|A| / mass row by row (mass = the row's own sum when `row_mass` is None)."""
    abs_matrix = np.abs(np.asarray(abs_matrix, dtype=np.float64))
    mass = abs_matrix.sum(1) if row_mass is None else np.asarray(row_mass, dtype=np.float64)
    safe = np.where(mass > 0, mass, 1.0)
    return np.where((mass > 0)[:, None], abs_matrix / safe[:, None], 0.0)


def influence(normalized: np.ndarray, weights: np.ndarray, max_iter: int = MAX_ITER) -> np.ndarray:
    """w N + w N^2 + ... for a dense normalised adjacency N and row weights w."""
    current = np.asarray(weights, dtype=np.float64) @ normalized
    total = current.copy()
    for _ in range(max_iter):
        if not current.any():
            return total
        current = current @ normalized
        total += current
    raise InfluenceError(f"influence did not converge in {max_iter} steps: the graph has a cycle")


def node_influence(adjacency: np.ndarray, weights: np.ndarray,
                   row_mass: np.ndarray | None = None) -> np.ndarray:
    """Influence of every node on the weighted logits."""
    return influence(normalize_rows(adjacency, row_mass), weights)


def edge_influence(adjacency: np.ndarray, weights: np.ndarray,
                   row_mass: np.ndarray | None = None) -> np.ndarray:
    """Edge scores N[t, s] * (I[t] + w[t]): how much of the logits' influence runs along t <- s."""
    normalized = normalize_rows(adjacency, row_mass)
    through = influence(normalized, weights) + np.asarray(weights, dtype=np.float64)
    return normalized * through[:, None]


def find_threshold(scores: np.ndarray, fraction: float) -> float:
    """Smallest score among the top-scored entries that together carry `fraction` of the sum.

    Scores are sorted in descending order; the threshold is the score at which the cumulative
    sum first reaches `fraction` of the total (the last score when it never does, e.g. at 1.0).
    Every entry with score >= threshold then carries at least `fraction`. inf when all are zero.
    """
    flat = np.sort(np.asarray(scores, dtype=np.float64).ravel())[::-1]
    total = flat.sum()
    if flat.size == 0 or total <= 0:
        return float("inf")
    cumulative = np.cumsum(flat) / total
    index = min(int(np.searchsorted(cumulative, fraction)), flat.size - 1)
    return float(flat[index])


def partial_influence(matrix: sp.csr_matrix, row_columns: np.ndarray,
                      row_weights: np.ndarray, max_iter: int = MAX_ITER) -> np.ndarray:
    """Influence of every column on the logits from the rows computed so far (sparse).

    `matrix` [rows, columns] holds normalised |effects| of the stored entries; row r is the row
    of the node in column `row_columns[r]` (-1 for a logit row, which no one reads);
    `row_weights` are the logit probabilities on logit rows, 0 elsewhere. Columns without a row
    pass no influence on.
    """
    transposed = matrix.T  # CSC: its products with a vector need no conversion
    rows = np.asarray(row_columns)
    has_column = rows >= 0
    per_row = np.asarray(row_weights, dtype=np.float64)
    total = np.zeros(matrix.shape[1], dtype=np.float64)
    for _ in range(max_iter):
        current = transposed @ per_row
        if not current.any():
            return total
        total += current
        per_row = np.where(has_column, current[np.where(has_column, rows, 0)], 0.0)
    raise InfluenceError(f"influence did not converge in {max_iter} steps: the rows form a cycle")
