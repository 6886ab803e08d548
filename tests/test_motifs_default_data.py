"""The shipped synthetic graphs: schema, determinism of the generator, scale trend, figures."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from scalelens.motifs import (
    analyze_graph,
    find_graph_files,
    graph_seed,
    load_graph_file,
    run_scale_analysis,
)
from scalelens.motifs.census import label_index
from scalelens.plots.motifs import FIGURE_NAMES, plot_all

ROOT = Path(__file__).resolve().parents[1]
GRAPHS = ROOT / "data" / "graphs"
MODELS = ("gemma3-270m", "gemma3-1b", "gemma3-4b")
PARAMS = {"gemma3-270m": 2.7e8, "gemma3-1b": 1.0e9, "gemma3-4b": 4.0e9}
BASELINE = "baseline-haiku-synthetic"


def load_generator():
    """Import data/make_synthetic_graphs.py (a script, not a package module)."""
    name = "make_synthetic_graphs"
    spec = importlib.util.spec_from_file_location(name, ROOT / "data" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


def test_layout_and_size():
    files = find_graph_files(GRAPHS)
    per_model = {}
    for f in files:
        per_model.setdefault(f.model, set()).add(f.task)
    assert set(per_model) == {*MODELS, BASELINE}
    assert all(
        tasks == {"arithmetic", "factual", "reasoning", "safety"} for tasks in per_model.values()
    )
    assert sum(f.path.stat().st_size for f in files) < 2_000_000


def test_generator_is_deterministic_and_matches_committed_files():
    gen = load_generator()
    spec = next(m for m in gen.MODELS if m.key == "gemma3-1b")
    fresh = gen.make_graph(spec, "factual", 2, seed=2025)
    committed = json.loads(
        (GRAPHS / "gemma3-1b" / "factual" / "gemma3-1b-factual-2.json").read_text()
    )
    assert fresh == committed


def test_graphs_are_layered_with_error_nodes():
    f = next(f for f in find_graph_files(GRAPHS) if f.model == "gemma3-4b")
    with_errors = load_graph_file(f, drop_error_nodes=False)
    g = load_graph_file(f)
    assert with_errors.n_nodes > g.n_nodes and with_errors.n_edges > g.n_edges
    assert np.all(g.layers[g.src] < g.layers[g.dst])  # DAG along layers
    assert {"embedding", "logit", "cross layer transcoder"} <= set(g.feature_types)


@pytest.fixture(scope="module")
def default_analysis():
    results = {}
    for f in find_graph_files(GRAPHS):
        g = load_graph_file(f)
        seed = graph_seed(0, f.model, f.task, g.graph_id)
        results.setdefault(f.model, []).append(
            analyze_graph(g, n_random=8, seed=seed, swaps_per_edge=5)
        )
    base = results.pop(BASELINE)
    return run_scale_analysis(results, PARAMS, baseline_results=base, baseline_name=BASELINE)


def test_ffl_grows_with_scale_on_default_data(default_analysis):
    a = default_analysis
    ffl = a.mean_z[:, label_index("030T")]
    assert a.models == MODELS
    assert np.all(np.diff(ffl) > 0) and ffl[0] > 2
    assert a.ffl.universal
    assert {t.label: t for t in a.trends}["030T"].slope > 0


def test_all_figures_render(default_analysis, tmp_path):
    paths = plot_all(default_analysis, tmp_path)
    assert set(paths) == set(FIGURE_NAMES)
    for path in paths.values():
        assert path.stat().st_size > 10_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
