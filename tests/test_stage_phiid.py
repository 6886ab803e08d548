"""Stages extract -> phiid -> rank -> compare_profiles end to end on a tiny model, in process.

The stage mains run with a constructed StageContext in a temporary repository layout (their
paths are relative to the working directory), which keeps the test fast: no interpreter start
and no torch import per stage. Checks: the rankings csv is rank_heads of the saved matrices,
the metrics match the saved result, and --shard 0/2 + --shard 1/2 + --merge (and the in-process
sharded path) reproduce the unsharded result.
"""

import argparse
import json
import shutil
import signal

import numpy as np
import pandas as pd
import pytest
import yaml
from tests_paths import repo_params, stage_module

from scalelens.errors import ScalelensError
from scalelens.params import load_params
from scalelens.paths import LadderPaths, model_paths
from scalelens.phiid import load_result
from scalelens.ranking import layer_profile, rank_heads
from scalelens.stage import StageContext

MODEL = "tiny:gemma3_text"  # 3 layers x 4 heads: the smallest tiny model with layer thirds
N_LAYERS, N_HEADS = 3, 4
MP = model_paths(MODEL)
STEPS = 12
COLUMNS = ["layer", "head", "flat_index", "synergy", "redundancy", "n_partners_synergy",
           "n_partners_redundancy", "synergy_rank", "redundancy_rank", "syn_red_score",
           "syn_red_score_normalised", "unit"]


def _write_params(workdir, **phiid):
    p = repo_params()
    p["models"] = [MODEL]
    p["device"] = "cpu"
    p["extract"].update(max_new_tokens=STEPS, min_new_tokens=STEPS, batch_size=64)
    p["phiid"].update({"chunk_pairs": 16, **phiid})  # 66 pairs: several chunks per shard
    path = workdir / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def _context(name, params_path, model=MODEL, shard=None, merge=False):
    args = argparse.Namespace(model=model, params=str(params_path), shard=shard, merge=merge)
    return StageContext(name, load_params(params_path), params_path, model, args)


def _run(name, params_path, model=MODEL, shard=None, merge=False):
    ctx = _context(name, params_path, model, shard, merge)
    stage_module(name).main(ctx)
    return ctx


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("synergy")
    params = _write_params(work)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
        for name in ("extract", "phiid", "rank"):
            _run(name, params)
        before = signal.getsignal(signal.SIGTERM)
        _run("compare_profiles", params, model=None)
        assert signal.getsignal(signal.SIGTERM) is before  # run_stage gives the handler back
        yield work


@pytest.fixture()
def in_workdir(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'mlflow.db'}")
    return workdir


def _result(workdir):
    return load_result(workdir / MP.phiid_npz)


def test_rankings_csv_is_rank_heads_of_the_saved_matrices(workdir):
    result = _result(workdir)
    assert result.sts.shape == (N_LAYERS * N_HEADS,) * 2 and result.unit == "nats"
    assert np.isfinite(result.sts[np.triu_indices(12, 1)]).all()
    frame = pd.read_csv(workdir / MP.rankings_csv)
    assert list(frame.columns) == COLUMNS
    assert (frame["unit"] == "nats").all()
    expected = rank_heads(result.sts, result.rtr, N_LAYERS, N_HEADS).to_columns()
    for column, values in expected.items():
        np.testing.assert_allclose(frame[column].to_numpy(dtype=float), values, rtol=1e-9,
                                   err_msg=column)
    # synergy of head h = mean sts over its 11 partners, by hand for head 5
    assert frame["synergy"][5] == pytest.approx(np.mean(np.delete(result.sts[5], 5)), rel=1e-9)
    scores = frame["syn_red_score"].to_numpy()
    assert scores.sum() == pytest.approx(0.0)  # rank differences over all heads sum to zero
    assert frame["syn_red_score_normalised"].abs().max() <= 1.0


def test_metrics_jsons_agree_with_the_saved_outputs(workdir):
    result = _result(workdir)
    metrics = json.loads((workdir / MP.phiid_metrics).read_text())
    upper = np.triu_indices(12, 1)
    assert metrics["mean_synergy"] == pytest.approx(np.mean(result.sts[upper]), rel=1e-12)
    assert metrics["mean_redundancy"] == pytest.approx(np.mean(result.rtr[upper]), rel=1e-12)
    assert metrics["unit"] == "nats" and metrics["n_pairs"] == 66 and metrics["n_prompts"] == 64
    assert metrics["n_degenerate_heads"] == result.degeneracy.n_degenerate_heads
    assert set(metrics["mean_synergy_by_category"]) == set(result.categories)

    ranking = rank_heads(result.sts, result.rtr, N_LAYERS, N_HEADS)
    profile = layer_profile(ranking)
    rank_metrics = json.loads((workdir / MP.rank_metrics).read_text())
    assert rank_metrics["peak_depth"] == profile.peak_depth
    assert rank_metrics["middle_more_synergistic"] is profile.middle_more_synergistic
    assert rank_metrics["middle_third_mean"] == pytest.approx(profile.middle_third_mean)
    layer_json = json.loads((workdir / MP.layer_profile_json).read_text())
    np.testing.assert_allclose(layer_json["mean_score"], profile.mean_score)
    assert layer_json["depth"] == [0.0, 0.5, 1.0]

    compare = json.loads((workdir / LadderPaths.compare_profiles_json).read_text())
    assert compare["n_models"] == 1
    assert compare["models"][MODEL]["peak_depth"] == profile.peak_depth
    assert compare["models"][MODEL]["middle_more_synergistic"] is profile.middle_more_synergistic
    assert compare["models"][MODEL]["family"] == "unknown"  # a tiny model: no config to read


def test_figures_and_mlflow_runs(workdir):
    import mlflow

    for png in (MP.phiid_fig, MP.rank_fig, LadderPaths.compare_profiles_fig):
        assert (workdir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    (phiid_run,) = mlflow.search_runs(experiment_names=["phiid"], output_format="list")
    assert phiid_run.data.tags["estimator"] == "gaussian"
    assert phiid_run.data.tags["unit"] == "nats"
    assert len(phiid_run.data.tags["params_sha256"]) == 64
    assert {"mean_synergy", "mean_redundancy", "n_degenerate"} <= set(phiid_run.data.metrics)
    (rank_run,) = mlflow.search_runs(experiment_names=["rank"], output_format="list")
    profile = layer_profile(rank_heads(_result(workdir).sts, _result(workdir).rtr, 3, 4))
    assert rank_run.data.tags["middle_more_synergistic"] == str(profile.middle_more_synergistic)
    assert rank_run.data.metrics["peak_depth"] == pytest.approx(profile.peak_depth)


def test_shards_and_merge_equal_the_unsharded_result(in_workdir):
    unsharded = _result(in_workdir)
    params = _write_params(in_workdir, shards=2)
    shard_dir = in_workdir / MP.phiid_shards
    try:
        _run("phiid", params, shard="0/2")
        early = _context("phiid", params, merge=True)
        with pytest.raises(ScalelensError, match="shard 1/2 missing"):
            stage_module("phiid").main(early)
        assert early.outs == []  # a premature merge declares nothing, so old outputs are kept
        first = {p.name: p.stat().st_mtime_ns for p in shard_dir.glob("*.npz")}
        assert len(first) == 3  # 33 pairs in chunks of 16, 16, 1
        _run("phiid", params, shard="0/2")  # resumes: nothing recomputed
        assert {p.name: p.stat().st_mtime_ns for p in shard_dir.glob("*.npz")} == first
        _run("phiid", params, shard="1/2")
        _run("phiid", params, merge=True)
        merged = _result(in_workdir)
        for name in ("sts", "rtr", "sts_by_category", "rtr_by_category"):
            np.testing.assert_allclose(getattr(merged, name), getattr(unsharded, name),
                                       rtol=1e-12, atol=1e-15, err_msg=name)
        np.testing.assert_array_equal(merged.n_prompts_defined, unsharded.n_prompts_defined)
        assert merged.input_hash == unsharded.input_hash

        _run("phiid", params)  # the DVC path with shards: 2 (all shards here, then merge)
        np.testing.assert_allclose(_result(in_workdir).sts, unsharded.sts, rtol=1e-12,
                                   atol=1e-15)
        with pytest.raises(ScalelensError, match="phiid.shards = 2"):
            _run("phiid", params, shard="0/3")
    finally:
        _write_params(in_workdir)


def test_stale_checkpoints_are_refused_by_jobs_and_replaced_in_process(in_workdir):
    shutil.rmtree(in_workdir / "results/phiid/shards", ignore_errors=True)
    try:
        params = _write_params(in_workdir, shards=2, tau=2)
        _run("phiid", params, shard="0/2")  # tau = 2 checkpoints for shard 0
        params = _write_params(in_workdir, shards=2)
        with pytest.raises(ScalelensError, match="different run"):
            _run("phiid", params, shard="0/2")  # a job never overwrites another run's files
        _run("phiid", params, shard="1/2")  # tau = 1 for shard 1
        with pytest.raises(ScalelensError, match="tau"):
            _run("phiid", params, merge=True)
        _run("phiid", params)  # in-process: stale files replaced, the result is for tau = 1
        assert _result(in_workdir).settings.tau == 1
    finally:
        _write_params(in_workdir)
