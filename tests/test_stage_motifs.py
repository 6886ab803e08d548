"""motif_census and motif_scale end to end on the default graph set (few nulls, so it is quick)."""

import json
import os
import subprocess
import sys

import mlflow
import pandas as pd
import pytest
import yaml
from tests_paths import ROOT, repo_params

SETS = ["gemma3-270m", "gemma3-1b", "gemma3-4b", "baseline-haiku-synthetic"]


def _run(work, stage, *args):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    return subprocess.run([sys.executable, str(ROOT / "stages" / f"{stage}.py"), *args],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)


def _params(work, **motifs):
    p = repo_params()
    p["motifs"].update({"graphs_dir": str(ROOT / "data" / "graphs"), "n_random": 6,
                        "n_jobs": 1, **motifs})
    (work / "params.yaml").write_text(yaml.safe_dump(p))


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    work = tmp_path_factory.mktemp("motifs")
    _params(work)
    for s in SETS:
        out = _run(work, "motif_census", "--model", s)
        assert out.returncode == 0, out.stderr[-3000:]
    out = _run(work, "motif_scale")
    assert out.returncode == 0, out.stderr[-3000:]
    return work


def test_census_outputs(scaled):
    files = sorted((ROOT / "data/graphs/gemma3-1b").glob("*/*.json"))
    table = pd.read_csv(scaled / "results/motifs/census/gemma3-1b/census.csv")
    assert len(table) == len(files)
    # the census of each graph counts every triple once: C(n, 3)
    n = table["n_nodes"]
    total = sum(table[f"census_{lab}"] for lab in ("003", "012", "102", "021D", "021U", "021C",
                                                   "111D", "111U", "030T", "030C", "201",
                                                   "120D", "120U", "120C", "210", "300"))
    assert (total == n * (n - 1) * (n - 2) // 6).all()
    rows = json.loads((scaled / "results/motifs/census/gemma3-1b/census.json").read_text())
    assert {r["n_random"] for r in rows} == {6}


def test_scale_outputs_and_tracking(scaled):
    out = scaled / "results/motifs/scale"
    analysis = json.loads((out / "scale_analysis.json").read_text())
    assert analysis["models"] == ["gemma3-270m", "gemma3-1b", "gemma3-4b"]  # by size
    baseline = pd.read_csv(out / "baseline.csv")
    assert "baseline-haiku-synthetic" in baseline.columns and len(baseline) == 13  # connected
    for name in ("scale_heatmap", "ffl_across_scales", "dendrogram", "baseline_comparison"):
        assert (out / f"{name}.png").stat().st_size > 1000
    mlflow.set_tracking_uri(f"sqlite:///{scaled / 'mlflow.db'}")
    run = mlflow.search_runs(experiment_names=["motif_scale"], output_format="list")[0]
    assert run.data.tags["ffl_backbone"] == analysis["ffl_backbone"]["verdict"]
    assert "ffl_mean_z.gemma3-4b" in run.data.metrics


def test_unknown_graph_set_is_a_one_line_error(tmp_path):
    _params(tmp_path)
    out = _run(tmp_path, "motif_census", "--model", "gemma3-9b")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "not in params.yaml motifs.graph_sets" in out.stderr
