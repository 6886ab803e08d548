"""The shipped SYNTHETIC graph sets: names no model, metadata says synthetic everywhere, the
generator is deterministic, and the FFL trend is what the generator put in (a demo)."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from scalelens.models.registry import REGISTRY
from scalelens.motifs.census import label_index
from scalelens.motifs.loader import find_graph_files, load_graph_file
from scalelens.motifs.set_census import CensusSettings, census_graph_set, load_set_graphs
from scalelens.motifs.sets import is_synthetic_name, registry_entry
from scalelens.motifs.study import run_motif_study

ROOT = Path(__file__).resolve().parents[1]
GRAPHS = ROOT / "data" / "graphs"
MODELS = ("synthetic-small", "synthetic-medium", "synthetic-large")
BASELINE = "synthetic-baseline"
NOMINAL = {"synthetic-small": 1e8, "synthetic-medium": 1e9, "synthetic-large": 1e10,
           BASELINE: 3e9}


def load_generator():
    """Import data/make_synthetic_graphs.py (a script, not a package module)."""
    name = "make_synthetic_graphs"
    spec = importlib.util.spec_from_file_location(name, ROOT / "data" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


def test_layout_size_and_no_set_named_after_a_model():
    files = find_graph_files(GRAPHS)
    per_set = {}
    for f in files:
        per_set.setdefault(f.model, set()).add(f.task)
    assert set(per_set) == {*MODELS, BASELINE}
    assert all(tasks == {"arithmetic", "factual", "reasoning", "safety"}
               for tasks in per_set.values())
    assert sum(f.path.stat().st_size for f in files) < 2_000_000
    for name in per_set:
        assert is_synthetic_name(name) and registry_entry(name) is None
        assert not any(key in name for key in REGISTRY)


def test_every_graph_says_synthetic_with_nominal_facts():
    for f in find_graph_files(GRAPHS):
        meta = json.loads(f.path.read_text())["metadata"]
        block = meta["scalelens"]
        assert meta["synthetic"] is True and block["synthetic"] is True
        assert block["family"] == "synthetic" and block["n_params"] == NOMINAL[f.model]
        assert "nominal" in block["n_params_source"] and block["task"] == f.task
        assert block["model"]["key"] == f.model == meta["scan"]


def test_generator_is_deterministic_and_matches_committed_files():
    gen = load_generator()
    assert [m.key for m in gen.MODELS] == list(MODELS) and gen.BASELINE.key == BASELINE
    spec = next(m for m in gen.MODELS if m.key == "synthetic-medium")
    fresh = gen.make_graph(spec, "factual", 2, seed=2025)
    committed = json.loads(
        (GRAPHS / "synthetic-medium" / "factual" / "synthetic-medium-factual-2.json").read_text())
    assert fresh == committed


def test_graphs_are_layered_with_error_nodes():
    f = next(f for f in find_graph_files(GRAPHS) if f.model == "synthetic-large")
    with_errors = load_graph_file(f, drop_error_nodes=False)
    g = load_graph_file(f)
    assert with_errors.n_nodes > g.n_nodes and with_errors.n_edges > g.n_edges
    assert np.all(g.layers[g.src] < g.layers[g.dst])  # DAG along layers
    assert {"embedding", "logit", "cross layer transcoder"} <= set(g.feature_types)


@pytest.fixture(scope="module")
def demo_study():
    settings = CensusSettings(("config", "layer"), 8, 5.0, True, 0.0, 2.0, 0)
    censuses = {s: census_graph_set(s, load_set_graphs(GRAPHS / s), "imported", settings)
                for s in (*MODELS, BASELINE)}
    return run_motif_study(censuses, ("config", "layer"), BASELINE)


def test_demo_shows_what_the_generator_put_in_and_says_synthetic(demo_study):
    s = demo_study
    assert s.models == MODELS and s.synthetic
    assert set(s.synthetic_sets) == {*MODELS, BASELINE}
    for null in ("config", "layer"):
        ffl = s.by_null[null].analysis.mean_z[:, label_index("030T")]
        assert np.all(np.diff(ffl) > 0)  # by construction: the closure knob grows with size
    assert s.premise.decided_on == ("synthetic",)  # the nominal family of the three sets
    assert all(r["synthetic"] is True for r in s.trend_rows() + s.baseline_rows())
