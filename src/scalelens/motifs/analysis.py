"""One call per graph: census, null ensemble, Z, SP and enrichment (the census stage's unit)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from scalelens.motifs.census import CONNECTED_LABELS, CONNECTED_MASK, TRIAD_LABELS, triad_census
from scalelens.motifs.loader import AttributionGraph
from scalelens.motifs.nulls import null_censuses, null_spec_for_graph
from scalelens.motifs.zscores import Z_THRESHOLD, enrichment, significance_profile, z_scores

#: Per-class columns written by GraphMotifResult.table_row (prefix + "_" + label).
TABLE_PREFIXES: tuple[str, ...] = ("census", "null_mean", "null_std", "z", "sp")


@dataclass(frozen=True, eq=False)
class GraphMotifResult:
    """Motif statistics of one graph; arrays are (16,) in TRIAD_LABELS order.

    sp is 0 for 003/012/102 (outside the significance profile); null_counts is
    (n_random, 16) int64 and may be None when the result was rebuilt from JSON without it.
    """

    graph_id: str
    model: str
    task: str
    n_nodes: int
    n_edges: int
    null_model: str
    n_random: int
    seed: int
    swaps_per_edge: float
    z_threshold: float
    observed: np.ndarray
    null_mean: np.ndarray
    null_std: np.ndarray
    z: np.ndarray
    zero_variance: np.ndarray
    sp: np.ndarray
    enriched: tuple[str, ...]
    anti_enriched: tuple[str, ...]
    null_counts: np.ndarray | None = None

    def to_json_dict(self, include_null_counts: bool = False) -> dict:
        """JSON-ready dict keyed by MAN label (SP only for the connected classes)."""
        out = {
            "graph_id": self.graph_id,
            "model": self.model,
            "task": self.task,
            "n_nodes": self.n_nodes,
            "n_edges": self.n_edges,
            "null_model": self.null_model,
            "n_random": self.n_random,
            "seed": self.seed,
            "swaps_per_edge": self.swaps_per_edge,
            "z_threshold": self.z_threshold,
            "census": {lab: int(v) for lab, v in zip(TRIAD_LABELS, self.observed)},
            "null_mean": _by_label(self.null_mean),
            "null_std": _by_label(self.null_std),
            "z": _by_label(self.z),
            "zero_variance": {lab: bool(v) for lab, v in zip(TRIAD_LABELS, self.zero_variance)},
            "sp": {lab: float(v) for lab, v, m in zip(TRIAD_LABELS, self.sp, CONNECTED_MASK) if m},
            "enriched": list(self.enriched),
            "anti_enriched": list(self.anti_enriched),
        }
        if include_null_counts and self.null_counts is not None:
            out["null_counts"] = {
                lab: self.null_counts[:, k].tolist() for k, lab in enumerate(TRIAD_LABELS)
            }
        return out

    @classmethod
    def from_json_dict(cls, d: Mapping) -> GraphMotifResult:
        """Inverse of to_json_dict (reads classes by label, so key order does not matter)."""
        try:
            null_counts = None
            if "null_counts" in d:
                null_counts = np.array(
                    [d["null_counts"][lab] for lab in TRIAD_LABELS], dtype=np.int64
                ).T
            return cls(
                graph_id=str(d["graph_id"]),
                model=str(d["model"]),
                task=str(d["task"]),
                n_nodes=int(d["n_nodes"]),
                n_edges=int(d["n_edges"]),
                null_model=str(d["null_model"]),
                n_random=int(d["n_random"]),
                seed=int(d["seed"]),
                swaps_per_edge=float(d["swaps_per_edge"]),
                z_threshold=float(d["z_threshold"]),
                observed=np.array([d["census"][lab] for lab in TRIAD_LABELS], dtype=np.int64),
                null_mean=_from_labels(d["null_mean"]),
                null_std=_from_labels(d["null_std"]),
                z=_from_labels(d["z"]),
                zero_variance=np.array([bool(d["zero_variance"][lab]) for lab in TRIAD_LABELS]),
                sp=np.array([float(d["sp"].get(lab, 0.0)) for lab in TRIAD_LABELS]),
                enriched=tuple(d["enriched"]),
                anti_enriched=tuple(d["anti_enriched"]),
                null_counts=null_counts,
            )
        except KeyError as exc:
            raise ValueError(f"motif result dict is missing key {exc.args[0]!r}") from None

    def table_row(self) -> dict:
        """Flat dict for one CSV row: identifiers, sizes and <prefix>_<label> per class."""
        row = {
            "graph_id": self.graph_id,
            "model": self.model,
            "task": self.task,
            "n_nodes": self.n_nodes,
            "n_edges": self.n_edges,
            "null_model": self.null_model,
            "n_random": self.n_random,
            "seed": self.seed,
            "enriched": " ".join(self.enriched),
            "anti_enriched": " ".join(self.anti_enriched),
        }
        arrays = dict(
            zip(TABLE_PREFIXES, (self.observed, self.null_mean, self.null_std, self.z, self.sp))
        )
        for prefix, values in arrays.items():
            for lab, v in zip(TRIAD_LABELS, values):
                if prefix != "sp" or lab in CONNECTED_LABELS:
                    row[f"{prefix}_{lab}"] = int(v) if prefix == "census" else float(v)
        return row


def _by_label(values: np.ndarray) -> dict[str, float]:
    return {lab: float(v) for lab, v in zip(TRIAD_LABELS, values)}


def _from_labels(d: Mapping[str, float]) -> np.ndarray:
    return np.array([float(d[lab]) for lab in TRIAD_LABELS], dtype=np.float64)


def graph_seed(base_seed: int, *keys: str) -> int:
    """Stable per-graph seed from a base seed and names (e.g. model, task, graph_id)."""
    entropy = [int(base_seed)] + [zlib.crc32(k.encode("utf-8")) for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def analyze_graph(
    graph: AttributionGraph,
    *,
    null_model: str = "config",
    n_random: int = 100,
    seed: int = 0,
    swaps_per_edge: float = 10.0,
    z_threshold: float = Z_THRESHOLD,
    n_jobs: int = 1,
    executor: Executor | None = None,
    progress: bool = False,
    census_method: str = "auto",
) -> GraphMotifResult:
    """Census, n_random null censuses, Z, SP and enrichment of one graph (reproducible by seed).

    null_model: "config" | "er" | "layer" (see scalelens.motifs.nulls); n_jobs > 1 (or an
    executor) runs the null samples in processes with results identical to n_jobs=1;
    census_method: "auto" | "bitset" | "igraph" (identical counts).
    """
    if n_random < 2:
        raise ValueError(f"n_random must be >= 2 to estimate a null std, got {n_random}")
    observed = triad_census(graph.n_nodes, graph.src, graph.dst, census_method)
    spec = null_spec_for_graph(graph, null_model, swaps_per_edge, census_method)
    nulls = null_censuses(spec, n_random, seed, n_jobs=n_jobs, executor=executor, progress=progress)
    zs = z_scores(observed, nulls)
    up, down = enrichment(zs.z, z_threshold)
    return GraphMotifResult(
        graph_id=graph.graph_id,
        model=graph.model,
        task=graph.task,
        n_nodes=graph.n_nodes,
        n_edges=graph.n_edges,
        null_model=null_model,
        n_random=n_random,
        seed=int(seed),
        swaps_per_edge=float(swaps_per_edge),
        z_threshold=float(z_threshold),
        observed=observed,
        null_mean=zs.null_mean,
        null_std=zs.null_std,
        z=zs.z,
        zero_variance=zs.zero_variance,
        sp=significance_profile(zs.z),
        enriched=up,
        anti_enriched=down,
        null_counts=nulls,
    )
