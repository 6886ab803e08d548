"""What `attribute_prompt` returns: the graph before and after pruning, and its quality scores."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from scalelens.attribution.faithfulness import Faithfulness
from scalelens.attribution.pruning import PruneResult
from scalelens.attribution.settings import AttributionSettings

UNIT = 0
EMBEDDING = 1
LOGIT = 2

#: Quality fields that change from run to run; left out of the graph JSON unless asked for.
TIMING_FIELDS: tuple[str, ...] = ("seconds", "seconds_forward", "seconds_rows",
                                  "seconds_prune", "seconds_faithfulness", "peak_memory_mb")


@dataclass(frozen=True)
class AttributionQuality:
    """How exact, complete and faithful one graph is, and what it cost.

    - completeness_max_rel_error: max over every computed row (units and logits) of
      ``|sum(full row) + bias - value| / max(|value|, floor * rms)`` in the frozen model, before
      any sparsification (see ``AttributionSettings.completeness_floor``);
      completeness_logit_max_rel_error: the same over the logit rows only.
    - frozen_vs_real_max_abs: max |frozen - real| over every logit (all positions) and every
      unit activation, in the model's units; frozen_norm_max_rel: the largest relative mismatch
      of a frozen norm against the real module (each is also asserted below its tolerance).
    - influence_kept / influence_kept_units: see ``scalelens.attribution.pruning``.
    - faithfulness / faithfulness_random: see ``scalelens.attribution.faithfulness``.
    - row_mass_stored: mean over rows of (stored |effects|) / (full-row |effects|).
    - counts: n_nodes / n_edges / n_units_kept after pruning; n_units_expanded graph units
      before pruning; n_rows rows computed (logit rows included); n_passes batched backward
      passes; n_logits targets; n_tokens prompt tokens.
    - seconds (wall, whole call) and its parts; peak_memory_mb: the process's peak resident set
      during the call (since the start of the process where the kernel cannot reset it).
    """

    completeness_max_rel_error: float
    completeness_logit_max_rel_error: float
    frozen_vs_real_max_abs: float
    frozen_norm_max_rel: float
    influence_kept: float
    influence_kept_units: float
    faithfulness: float
    faithfulness_random: float
    row_mass_stored: float
    n_nodes: int
    n_edges: int
    n_units_kept: int
    n_units_expanded: int
    n_rows: int
    n_passes: int
    n_logits: int
    n_tokens: int
    seconds: float
    seconds_forward: float
    seconds_rows: float
    seconds_prune: float
    seconds_faithfulness: float
    peak_memory_mb: float

    def to_dict(self, include_timings: bool = True) -> dict[str, float | int]:
        out = dataclasses.asdict(self)
        if not include_timings:
            for name in TIMING_FIELDS:
                out.pop(name)
        return out


@dataclass(frozen=True)
class LogitTarget:
    """One target: a next-token logit at the last position."""

    token_id: int
    token: str
    probability: float
    logit: float  # real model


@dataclass(frozen=True, eq=False)
class AttributionResult:
    """One prompt's graph. Nodes 0..n-1: expanded units, then embeddings, then logits.

    ``adjacency[t, s]`` is the direct effect of node s on node t (what s adds to t's linear input
    times t's gain) among the graph's nodes, before pruning; ``row_mass[t]`` the exact L1 mass of
    t's full row over every source (0 for nodes without a row: embeddings).
    """

    prompt: str
    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    model_key: str
    model_type: str
    n_layers: int
    n_units: int
    logit_targets: tuple[LogitTarget, ...]
    node_kind: np.ndarray  # int8 [n]: UNIT | EMBEDDING | LOGIT
    node_layer: np.ndarray  # int64 [n]: layer (units), -1 (embeddings), n_layers (logits)
    node_pos: np.ndarray  # int64 [n]: position
    node_index: np.ndarray  # int64 [n]: unit index | token id | vocabulary id
    node_activation: np.ndarray  # float64 [n]: unit activation | nan | logit
    adjacency: np.ndarray  # float64 [n, n]
    row_mass: np.ndarray  # float64 [n]
    row_rel_error: np.ndarray  # float64 [n]: completeness error of the node's row (nan: no row)
    prune: PruneResult
    faithfulness: Faithfulness
    quality: AttributionQuality
    settings: AttributionSettings
    frozen: tuple[str, ...]  # what the frozen model holds fixed, in words

    @property
    def n_nodes(self) -> int:
        return int(self.node_kind.size)

    def to_json_dict(self, slug: str, scan: str | None = None, weights_sha256: str = "",
                     source: str = "", include_timings: bool = False) -> dict:
        """The pruned graph in the circuit-tracer / Neuronpedia schema (see graph_json)."""
        from scalelens.attribution.graph_json import graph_json

        return graph_json(self, slug=slug, scan=scan or self.model_key,
                          weights_sha256=weights_sha256, source=source,
                          include_timings=include_timings)
