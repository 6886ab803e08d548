"""Load attribution graphs in the circuit-tracer / Neuronpedia JSON schema into edge arrays.

Schema (only the starred keys are required; the others are kept when present)::

    {"metadata": {"slug", "prompt", "prompt_tokens", "scan", ...},
     "qParams": {...},
     "nodes*": [{"node_id*", "layer*", "feature_type*", "feature", "ctx_idx",
                 "token_prob", "is_target_logit", "clerp", ...}],
     "links*": [{"source*", "target*", "weight*"}]}

Layer mapping (``AttributionGraph.layers``, int): a numeric layer string ``"k"`` maps to k;
embeddings (``feature_type == "embedding"`` or layer ``"E"``) map to -1, below layer 0;
logits (``feature_type == "logit"``) map to 1 + the largest numeric layer of any non-logit node
(whatever layer string the file gives them; circuit-tracer writes ``n_layers + 1``), so they sit
right above the last layer.

Edge conventions: a link whose source equals its target (self-loop) is dropped; several links
with the same (source, target) are merged into one edge whose weight is their sum. The |weight|
threshold is applied after merging (keep |w| >= threshold). Links touching a dropped error node
are dropped with it. Nodes left without edges are kept (they count in n for the census and the
Erdos-Renyi density). The sign of each kept weight is stored in ``AttributionGraph.signs``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scalelens.errors import ScalelensError

log = logging.getLogger(__name__)

#: Nodes of transcoder-free, neuron-level graphs (scalelens.attribution): one MLP unit (a feature
#: of the down projection's input) at one position.
MLP_UNIT_FEATURE_TYPE = "mlp neuron"
FEATURE_TYPES: tuple[str, ...] = (
    "cross layer transcoder",
    "mlp reconstruction error",
    "embedding",
    "logit",
    MLP_UNIT_FEATURE_TYPE,
)
ERROR_FEATURE_TYPE = "mlp reconstruction error"
EMBEDDING_LAYER = -1


class GraphSchemaError(ScalelensError, ValueError):
    """An attribution-graph file is unreadable or does not follow the expected schema."""


@dataclass(frozen=True, eq=False)
class AttributionGraph:
    """A simple directed attribution graph: nodes 0..n_nodes-1, edges src[i] -> dst[i]."""

    graph_id: str
    node_ids: tuple[str, ...]
    feature_types: tuple[str, ...]
    layers: np.ndarray  # int64 per node; embeddings -1, logits above the last layer
    src: np.ndarray  # int64 per edge
    dst: np.ndarray  # int64 per edge
    weights: np.ndarray  # float64 per edge (merged duplicates), signed
    signs: np.ndarray  # int8 per edge: +1, -1 or 0
    metadata: Mapping[str, object] = field(default_factory=dict)
    model: str = ""
    task: str = ""
    source_path: str = ""

    @property
    def n_nodes(self) -> int:
        """Number of nodes kept (after dropping error nodes when asked)."""
        return len(self.node_ids)

    @property
    def n_edges(self) -> int:
        """Number of distinct directed edges kept."""
        return int(self.src.size)

    @property
    def edge_layer_pairs(self) -> np.ndarray:
        """(n_edges, 2) int64 array of (source layer, target layer) per edge."""
        return np.column_stack([self.layers[self.src], self.layers[self.dst]])


@dataclass(frozen=True)
class GraphFile:
    """One graph file found under ``<root>/<model>/<task>/*.json``."""

    model: str
    task: str
    path: Path


def find_graph_files(root: str | Path, models: tuple[str, ...] | None = None) -> list[GraphFile]:
    """All ``<root>/<model>/<task>/*.json`` files, sorted by (model, task, file name)."""
    root = Path(root)
    if not root.is_dir():
        raise GraphSchemaError(
            f"graph root {root} is not a directory; expected <root>/<model>/<task>/*.json"
        )
    found = []
    for path in sorted(root.glob("*/*/*.json")):
        model, task = path.parent.parent.name, path.parent.name
        if models is None or model in models:
            found.append(GraphFile(model=model, task=task, path=path))
    if models is not None:
        missing = sorted(set(models) - {gf.model for gf in found})
        if missing:
            raise GraphSchemaError(
                f"no graphs for model(s) {missing} under {root}; "
                f"expected {root}/<model>/<task>/*.json"
            )
    return found


def load_attribution_graph(
    path: str | Path,
    *,
    drop_error_nodes: bool = True,
    weight_threshold: float = 0.0,
    model: str = "",
    task: str = "",
) -> AttributionGraph:
    """Read one graph JSON file; malformed files raise GraphSchemaError naming path and problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphSchemaError(f"{path}: file not found") from None
    except OSError as exc:
        raise GraphSchemaError(f"{path}: cannot read file ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GraphSchemaError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_attribution_graph(
        data,
        source=str(path),
        drop_error_nodes=drop_error_nodes,
        weight_threshold=weight_threshold,
        model=model,
        task=task,
    )


def load_graph_file(gf: GraphFile, **options) -> AttributionGraph:
    """load_attribution_graph for a GraphFile, carrying its model and task."""
    return load_attribution_graph(gf.path, model=gf.model, task=gf.task, **options)


def _require(obj: object, key: str, where: str, source: str) -> object:
    if not isinstance(obj, Mapping) or key not in obj:
        raise GraphSchemaError(f"{source}: {where} is missing required key {key!r}")
    return obj[key]


def _numeric_layer(layer: object, where: str, source: str) -> int | None:
    """int for numeric layer values ("12", 12), None for "E"; raises for anything else."""
    if isinstance(layer, bool):
        raise GraphSchemaError(f"{source}: {where} has layer {layer!r}; expected 'E' or an integer")
    if isinstance(layer, int):
        return layer
    if isinstance(layer, str):
        if layer.strip().upper() == "E":
            return None
        try:
            return int(layer.strip())
        except ValueError:
            pass
    raise GraphSchemaError(f"{source}: {where} has layer {layer!r}; expected 'E' or an integer")


def _node_layers(nodes: list, source: str) -> tuple[list[str], list[str], np.ndarray]:
    ids, types, raw_layers = [], [], []
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        node_id = _require(node, "node_id", where, source)
        ftype = _require(node, "feature_type", where, source)
        layer = _numeric_layer(_require(node, "layer", where, source), where, source)
        if ftype not in FEATURE_TYPES:
            raise GraphSchemaError(
                f"{source}: {where} has feature_type {ftype!r}; "
                f"expected one of {list(FEATURE_TYPES)}"
            )
        if layer is None and ftype not in ("embedding",):
            raise GraphSchemaError(
                f"{source}: {where} ({ftype}) has layer 'E', which only embeddings may have"
            )
        ids.append(str(node_id))
        types.append(ftype)
        raw_layers.append(layer)
    numeric = [
        lay
        for lay, t in zip(raw_layers, types)
        if lay is not None and t not in ("logit", "embedding")
    ]
    logit_layer = (max(numeric) if numeric else EMBEDDING_LAYER) + 1
    layers = np.array(
        [
            EMBEDDING_LAYER if t == "embedding" else logit_layer if t == "logit" else lay
            for lay, t in zip(raw_layers, types)
        ],
        dtype=np.int64,
    )
    return ids, types, layers


def _link_arrays(links: list, index: Mapping[str, int], source: str) -> tuple[np.ndarray, ...]:
    src, dst, w = [], [], []
    for i, link in enumerate(links):
        where = f"links[{i}]"
        s = _require(link, "source", where, source)
        t = _require(link, "target", where, source)
        weight = _require(link, "weight", where, source)
        for end, node in (("source", s), ("target", t)):
            if str(node) not in index:
                raise GraphSchemaError(
                    f"{source}: {where} {end} {node!r} is not a node_id in 'nodes'"
                )
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not math.isfinite(weight)
        ):
            raise GraphSchemaError(
                f"{source}: {where} has weight {weight!r}; expected a finite number"
            )
        src.append(index[str(s)])
        dst.append(index[str(t)])
        w.append(float(weight))
    return (
        np.array(src, dtype=np.int64),
        np.array(dst, dtype=np.int64),
        np.array(w, dtype=np.float64),
    )


def _simplify_edges(
    src: np.ndarray, dst: np.ndarray, w: np.ndarray, n_nodes: int, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop self-loops, merge duplicate (source, target) links by summing weights."""
    loops = src == dst
    if loops.any():
        log.info("%s: dropped %d self-loop link(s)", source, int(loops.sum()))
    src, dst, w = src[~loops], dst[~loops], w[~loops]
    codes = src * max(n_nodes, 1) + dst
    uniq, inverse = np.unique(codes, return_inverse=True)
    if uniq.size < codes.size:
        log.info(
            "%s: merged %d duplicate link(s) by summing weights", source, codes.size - uniq.size
        )
    merged = np.zeros(uniq.size, dtype=np.float64)
    np.add.at(merged, inverse, w)
    return uniq // max(n_nodes, 1), uniq % max(n_nodes, 1), merged


def parse_attribution_graph(
    data: object,
    *,
    source: str = "<graph>",
    drop_error_nodes: bool = True,
    weight_threshold: float = 0.0,
    model: str = "",
    task: str = "",
) -> AttributionGraph:
    """Build an AttributionGraph from an already-decoded JSON object (see module docstring)."""
    if not (isinstance(weight_threshold, (int, float)) and weight_threshold >= 0):
        raise ValueError(f"weight_threshold must be a number >= 0, got {weight_threshold!r}")
    if not isinstance(data, Mapping):
        raise GraphSchemaError(
            f"{source}: top level must be a JSON object with 'nodes' and 'links'"
        )
    nodes = _require(data, "nodes", "top level", source)
    links = _require(data, "links", "top level", source)
    if not isinstance(nodes, list) or not isinstance(links, list):
        raise GraphSchemaError(f"{source}: 'nodes' and 'links' must be JSON lists")
    ids, types, layers = _node_layers(nodes, source)
    index = {}
    for i, node_id in enumerate(ids):
        if node_id in index:
            raise GraphSchemaError(
                f"{source}: node_id {node_id!r} appears more than once in 'nodes'"
            )
        index[node_id] = i
    src, dst, w = _link_arrays(links, index, source)

    keep = np.ones(len(ids), dtype=bool)
    if drop_error_nodes:
        keep = np.array([t != ERROR_FEATURE_TYPE for t in types], dtype=bool)
    new_index = np.cumsum(keep) - 1
    edge_ok = keep[src] & keep[dst] if src.size else np.zeros(0, dtype=bool)
    src, dst, w = new_index[src[edge_ok]], new_index[dst[edge_ok]], w[edge_ok]
    n_kept = int(keep.sum())
    src, dst, w = _simplify_edges(src, dst, w, n_kept, source)
    strong = np.abs(w) >= weight_threshold
    src, dst, w = src[strong], dst[strong], w[strong]

    metadata = data.get("metadata", {})
    if not isinstance(metadata, Mapping):
        raise GraphSchemaError(f"{source}: 'metadata' must be a JSON object when present")
    graph_id = str(metadata.get("slug") or Path(source).stem)
    kept_ids = tuple(i for i, k in zip(ids, keep) if k)
    kept_types = tuple(t for t, k in zip(types, keep) if k)
    return AttributionGraph(
        graph_id=graph_id,
        node_ids=kept_ids,
        feature_types=kept_types,
        layers=layers[keep],
        src=src.astype(np.int64),
        dst=dst.astype(np.int64),
        weights=w,
        signs=np.sign(w).astype(np.int8),
        metadata=dict(metadata),
        model=model,
        task=task,
        source_path=source,
    )


def graph_from_edges(
    n_nodes: int,
    src: np.ndarray,
    dst: np.ndarray,
    *,
    layers: np.ndarray | None = None,
    graph_id: str = "edges",
    model: str = "",
    task: str = "",
) -> AttributionGraph:
    """AttributionGraph from edge arrays of a simple digraph (all weights 1, layers 0 if absent)."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    if src.shape != dst.shape or src.ndim != 1:
        raise ValueError(
            f"src and dst must be equal-length 1-D arrays, got {src.shape}, {dst.shape}"
        )
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n_nodes):
        raise ValueError(f"edge endpoints must lie in [0, {n_nodes})")
    if np.any(src == dst):
        raise ValueError("self-loops are not allowed; drop edges with src == dst first")
    if np.unique(src * max(n_nodes, 1) + dst).size != src.size:
        raise ValueError("duplicate edges are not allowed; merge them first")
    layers = (
        np.zeros(n_nodes, dtype=np.int64) if layers is None else np.asarray(layers, dtype=np.int64)
    )
    if layers.shape != (n_nodes,):
        raise ValueError(f"layers must have shape ({n_nodes},), got {layers.shape}")
    weights = np.ones(src.size, dtype=np.float64)
    return AttributionGraph(
        graph_id=graph_id,
        node_ids=tuple(str(i) for i in range(n_nodes)),
        feature_types=("cross layer transcoder",) * n_nodes,
        layers=layers,
        src=src,
        dst=dst,
        weights=weights,
        signs=np.ones(src.size, dtype=np.int8),
        model=model,
        task=task,
    )
