"""The census of one graph set under every null model: what stage `motif_census` writes.

Per graph and per null model: the triad census, n_random null censuses, Z, SP and enrichment
(``analyze_graph``), beside the graph's quality scores. Per set: its facts
(``scalelens.motifs.sets``), SYNTHETIC mark included. Graph k of the set under null model `null`
draws its null graphs from ``graph_seed(seed, set, task, graph_id, null)``: independent streams
per graph and per null, the same for any n_jobs.

Views: ``to_json_dict`` (census.json), ``table`` (census.csv: one row per (graph, null)),
``null_arrays`` (null_counts.npz: one (n_random, 16) array per (null, graph)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from scalelens.motifs.analysis import GraphMotifResult, analyze_graph, graph_seed
from scalelens.motifs.census import MOTIF_FFL, TRIAD_LABELS, label_index
from scalelens.motifs.loader import AttributionGraph, find_graph_files, load_graph_file
from scalelens.motifs.nulls import NULL_MODELS
from scalelens.motifs.sets import (
    QUALITY_FIELDS,
    GraphSetError,
    GraphSetFacts,
    graph_is_synthetic,
    graph_quality,
    resolve_set_facts,
)

NULL_DESCRIPTIONS = {
    "config": "configuration null: degree-preserving edge swaps",
    "layer": "layer-pair configuration null: swaps within each (source layer, target layer) pair",
    "er": "Erdos-Renyi G(n, m) null",
}


@dataclass(frozen=True)
class CensusSettings:
    """How a set was censused (one value per knob, for every graph and null)."""

    null_models: tuple[str, ...]
    n_random: int
    swaps_per_edge: float
    drop_error_nodes: bool
    weight_threshold: float
    z_threshold: float
    seed: int

    def __post_init__(self):
        bad = [n for n in self.null_models if n not in NULL_MODELS]
        if not self.null_models or bad or len(set(self.null_models)) != len(self.null_models):
            raise ValueError(f"null_models must list distinct models of {NULL_MODELS}, got "
                             f"{list(self.null_models)}")
        if self.n_random < 2:
            raise GraphSetError(f"motifs.n_random is {self.n_random}; a Z-score needs at least "
                                "2 null graphs per graph")

    def to_dict(self) -> dict:
        return {"null_models": list(self.null_models), "n_random": self.n_random,
                "swaps_per_edge": self.swaps_per_edge, "drop_error_nodes": self.drop_error_nodes,
                "weight_threshold": self.weight_threshold, "z_threshold": self.z_threshold,
                "seed": self.seed}

    @classmethod
    def from_dict(cls, d: Mapping) -> CensusSettings:
        return cls(tuple(d["null_models"]), int(d["n_random"]), float(d["swaps_per_edge"]),
                   bool(d["drop_error_nodes"]), float(d["weight_threshold"]),
                   float(d["z_threshold"]), int(d["seed"]))


@dataclass(frozen=True, eq=False)
class GraphCensus:
    """One graph of a set: its file, task, quality scores and its result under each null."""

    graph_id: str
    task: str
    file: str
    synthetic: bool
    quality: Mapping[str, float | None] | None
    results: Mapping[str, GraphMotifResult]

    def to_dict(self) -> dict:
        return {"graph_id": self.graph_id, "task": self.task, "file": self.file,
                "synthetic": self.synthetic, "quality": self.quality,
                "results": {null: r.to_json_dict() for null, r in self.results.items()}}

    @classmethod
    def from_dict(cls, d: Mapping) -> GraphCensus:
        return cls(str(d["graph_id"]), str(d["task"]), str(d["file"]), bool(d["synthetic"]),
                   d["quality"], {null: GraphMotifResult.from_json_dict(r)
                                  for null, r in d["results"].items()})


@dataclass(frozen=True, eq=False)
class SetCensus:
    """Every graph of one set under every null model, with the set's facts."""

    facts: GraphSetFacts
    settings: CensusSettings
    graphs: tuple[GraphCensus, ...]

    @property
    def name(self) -> str:
        return self.facts.name

    @property
    def synthetic(self) -> bool:
        return self.facts.synthetic

    @property
    def null_models(self) -> tuple[str, ...]:
        return self.settings.null_models

    def results(self, null_model: str) -> list[GraphMotifResult]:
        """The per-graph results under one null model (graph order)."""
        if null_model not in self.null_models:
            raise GraphSetError(
                f"graph set {self.name!r} was censused under {list(self.null_models)}, not "
                f"{null_model!r}: rerun motif_census for it (dvc repro motif_census@{self.name})")
        return [g.results[null_model] for g in self.graphs]

    def summary(self) -> dict:
        """Per null: graphs, mean FFL Z, % graphs with Z(030T) >= z_threshold; census sizes."""
        k = label_index(MOTIF_FFL)
        out = {"n_graphs": len(self.graphs),
               "mean_nodes": float(np.mean([g.results[self.null_models[0]].n_nodes
                                            for g in self.graphs])),
               "mean_edges": float(np.mean([g.results[self.null_models[0]].n_edges
                                            for g in self.graphs]))}
        for null in self.null_models:
            z = np.array([r.z[k] for r in self.results(null)])
            out[f"ffl_mean_z.{null}"] = float(z.mean())
            out[f"ffl_pct_enriched.{null}"] = float(100 * np.mean(z >= self.settings.z_threshold))
        return out

    def table(self) -> list[dict]:
        """census.csv rows: one per (graph, null), the set's facts and the graph's quality first."""
        f = self.facts
        rows = []
        for g in self.graphs:
            quality = g.quality or {}
            for null in self.null_models:
                rows.append({
                    "graph_set": f.name, "synthetic": f.synthetic or g.synthetic,
                    "source": f.source, "model_key": f.model_key, "family": f.family,
                    "n_params": f.n_params, "file": g.file,
                    **{f"quality_{q}": quality.get(q) for q in QUALITY_FIELDS},
                    **g.results[null].table_row()})
        return rows

    def null_arrays(self) -> dict[str, np.ndarray]:
        """null_counts.npz: '<null>__<task>__<graph_id>' -> (n_random, 16) int64, plus the
        labels, the null models and the synthetic mark."""
        out = {f"{null}__{g.task}__{g.graph_id}": g.results[null].null_counts
               for g in self.graphs for null in self.null_models}
        out.update(labels=np.array(TRIAD_LABELS), null_models=np.array(self.null_models),
                   synthetic=np.array(self.synthetic))
        return out

    def to_json_dict(self) -> dict:
        """census.json: the set's facts, settings, per-null summary and every graph's results."""
        return {"graph_set": self.name, "synthetic": self.synthetic,
                "null_models": list(self.null_models), "facts": self.facts.to_dict(),
                "settings": self.settings.to_dict(), "summary": self.summary(),
                "graphs": [g.to_dict() for g in self.graphs]}

    @classmethod
    def from_json_dict(cls, d: Mapping) -> SetCensus:
        try:
            return cls(GraphSetFacts.from_dict(d["facts"]), CensusSettings.from_dict(d["settings"]),
                       tuple(GraphCensus.from_dict(g) for g in d["graphs"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise GraphSetError(f"census.json does not have the current layout ({exc!r}): rerun "
                                "motif_census") from None


def load_set_graphs(folder: str | Path, drop_error_nodes: bool = True,
                    weight_threshold: float = 0.0) -> list[AttributionGraph]:
    """Every graph of a set folder ``<folder>/<task>/*.json``, sorted by (task, file name)."""
    folder = Path(folder)
    files = find_graph_files(folder.parent, models=(folder.name,))
    return [load_graph_file(gf, drop_error_nodes=drop_error_nodes,
                            weight_threshold=weight_threshold) for gf in files]


def census_graph_set(name: str, graphs: Sequence[AttributionGraph], source: str,
                     settings: CensusSettings, *, require_size: bool = True,
                     n_jobs: int = 1, executor: Executor | None = None,
                     progress: bool = False, root: str | Path | None = None,
                     census_method: str = "auto") -> SetCensus:
    """Facts of the set, then every graph under every null model (reproducible by seed)."""
    facts = resolve_set_facts(name, source, [g.metadata for g in graphs],
                              [g.task for g in graphs], require_size=require_size)
    entries = []
    bar = tqdm(total=len(graphs) * len(settings.null_models), disable=not progress,
               desc=f"motif census {name}", unit="graph x null")
    for g in graphs:
        results = {}
        for null in settings.null_models:
            results[null] = analyze_graph(
                g, null_model=null, n_random=settings.n_random,
                seed=graph_seed(settings.seed, name, g.task, g.graph_id, null),
                swaps_per_edge=settings.swaps_per_edge, z_threshold=settings.z_threshold,
                n_jobs=n_jobs, executor=executor, census_method=census_method)
            bar.update()
        entries.append(GraphCensus(g.graph_id, g.task, _relative(g.source_path, root),
                                   graph_is_synthetic(g.metadata), graph_quality(g.metadata),
                                   results))
    bar.close()
    return SetCensus(facts, settings, tuple(entries))


def _relative(path: str, root: str | Path | None) -> str:
    if root is None:
        return Path(path).as_posix()
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()
