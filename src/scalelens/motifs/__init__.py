"""Motif (triad) census of attribution graphs across model scales.

Per graph: ``load_attribution_graph`` -> ``analyze_graph`` -> ``GraphMotifResult``.
Per graph set (a model's attribution graphs or an imported set), every null model:
``census_graph_set`` -> ``SetCensus`` (with the set's facts, ``GraphSetFacts``).
All sets: ``run_motif_study`` -> ``MotifScaleStudy`` (one ``run_scale_analysis`` per null, read
under the sweeps' premise logic); figures in ``scalelens.plots.motifs``.
Names are imported lazily from their submodules so the CLI starts without scipy.stats.
"""

from importlib import import_module

_EXPORTS = {
    "analysis": ("GraphMotifResult", "analyze_graph", "graph_seed"),
    "census": (
        "CONNECTED_LABELS",
        "KEY_MOTIFS",
        "MOTIF_FFL",
        "TRIAD_LABELS",
        "census_as_dict",
        "triad_census",
    ),
    "loader": (
        "AttributionGraph",
        "GraphFile",
        "GraphSchemaError",
        "find_graph_files",
        "graph_from_edges",
        "load_attribution_graph",
        "load_graph_file",
    ),
    "nulls": ("NULL_MODELS", "NullSpec", "null_censuses"),
    "profiles": ("ModelProfile", "build_model_profile", "ffl_backbone"),
    "scale": ("ScaleAnalysis", "format_params", "run_scale_analysis"),
    "sets": ("GraphSetError", "GraphSetFacts", "is_synthetic_name", "resolve_set_facts"),
    "set_census": ("CensusSettings", "SetCensus", "census_graph_set", "load_set_graphs"),
    "study": ("MotifScaleStudy", "run_motif_study"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'scalelens.motifs' has no attribute {name!r}")
    return getattr(import_module(f"scalelens.motifs.{_WHERE[name]}"), name)


def __dir__():
    return __all__
