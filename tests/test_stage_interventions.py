"""Stages ablate, ablate_compare, graph_cores and perturb end to end on a tiny model, in process.

Inputs (head rankings csv, pairwise PhiID npz) are written by hand, so the test checks the stages
alone: outputs against the library functions and the definitions, MLflow verdict tags, the
top-level sigma reaching the noise, and one-line errors for missing inputs.
"""

import argparse
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from tests_paths import ROOT, repo_params, stage_module

from scalelens.ablation import auc, syn_red_orders
from scalelens.errors import ScalelensError
from scalelens.graphs import graph_cores
from scalelens.params import load_params
from scalelens.paths import LadderPaths, model_paths
from scalelens.phiid.result import DegeneracyReport, PhiIDResult
from scalelens.phiid.settings import PhiIDSettings
from scalelens.phiid.shards import save_result
from scalelens.stage import StageContext

MODEL = "tiny:gemma3_text"  # 3 layers x 4 heads
N_LAYERS, N_HEADS = 3, 4
N = N_LAYERS * N_HEADS
MP = model_paths(MODEL)


def _run(name, params_path, model=MODEL):
    args = argparse.Namespace(model=model, params=str(params_path))
    ctx = StageContext(name, load_params(params_path), params_path, model, args)
    stage_module(name).main(ctx)
    return ctx


def _write_params(work, perturb=None, **top):
    p = repo_params()
    p["models"] = [MODEL]
    p["device"] = "cpu"
    p["ablation"].update(n_prompts=4, n_points=4, random_seeds=[0, 1], batch_size=4)
    p["perturb"].update(n_problems=4, n_shots=1, max_new_tokens=2, random_seeds=[0, 1],
                        noise_seeds=[0, 1], batch_size=4)
    p["perturb"].update(perturb or {})
    p.update(top)
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def _write_inputs(work):
    rng = np.random.default_rng(0)
    sts, rtr = rng.random((N, N)), rng.random((N, N))
    sts, rtr = (sts + sts.T) / 2, (rtr + rtr.T) / 2
    np.fill_diagonal(sts, np.nan)
    np.fill_diagonal(rtr, np.nan)
    report = DegeneracyReport(np.zeros((1, N), dtype=np.int8), 0, 0, 0, {}, {},
                              np.zeros(1, dtype=np.int64))
    result = PhiIDResult(PhiIDSettings(), sts, rtr, None, 1, np.ones((N, N), dtype=np.int64),
                         report, input_hash="test")
    (work / "results" / "phiid").mkdir(parents=True)
    save_result(result, work / MP.phiid_npz)
    score = np.array([3.0, -2.0, 5.0, 0.0, 1.0, -5.0, 4.0, 2.0, -1.0, -3.0, np.nan, -4.0])
    pd.DataFrame({"layer": np.arange(N) // N_HEADS, "head": np.arange(N) % N_HEADS,
                  "flat_index": np.arange(N), "syn_red_score": score}).to_csv(
        work / MP.rankings_csv, index=False)
    return sts, rtr, score


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("interventions")
    params = _write_params(work)
    inputs = _write_inputs(work)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
        for name in ("ablate", "graph_cores", "perturb"):
            _run(name, params)
        _run("ablate_compare", params, model=None)
        yield work, params, inputs


@pytest.fixture()
def in_workdir(workdir, monkeypatch):
    work = workdir[0]
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    return workdir


def _tags(work, stage):
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=[stage], output_format="list")
    return runs[0].data.tags, runs[0].data.metrics


def test_ablate_outputs_follow_the_rankings_and_the_definitions(in_workdir):
    work, _, (_, _, score) = in_workdir
    frame = pd.read_csv(work / MP.ablation_csv)
    assert list(frame.columns) == ["order", "seed", "n_removed", "fraction", "kl_mean_nats",
                                   "kl_std_nats"]
    assert frame["n_removed"].unique().tolist() == [0, 3, 6, 9, 12]  # step ceil(12 / 4)
    assert (frame.loc[frame.n_removed == 0, "kl_mean_nats"] == 0).all()
    npz = np.load(work / MP.ablation_npz)
    syn, red = syn_red_orders(np.arange(N), score)
    assert np.array_equal(npz["order_heads"][0], syn) and np.array_equal(npz["order_heads"][1], red)
    assert npz["kl_nats"].shape == (4, 5, 4)
    metrics = pd.read_json(work / MP.ablation_metrics,
                           typ="series")
    s = frame[frame.order == "syn_first"]
    assert metrics["auc_syn_first"] == pytest.approx(auc(s.fraction.to_numpy(),
                                                          s.kl_mean_nats.to_numpy()))
    assert metrics["n_forward_passes"] == 1 + 4 * 4  # intact + orders x steps, one batch
    tags, _ = _tags(work, "ablate")
    assert tags["syn_first_above_random_band"] in ("True", "False")
    assert tags["random_seeds"] == "0,1"
    assert (work / MP.ablation_fig).stat().st_size > 5000


def test_ablate_compare_recomputes_the_same_summary(in_workdir):
    work = in_workdir[0]
    summary = pd.read_json(work / LadderPaths.ablate_compare_json, typ="series")
    metrics = pd.read_json(work / MP.ablation_metrics,
                           typ="series")
    per = summary["per_model"][MODEL]
    assert per["ratio_syn_random"] == pytest.approx(metrics["ratio_syn_random"], rel=1e-6)
    assert per["syn_first_above_random_band"] == metrics["syn_first_above_random_band"]
    assert (work / LadderPaths.ablate_compare_fig).is_file()


def test_graph_cores_metrics_equal_the_library_on_the_same_matrices(in_workdir):
    work, _, (sts, rtr, _) = in_workdir
    metrics = pd.read_json(work / MP.graph_cores_metrics,
                           typ="series")
    cores = graph_cores(sts, rtr, 0.10, 0)
    assert metrics["synergy.modularity"] == pytest.approx(cores.synergy.modularity)
    assert metrics["redundancy.global_efficiency"] == pytest.approx(
        cores.redundancy.global_efficiency)
    assert metrics["synergy.n_edges"] == round(0.1 * 66)
    npz = np.load(work / MP.graph_cores_npz)
    assert np.array_equal(npz["synergy_edges_i"], cores.synergy.edges_i)
    tags, _ = _tags(work, "graph_cores")
    assert tags["syn_more_efficient"] in ("True", "False")


PERTURB_LABELS = ["baseline", "synergistic_noise0", "synergistic_noise1", "redundant_noise0",
                  "redundant_noise1", "random_seed0_noise0", "random_seed1_noise1"]


def test_perturb_writes_every_replicate_means_spreads_and_the_verdicts(in_workdir):
    work = in_workdir[0]
    out = work / MP.perturb_dir
    summary = pd.read_csv(out / "summary.csv")
    assert summary["label"].tolist() == PERTURB_LABELS
    assert summary["noise_seed"].tolist() == [-1, 0, 1, 0, 1, 0, 1]
    assert summary["head_seed"].tolist() == [-1, -1, -1, -1, -1, 0, 1]
    assert summary["n_heads"].tolist() == [0, 3, 3, 3, 3, 3, 3]  # round(0.25 * 12)
    assert (summary.loc[1:2, "heads"] == "0 2 6").all()  # scores 3, 5, 4: the top three
    assert (summary.loc[3:4, "heads"] == "5 9 11").all()  # scores -5, -3, -4: the bottom three
    for label in summary["label"]:
        per = pd.read_csv(out / f"{label}.csv")
        assert len(per) == 4
        acc = summary.loc[summary.label == label, "accuracy"].item()
        assert per["correct"].mean() == pytest.approx(acc)
    m = pd.read_json(work / MP.perturb_metrics, typ="series")
    acc, nll = summary.set_index("label").accuracy, summary.set_index("label").gold_nll_nats
    syn_drop = acc["baseline"] - acc[PERTURB_LABELS[1:3]]
    assert m["synergistic.drop_mean"] == pytest.approx(syn_drop.mean())
    assert m["synergistic.drop_std"] == pytest.approx(syn_drop.std(ddof=1))
    rises = {k: nll[PERTURB_LABELS[i:i + 2]] - nll["baseline"]
             for k, i in (("synergistic", 1), ("redundant", 3), ("random", 5))}
    for k, r in rises.items():
        # the csv keeps 10 significant digits of NLLs of a few nats
        assert m[f"{k}.nll_rise_mean"] == pytest.approx(r.mean(), abs=1e-8)
        assert m[f"{k}.nll_rise_std"] == pytest.approx(r.std(ddof=1), abs=1e-8)
        assert m[f"{k}.n_replicates"] == 2
    assert m["random.varies"] == "head set and noise seed"
    # 4 problems: accuracy is UNINFORMATIVE whatever it is; the NLL band rule decides
    assert m["accuracy_verdict"] == "UNINFORMATIVE"
    assert m["accuracy_verdict_reason"].startswith("4 problems: one problem is 25% of accuracy")
    band = {k: (m[f"{k}.nll_rise_mean"], m[f"{k}.nll_rise_std"]) for k in rises}
    low = band["synergistic"][0] - band["synergistic"][1]
    above = all(low > band[k][0] + band[k][1] for k in ("redundant", "random"))
    assert m["nll_verdict"] == ("SYN_LARGEST" if above else "NOT_SYN_LARGEST")
    assert (m["verdict"], m["verdict_by"]) == (m["nll_verdict"], "gold_nll")
    assert m["n_conditions"] == 7 and m["n_problems"] == 4
    tags, logged = _tags(work, "perturb")
    for key in ("verdict", "verdict_by", "accuracy_verdict", "accuracy_verdict_reason",
                "nll_verdict", "nll_verdict_reason"):
        assert tags[key] == m[key]
    assert tags["sigma"] == "0.1" and tags["noise_seeds"] == "0,1"
    assert "accuracy.random_seed1_noise1" in logged
    assert logged["synergistic.nll_rise_mean"] == pytest.approx(m["synergistic.nll_rise_mean"])
    assert "accuracy_verdict" not in logged  # strings are tags, not metrics
    # noise on: every perturbed condition's NLL differs from the baseline's
    assert (summary.gold_nll_nats[1:] != summary.gold_nll_nats[0]).all()
    assert (work / MP.perturb_fig).stat().st_size > 5000


def test_sigma_zero_reaches_the_noise_and_the_premise_params_the_verdict(in_workdir, tmp_path,
                                                                        monkeypatch):
    shutil.copytree(in_workdir[0] / "results/phiid", tmp_path / "results/phiid")
    monkeypatch.chdir(tmp_path)
    _run("perturb", _write_params(tmp_path, sigma=0.0, perturb={
        "min_problems": 4, "accuracy_floor": 0.0, "accuracy_ceiling": 1.0}))
    summary = pd.read_csv(tmp_path / MP.perturb_dir / "summary.csv")
    assert (summary.gold_nll_nats == summary.gold_nll_nats[0]).all()
    m = pd.read_json(tmp_path / MP.perturb_metrics, typ="series")
    # no noise: every drop is 0 +- 0, so the synergistic band is not above the others
    assert m["accuracy_verdict"] == "NOT_SYN_LARGEST" and m["verdict_by"] == "accuracy"
    assert m["synergistic.drop_mean"] == 0 and m["random.drop_std"] == 0


def test_perturb_on_a_math_file(in_workdir, tmp_path, monkeypatch):
    from scalelens.evaluation import load_math_rows, math_items

    data = ROOT / "tests" / "data" / "math" / "hendrycks_style.jsonl"
    shutil.copytree(in_workdir[0] / "results/phiid", tmp_path / "results/phiid")
    monkeypatch.chdir(tmp_path)
    _run("perturb", _write_params(tmp_path, perturb={
        "benchmark": "math", "math_path": str(data), "n_problems": 3, "random_seeds": [0],
        "noise_seeds": [0]}))
    per = pd.read_csv(tmp_path / MP.perturb_dir / "baseline.csv", dtype={"gold": str})
    items = math_items(load_math_rows(str(data)), 3, 1, 0)
    assert per["gold"].tolist() == list(items.golds)
    m = pd.read_json(tmp_path / MP.perturb_metrics, typ="series")
    assert m["benchmark"] == "math"
    assert m["nll_verdict"] == "UNINFORMATIVE"  # one replicate per condition: no spread
    with pytest.raises(ScalelensError, match="no such file") as e:
        _run("perturb", _write_params(tmp_path, perturb={
            "benchmark": "math", "math_path": "MATH-500/test.jsonl"}))
    assert "MATH-500/test.jsonl" in str(e.value) and "Repo id" not in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_rankings_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _write_params(tmp_path)
    for name in ("ablate", "perturb", "graph_cores"):
        with pytest.raises(ScalelensError, match="dvc repro"):
            _run(name, params)
