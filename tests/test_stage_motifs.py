"""motif_census and motif_scale end to end on real attribution graphs of three tiny models (made
here with scalelens.attribution, written as stage attribute writes them), under two null models;
then with a synthetic baseline beside them, which marks every scale output SYNTHETIC."""

import json
import os
import shutil
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from tests_paths import ROOT, repo_params, stage_module

from scalelens.attribution import AttributionSettings, attribute_prompt
from scalelens.io import load_npz, save_json
from scalelens.models import load_model
from scalelens.motifs.census import label_index
from scalelens.motifs.scale import cohens_d
from scalelens.paths import MotifPaths, model_paths, model_slug
from scalelens.plots.motifs import FIGURE_NAMES, png_title

MODELS = ["tiny:gemma3_text", "tiny:gemma3_text_1b", "tiny:llama"]
SETS = [model_slug(k) for k in MODELS]
PROMPTS = {"facts": ["The capital of France is", "Water boils at a"],
           "math": ["Two plus two is", "Seven minus three is"]}
NULLS = ["config", "layer"]
SYNTHETIC = {"graph_sets": ["synthetic-baseline"], "baseline": "synthetic-baseline"}
SETTINGS = AttributionSettings(max_feature_nodes=24, batch_size=16)


def write_graphs(work, key):
    """One attribution graph per prompt, with the metadata stage attribute adds."""
    lm = load_model(key)
    facts = stage_module("attribute").model_facts(lm)
    for task, texts in PROMPTS.items():
        for k, text in enumerate(texts):
            graph = attribute_prompt(lm, text, SETTINGS).to_json_dict(
                slug=f"{model_slug(key)}-{task}-{k}", scan=key)
            graph["metadata"]["scalelens"].update({"task": task, "synthetic": False, **facts})
            save_json(work / model_paths(key).graphs_dir / task / f"{task}-{k}.json", graph)
    return facts


def _start(work, stage, *args):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "stages" / f"{stage}.py"), *args],
                            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _runs(*commands):
    """Run (folder, stage, *args) commands side by side (a stage's time is mostly imports and
    MLflow; the store serialises its own set-up)."""
    procs = [_start(*c) for c in commands]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        outs.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return outs


def _params(work, name="params.yaml", **motifs):
    p = repo_params()
    p["models"] = MODELS
    p["motifs"].update({"n_random": 6, "n_jobs": 1, "null_model": NULLS, **motifs})
    (work / name).write_text(yaml.safe_dump(p))


def _scale_run(work):
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["motif_scale"], output_format="list",
                              order_by=["attributes.start_time DESC"])
    return runs[0]


def _ok(outs):
    for out in outs:
        assert out.returncode == 0, out.stderr[-3000:]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The ladder censused and scaled (`real`), and the same with a synthetic baseline beside
    it in a copy (`synthetic`)."""
    work = tmp_path_factory.mktemp("motifs")
    facts = {k: write_graphs(work, k) for k in MODELS}
    _params(work)
    _params(work, "synthetic.yaml", **SYNTHETIC)
    _ok(_runs(*[(work, "motif_census", "--model", s) for s in SETS],
              (work, "motif_census", "--model", "synthetic-baseline", "--params",
               "synthetic.yaml")))
    syn = tmp_path_factory.mktemp("motifs_synthetic")
    shutil.copytree(work / "results", syn / "results")
    shutil.copy(work / "mlflow.db", syn / "mlflow.db")
    _params(syn, **SYNTHETIC)
    _ok(_runs((work, "motif_scale"), (syn, "motif_scale")))
    real = {"analysis": json.loads((work / MotifPaths.scale_dir / "scale_analysis.json")
                                   .read_text()),
            "titles": {n: png_title(work / MotifPaths.scale_dir / f"{n}.png")
                       for n in FIGURE_NAMES},
            "tags": dict(_scale_run(work).data.tags),
            "trends": pd.read_csv(work / MotifPaths.scale_dir / "trends.csv"),
            "transitions": pd.read_csv(work / MotifPaths.scale_dir / "transitions.csv")}
    return work, facts, real, syn


def test_census_of_an_attribution_set_under_two_nulls(work):
    work, facts, _, _ = work
    key, name = MODELS[0], SETS[0]
    folder = work / MotifPaths.census_dir(name)
    doc = json.loads((folder / "census.json").read_text())
    f = doc["facts"]
    assert (f["source"], f["model_key"], f["family"], f["n_params"]) == (
        "attribution", key, "gemma3_text", facts[key]["n_params"])
    assert f["family_inferred"] and doc["synthetic"] is False and f["synthetic"] is False
    graphs = sorted((work / model_paths(key).graphs_dir).glob("*/*.json"))
    metas = [json.loads(p.read_text())["metadata"]["scalelens"]["quality"] for p in graphs]
    assert f["quality"]["faithfulness"] == pytest.approx(np.mean([q["faithfulness"]
                                                                  for q in metas]))
    assert f["quality"]["influence_kept"] == pytest.approx(np.mean([q["influence_kept"]
                                                                    for q in metas]))
    assert doc["null_models"] == NULLS and len(doc["graphs"]) == len(graphs) == 4
    table = pd.read_csv(folder / "census.csv")
    assert len(table) == 8 and list(table["null_model"]) == NULLS * 4
    assert not table["synthetic"].any() and set(table["family"]) == {"gemma3_text"}
    n = table["n_nodes"]
    total = sum(table[c] for c in table.columns if c.startswith("census_"))
    assert (total == n * (n - 1) * (n - 2) // 6).all()
    arrays = load_npz(folder / "null_counts.npz")
    assert not arrays["synthetic"] and list(arrays["null_models"]) == NULLS
    for g in doc["graphs"]:
        for null in NULLS:
            r = g["results"][null]
            counts = arrays[f"{null}__{g['task']}__{g['graph_id']}"]
            assert counts.shape == (6, 16)
            k = label_index("030T")
            obs, mu, sd = r["census"]["030T"], counts[:, k].mean(), counts[:, k].std(ddof=1)
            assert r["z"]["030T"] == pytest.approx(0.0 if sd == 0 else (obs - mu) / sd)


def test_scale_under_both_nulls_with_families_and_the_within_family_step(work):
    work, facts, real, _ = work
    a = real["analysis"]
    assert a["synthetic"] is False and a["synthetic_sets"] == []
    by_size = sorted(MODELS, key=lambda k: facts[k]["n_params"])
    assert a["models"] == [model_slug(k) for k in by_size]  # by counted size
    assert facts[MODELS[0]]["n_params"] < facts[MODELS[1]]["n_params"]
    assert a["families"]["tiny-gemma3_text_1b"] == "gemma3_text"
    assert a["premise"]["met"] and a["premise"]["decided_on"] == ["gemma3_text"]
    assert set(a["by_null"]) == set(NULLS) and set(a["ffl_backbone"]) == set(NULLS)
    small = json.loads((work / MotifPaths.census_json(SETS[0])).read_text())
    large = json.loads((work / MotifPaths.census_json(SETS[1])).read_text())
    for null in NULLS:
        read = a["by_null"][null]
        (step,) = read["within_family"]["steps"]
        assert (step["before"], step["after"]) == (SETS[0], SETS[1])
        before = [g["results"][null]["z"]["030T"] for g in small["graphs"]]
        after = [g["results"][null]["z"]["030T"] for g in large["graphs"]]
        d, _ = cohens_d(np.array(before), np.array(after))
        rows = real["transitions"]
        row = rows[(rows.null_model == null) & (rows.scope == "within_family")
                   & (rows.label == "030T")]
        assert len(row) == 1 and row["cohens_d"].iloc[0] == pytest.approx(d, nan_ok=True)
        assert step["changes"]["mean_z.030T"]["delta"] == pytest.approx(
            np.mean(after) - np.mean(before))
        assert read["scale_read"]["ffl"]["verdict"] in ("CHANGES_WITH_SCALE",
                                                         "NO_CHANGE_DETECTED")
        assert "descriptive only" in read["across_family"]["label"]
    assert set(real["trends"]["null_model"]) == set(NULLS)
    assert set(real["trends"]["scope"]) == {"across_family", "within_family"}
    assert not real["trends"]["synthetic"].any()
    tags = real["tags"]
    for null in NULLS:
        assert tags[f"ffl_backbone.{null}"] == a["ffl_backbone"][null]
        assert tags[f"scale_read.ffl.{null}"] == a["scale_read"][null]["ffl"]
    assert tags["synthetic"] == "False" and tags["premise_met"] == "True"
    assert "tiny-llama:llama" in tags["families"]
    for name, title in real["titles"].items():
        assert title and "SYNTHETIC" not in title, name


def test_a_synthetic_set_marks_every_scale_output(work):
    work, _, _, syn = work
    folder = work / MotifPaths.census_dir("synthetic-baseline")
    doc = json.loads((folder / "census.json").read_text())
    assert doc["synthetic"] is True and doc["facts"]["source"] == "imported"
    assert pd.read_csv(folder / "census.csv")["synthetic"].all()
    assert load_npz(folder / "null_counts.npz")["synthetic"]
    scale = syn / MotifPaths.scale_dir
    a = json.loads((scale / "scale_analysis.json").read_text())
    assert a["synthetic"] is True and a["synthetic_sets"] == ["synthetic-baseline"]
    for name in ("trends.csv", "transitions.csv", "baseline.csv"):
        assert pd.read_csv(scale / name)["synthetic"].all(), name
    assert load_npz(scale / "profiles.npz")["synthetic"]
    for name in FIGURE_NAMES:
        assert png_title(scale / f"{name}.png").startswith("SYNTHETIC DATA"), name
    assert _scale_run(syn).data.tags["synthetic"] == "True"
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    census_runs = mlflow.search_runs(experiment_names=["motif_census"], output_format="list")
    marked = [r for r in census_runs if r.data.tags.get("model") == "synthetic-baseline"]
    assert marked and marked[0].data.tags["synthetic"] == "True"


def test_missing_graphs_and_unknown_sets_are_one_line_errors(work, tmp_path):
    shutil.copy(work[0] / "mlflow.db", tmp_path / "mlflow.db")  # a store already set up
    _params(tmp_path)
    unknown, missing = _runs((tmp_path, "motif_census", "--model", "gemma3-9b"),
                             (tmp_path, "motif_census", "--model", "tiny-llama"))
    for out in (unknown, missing):
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    assert "not in params.yaml graph sets" in unknown.stderr
    assert "dvc repro attribute@tiny-llama" in missing.stderr
