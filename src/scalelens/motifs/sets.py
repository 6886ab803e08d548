"""What a graph set is: where its graphs come from, which model made them, that model's family
and size, the graphs' quality scores, and whether the set is SYNTHETIC.

A graph set is one folder of graphs ``<set>/<task>/*.json``: the attribution graphs stage
`attribute` built for a model of the ladder (source ``attribution``, named by the model's slug)
or a folder imported under ``motifs.graphs_dir`` (source ``imported``: Neuronpedia exports, a
published baseline, the synthetic sets). Its facts are read from the graphs themselves:

- model key, family, n_params: ``metadata.scalelens`` (``model.key``, ``family``,
  ``n_params``), which stage attribute and the synthetic generator write; else the registry
  entry named by the set's name or by ``metadata.scan`` (a registry key, a hub id, or a hub
  id's name part such as Neuronpedia's ``gemma-2-2b``); else an error saying what to add. Only
  a baseline (compared beside the models, never a scale point) may go without a size.
- quality: the means over the set's graphs of ``metadata.scalelens.quality`` (faithfulness and
  its random baseline, influence kept, completeness error, nodes, edges); None where no graph
  has a quality block (imported and synthetic sets).
- synthetic: True when the set's name starts with ``synthetic-`` or any graph's metadata says
  ``"synthetic": true`` (at the top of ``metadata`` or in ``metadata.scalelens``). Every output
  derived from a synthetic set says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scalelens.errors import ScalelensError

SYNTHETIC_PREFIX = "synthetic-"
SOURCES: tuple[str, ...] = ("attribution", "imported")
#: metadata.scalelens.quality fields averaged over a set's graphs (n_nodes / n_edges are the
#: attribution graph's own counts, before the census drops anything).
QUALITY_FIELDS: tuple[str, ...] = ("faithfulness", "faithfulness_random", "influence_kept",
                                   "completeness_max_rel_error", "n_nodes", "n_edges")


class GraphSetError(ScalelensError):
    """A graph set's facts are missing or contradict each other; the message says what to add."""


def is_synthetic_name(name: str) -> bool:
    """A set named ``synthetic-*`` is synthetic whatever its graphs say."""
    return name.startswith(SYNTHETIC_PREFIX)


def _scalelens(metadata: Mapping) -> Mapping:
    block = metadata.get("scalelens") if isinstance(metadata, Mapping) else None
    return block if isinstance(block, Mapping) else {}


def graph_is_synthetic(metadata: Mapping) -> bool:
    """True when a graph's metadata (top level or metadata.scalelens) says ``synthetic: true``."""
    return metadata.get("synthetic") is True or _scalelens(metadata).get("synthetic") is True


def graph_quality(metadata: Mapping) -> dict[str, float | None] | None:
    """The QUALITY_FIELDS of a graph's metadata.scalelens.quality; None without a quality block."""
    quality = _scalelens(metadata).get("quality")
    if not isinstance(quality, Mapping):
        return None
    out = {}
    for name in QUALITY_FIELDS:
        value = quality.get(name)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        out[name] = float(value) if ok and math.isfinite(value) else None
    return out


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(sum(values) / len(values)) if values else None


def mean_quality(qualities: Sequence[Mapping | None]) -> dict[str, float | None]:
    """Mean of each quality field over the graphs that have it, plus the worst completeness."""
    present = [q for q in qualities if q is not None]
    out = {name: _mean(q.get(name) for q in present) for name in QUALITY_FIELDS}
    worst = [q["completeness_max_rel_error"] for q in present
             if q.get("completeness_max_rel_error") is not None]
    out["completeness_max_rel_error_max"] = max(worst) if worst else None
    return out


@dataclass(frozen=True)
class GraphSetFacts:
    """One graph set: source, model, family, size, graph quality and the synthetic mark."""

    name: str
    source: str  # attribution | imported
    model_key: str
    family: str
    family_source: str
    family_inferred: bool
    n_params: float | None
    n_params_source: str
    synthetic: bool
    synthetic_reason: str  # why it is synthetic; "" when it is not
    n_graphs: int
    tasks: tuple[str, ...]
    n_graphs_with_quality: int
    quality: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def size_b(self) -> float | None:
        return None if self.n_params is None else self.n_params / 1e9

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "model_key": self.model_key,
                "family": self.family, "family_source": self.family_source,
                "family_inferred": self.family_inferred, "n_params": self.n_params,
                "n_params_source": self.n_params_source, "size_b": self.size_b,
                "synthetic": self.synthetic, "synthetic_reason": self.synthetic_reason,
                "n_graphs": self.n_graphs, "tasks": list(self.tasks),
                "n_graphs_with_quality": self.n_graphs_with_quality,
                "quality": dict(self.quality)}

    @classmethod
    def from_dict(cls, d: Mapping) -> GraphSetFacts:
        try:
            return cls(name=str(d["name"]), source=str(d["source"]),
                       model_key=str(d["model_key"]), family=str(d["family"]),
                       family_source=str(d["family_source"]),
                       family_inferred=bool(d["family_inferred"]),
                       n_params=None if d["n_params"] is None else float(d["n_params"]),
                       n_params_source=str(d["n_params_source"]),
                       synthetic=bool(d["synthetic"]),
                       synthetic_reason=str(d["synthetic_reason"]), n_graphs=int(d["n_graphs"]),
                       tasks=tuple(d["tasks"]),
                       n_graphs_with_quality=int(d["n_graphs_with_quality"]),
                       quality=dict(d["quality"]))
        except KeyError as exc:
            raise GraphSetError(f"graph set facts are missing {exc.args[0]!r}: rerun "
                                "motif_census") from None


def registry_entry(name: str, registry: Mapping | None = None):
    """The registry spec a name refers to: a registry key, a hub id (both as
    ``scalelens.sweeps.verdicts.model_family`` reads them) or a hub id's name part (Neuronpedia
    scans: ``gemma-2-2b`` for google/gemma-2-2b); None otherwise."""
    from scalelens.sweeps.verdicts import model_family

    if registry is None:
        from scalelens.models.registry import REGISTRY as registry  # noqa: N811
    if not name:
        return None
    family = model_family(name, registry=registry)
    if family.registry_key is not None:
        return registry[family.registry_key]
    wanted = name.strip().lower()
    for spec in registry.values():
        if spec.hub_id.split("/")[-1].lower() == wanted:
            return spec
    return None


def _agreed(name: str, values: Sequence, what: str):
    """The one value every graph gives (None when none gives one); an error when they differ."""
    given = sorted({repr(v): v for v in values if v is not None}.items())
    if len(given) > 1:
        raise GraphSetError(f"graph set {name!r}: its graphs disagree on {what} "
                            f"({', '.join(k for k, _ in given)}); one set holds one model's graphs")
    return given[0][1] if given else None


def _number(value) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) and value > 0 else None


def resolve_set_facts(name: str, source: str, metadatas: Sequence[Mapping],
                      tasks: Sequence[str], *, require_size: bool = True,
                      registry: Mapping | None = None) -> GraphSetFacts:
    """The facts of a set from its graphs' metadata, in the order of the module docstring.

    require_size=False (the baseline) lets family and size stay unknown ("unknown", None).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if not metadatas:
        raise GraphSetError(f"graph set {name!r} has no graphs")
    if registry is None:
        from scalelens.models.registry import REGISTRY as registry  # noqa: N811
    blocks = [_scalelens(md) for md in metadatas]
    keys = [b.get("model", {}).get("key") if isinstance(b.get("model"), Mapping) else None
            for b in blocks]
    scan = _agreed(name, [md.get("scan") or None for md in metadatas], "metadata.scan")
    model_key = str(_agreed(name, keys, "metadata.scalelens.model.key") or scan or name)
    family = _agreed(name, [b.get("family") or None for b in blocks], "metadata.scalelens.family")
    n_params = _agreed(name, [_number(b.get("n_params")) for b in blocks],
                       "metadata.scalelens.n_params")
    n_source = _agreed(name, [b.get("n_params_source") for b in blocks],
                       "metadata.scalelens.n_params_source")
    synthetic_graphs = sum(graph_is_synthetic(md) for md in metadatas)
    reasons = []
    if is_synthetic_name(name):
        reasons.append(f"the set's name starts with {SYNTHETIC_PREFIX!r}")
    if synthetic_graphs:
        reasons.append(f"{synthetic_graphs} of its {len(metadatas)} graphs say synthetic: true")
    synthetic = bool(reasons)

    spec, found_by = None, ""
    for candidate, how in ((name, "the set's name"), (model_key, "the model key"),
                           (scan, "metadata.scan")):
        spec = registry_entry(candidate or "", registry)
        if spec is not None:
            found_by = f"registry entry {spec.key} (by {how})"
            break
    known_to_registry = spec is not None
    if family is not None:
        family_source = "graph metadata (metadata.scalelens.family)"
        family_inferred = not known_to_registry and not synthetic
    elif spec is not None:
        family, family_source, family_inferred = spec.family, found_by, False
    else:
        family, family_source, family_inferred = "unknown", "not given", True
    if n_params is not None:
        n_params_source = ("graph metadata (metadata.scalelens.n_params"
                           + (f": {n_source})" if n_source else ")"))
    elif spec is not None:
        n_params, n_params_source = float(spec.n_params), f"{found_by}, nominal size"
    else:
        n_params_source = "not given (a baseline needs no size)"
    missing = [what for what, value in (("family", family if family != "unknown" else None),
                                        ("n_params", n_params)) if value is None]
    if missing and require_size:
        raise GraphSetError(
            f"graph set {name!r}: no model {' or '.join(missing)}: add "
            f"{', '.join(repr(m) for m in missing)} to metadata.scalelens of its graphs, or name "
            f"the set (or its graphs' metadata.scan) after a registry key or hub id "
            f"(registry keys: {', '.join(sorted(registry))})")
    qualities = [graph_quality(md) for md in metadatas]
    return GraphSetFacts(
        name=name, source=source, model_key=model_key, family=str(family),
        family_source=family_source, family_inferred=bool(family_inferred), n_params=n_params,
        n_params_source=n_params_source, synthetic=synthetic,
        synthetic_reason="; ".join(reasons), n_graphs=len(metadatas),
        tasks=tuple(sorted(set(tasks))),
        n_graphs_with_quality=sum(q is not None for q in qualities),
        quality=mean_quality(qualities))
