"""A pruned graph as a circuit-tracer / Neuronpedia JSON object (what the motif loader reads).

Node ids follow circuit-tracer: MLP unit ``{layer}_{unit}_{position}`` (e.g. "12_345_7"),
embedding ``E_{token id}_{position}``, logit ``{n_layers + 1}_{vocabulary id}_{position}``.
feature_type: ``MLP_UNIT_FEATURE_TYPE`` ("mlp neuron"), "embedding", "logit". ``feature`` is the
unit index (units), the position (embeddings, as circuit-tracer) or the vocabulary id (logits).
``influence`` is circuit-tracer's cumulative score: the share of the total node influence carried
by the nodes ranked at or above this one. ``activation``: the unit's activation, the logit's
value, null for embeddings.

Order: embeddings by position, units by (layer, position, unit), logits by rank; links by
(target, source) in that node order. Every float is rounded to 6 significant digits
(``round_sig``), so the same result always gives the same JSON; timings are left out unless
asked for (they differ between runs).
"""

from __future__ import annotations

import json
import math

import numpy as np

from scalelens.attribution.result import EMBEDDING, LOGIT, UNIT, AttributionResult
from scalelens.motifs.loader import MLP_UNIT_FEATURE_TYPE

SCHEMA_VERSION = 1
SIGNIFICANT_DIGITS = 6
METHOD = ("exact neuron-level attribution graph of one forward pass (no transcoders): direct "
          "effects between MLP units, token embeddings and target logits in the frozen model")


def round_sig(x: float, digits: int = SIGNIFICANT_DIGITS) -> float | None:
    """x rounded to `digits` significant digits; None for NaN / inf (JSON null)."""
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}") + 0.0  # + 0.0 turns -0.0 into 0.0


def _quoted(token: str) -> str:
    return json.dumps(token, ensure_ascii=False)


def _node_order(result: AttributionResult) -> np.ndarray:
    """Kept nodes: embeddings by position, units by (layer, position, unit), logits by rank."""
    kept = np.flatnonzero(result.prune.node_mask)
    kind = result.node_kind[kept]
    kind_rank = np.array([1, 0, 2])[kind]  # embeddings, units, logits
    logit = kind == LOGIT  # logit nodes are stored in rank order: keep it
    index = np.where(logit, 0, result.node_index[kept])
    pos = np.where(logit, 0, result.node_pos[kept])
    layer = np.where(logit, kept, result.node_layer[kept])
    return kept[np.lexsort((index, pos, layer, kind_rank))]


def _node(result: AttributionResult, i: int, rank_of_logit: dict[int, int]) -> dict:
    kind = int(result.node_kind[i])
    layer, pos, index = (int(result.node_layer[i]), int(result.node_pos[i]),
                         int(result.node_index[i]))
    influence = round_sig(result.prune.cumulative[i])
    if kind == UNIT:
        return {"node_id": f"{layer}_{index}_{pos}", "feature": index, "layer": str(layer),
                "ctx_idx": pos, "feature_type": MLP_UNIT_FEATURE_TYPE,
                "jsNodeId": f"{layer}_{index}-{pos}",
                "clerp": f"L{layer} u{index} @ {_quoted(result.tokens[pos])}",
                "activation": round_sig(result.node_activation[i]), "influence": influence,
                "token_prob": 0.0, "is_target_logit": False}
    if kind == EMBEDDING:
        return {"node_id": f"E_{index}_{pos}", "feature": pos, "layer": "E", "ctx_idx": pos,
                "feature_type": "embedding", "jsNodeId": f"E_{index}-{pos}",
                "clerp": f"Emb {_quoted(result.tokens[pos])} @{pos}", "activation": None,
                "influence": influence, "token_prob": 0.0, "is_target_logit": False}
    rank = rank_of_logit[i]
    target = result.logit_targets[rank]
    logit_layer = result.n_layers + 1
    return {"node_id": f"{logit_layer}_{index}_{pos}", "feature": index,
            "layer": str(logit_layer), "ctx_idx": pos, "feature_type": "logit",
            "jsNodeId": f"L_{index}-{pos}",
            "clerp": f"Output {_quoted(target.token)} (p={target.probability:.3f})",
            "activation": round_sig(result.node_activation[i]), "influence": influence,
            "token_prob": round_sig(target.probability), "is_target_logit": rank == 0}


def graph_json(result: AttributionResult, slug: str, scan: str, weights_sha256: str,
               source: str, include_timings: bool = False) -> dict:
    """The JSON object (see module docstring); write it with ``scalelens.io.save_json``."""
    order = _node_order(result)
    logits = np.flatnonzero(result.node_kind == LOGIT)
    rank_of_logit = {int(i): r for r, i in enumerate(logits)}
    nodes = [_node(result, int(i), rank_of_logit) for i in order]
    ids = [n["node_id"] for n in nodes]
    position = np.full(result.n_nodes, -1, dtype=np.int64)
    position[order] = np.arange(order.size)
    targets, sources = np.nonzero(result.prune.edge_mask)
    link_order = np.lexsort((position[sources], position[targets]))
    links = [{"source": ids[position[s]], "target": ids[position[t]],
              "weight": round_sig(result.adjacency[t, s])}
             for t, s in zip(targets[link_order], sources[link_order])]
    settings = result.settings
    faith = result.faithfulness
    scalelens = {
        "method": METHOD,
        "model": {"key": result.model_key, "architecture": result.model_type,
                  "source": source, "weights_sha256": weights_sha256,
                  "n_layers": result.n_layers, "n_units_per_layer": result.n_units},
        "frozen_model": list(result.frozen),
        "settings": settings.to_dict(),
        "ablation": settings.ablation,
        "logit_targets": [
            {"token_id": t.token_id, "token": t.token, "probability": round_sig(t.probability),
             "logit": round_sig(t.logit),
             "faithfulness": round_sig(f), "faithfulness_random": round_sig(fr)}
            for t, f, fr in zip(result.logit_targets, faith.per_target, faith.per_target_random)
        ],
        "quality": {k: (round_sig(v) if isinstance(v, float) else v)
                    for k, v in result.quality.to_dict(include_timings).items()},
        "float_rounding": f"{SIGNIFICANT_DIGITS} significant digits",
    }
    return {
        "metadata": {
            "slug": slug, "scan": scan, "transcoder_list": [], "prompt": result.prompt,
            "prompt_tokens": list(result.tokens), "node_threshold": settings.node_threshold,
            "edge_threshold": settings.edge_threshold, "schema_version": SCHEMA_VERSION,
            "scalelens": scalelens,
        },
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "",
                    "sg_pos": ""},
        "nodes": nodes,
        "links": links,
    }
