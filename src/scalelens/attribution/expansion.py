"""Which unit rows to compute: logit rows first, then the most influential units, in rounds.

As circuit-tracer's attribution loop: after the logit rows, the influence of every unit on the
logits is computed from the rows known so far (``partial_influence`` over the stored entries,
normalised by each row's exact full mass); the `update_interval * batch_size` most influential
units not yet expanded are expanded (their rows computed in batches of `batch_size`, the queue
sorted by position and layer, both descending, so each batch's backward pass and projections stop
as early as they can), and the influence is recomputed,
until `max_feature_nodes` units are expanded or no unexpanded unit has any influence. Ties in
influence go to the lower column (layer, position, unit order), so the choice is deterministic.
Only expanded units become graph nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from scalelens.attribution.influence import partial_influence
from scalelens.attribution.rows import RowBatch, RowComputer

LOGIT_ROW = -1


@dataclass
class RowStore:
    """Every computed row, reduced (see ``RowBatch``), with the node it belongs to."""

    n_unit_columns: int  # L * T * m; embedding p is column n_unit_columns + p
    n_pos: int
    batches: list[RowBatch] = field(default_factory=list)
    columns: list[np.ndarray] = field(default_factory=list)  # per batch: unit column or LOGIT_ROW
    weights: list[np.ndarray] = field(default_factory=list)  # per batch: logit prob or 0
    blocks: list[sp.csr_matrix] = field(default_factory=list)  # per batch: normalised rows

    @property
    def n_rows(self) -> int:
        return int(sum(len(c) for c in self.columns))

    def add(self, batch: RowBatch, columns: np.ndarray, weights: np.ndarray) -> None:
        self.batches.append(batch)
        self.columns.append(np.asarray(columns, dtype=np.int64))
        self.weights.append(np.asarray(weights, dtype=np.float64))
        self.blocks.append(self._normalized(batch))

    def stacked(self, name: str) -> np.ndarray:
        return np.concatenate([getattr(b, name) for b in self.batches])

    def row_columns(self) -> np.ndarray:
        return np.concatenate(self.columns)

    def normalized_matrix(self) -> sp.csr_matrix:
        """|stored effect| / full row mass, [rows, unit columns + embedding columns]."""
        return sp.vstack(self.blocks, format="csr")

    def _normalized(self, batch: RowBatch) -> sp.csr_matrix:
        top_index, top_value = batch.top_index, batch.top_value
        embedding, mass = batch.embedding, batch.mass
        n_rows, k = top_index.shape
        safe = np.where(mass > 0, mass, 1.0)[:, None]
        rows = np.repeat(np.arange(n_rows), k + self.n_pos)
        cols = np.concatenate(
            [top_index, np.broadcast_to(self.n_unit_columns + np.arange(self.n_pos),
                                        (n_rows, self.n_pos))], axis=1).ravel()
        data = (np.concatenate([np.abs(top_value), np.abs(embedding)], axis=1) / safe).ravel()
        real = cols >= 0
        rows, cols, data = rows[real], cols[real], data[real]
        shape = (n_rows, self.n_unit_columns + self.n_pos)
        return sp.csr_matrix((data, (rows, cols)), shape=shape)

    def influence(self) -> np.ndarray:
        return partial_influence(self.normalized_matrix(), self.row_columns(),
                                 np.concatenate(self.weights))


def expand(computer: RowComputer, store: RowStore, max_feature_nodes: int, batch_size: int,
           update_interval: int) -> np.ndarray:
    """Expand units (see module docstring); returns their columns, in expansion order."""
    n_pos, n_units = computer.n_pos, computer.n_units
    visited = np.zeros(store.n_unit_columns, dtype=bool)
    expanded: list[np.ndarray] = []
    n_done = 0
    while n_done < max_feature_nodes:
        influence = store.influence()[:store.n_unit_columns]
        candidates = np.flatnonzero((influence > 0) & ~visited)
        if candidates.size == 0:
            break
        ranked = candidates[np.lexsort((candidates, -influence[candidates]))]
        queue = ranked[:min(update_interval * batch_size, max_feature_nodes - n_done)]
        layer, rest = np.divmod(queue, n_pos * n_units)
        pos, unit = np.divmod(rest, n_units)
        # last positions first, then high layers first: a batch's backward pass stops at its
        # highest layer and its projections at its last position, so similar units go together
        order = np.lexsort((unit, -layer, -pos))
        for start in range(0, queue.size, batch_size):
            sel = order[start:start + batch_size]
            batch = computer.rows(layer[sel], pos[sel], unit[sel])
            store.add(batch, queue[sel], np.zeros(sel.size))
        visited[queue] = True
        expanded.append(queue[order])
        n_done += queue.size
    return np.concatenate(expanded) if expanded else np.zeros(0, dtype=np.int64)
