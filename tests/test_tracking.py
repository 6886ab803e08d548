"""Every stage run becomes an MLflow run carrying its provenance."""

import os

import torch
from mlflow.tracking import MlflowClient

from scalelens.tracking import stage_run


def _client():
    """A client on the test's store (other tests may have set a process-wide tracking URI)."""
    return MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


def test_stage_run_records_provenance(mlflow_tmp, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "sigma-02")
    params = {"extract": {"batch_size": 4, "max_new_tokens": 8}, "seed": 0}
    with stage_run("extract", "tiny:llama", params, {"params_sha256": "abc"}) as run:
        run.log_metrics({"tokens_per_s": 12.5, "n_heads": 8})
        (mlflow_tmp / "facts.json").write_text("{}")
        run.log_artifact(mlflow_tmp / "facts.json")
    client = _client()
    got = client.get_run(run.run_id)
    exp = client.get_experiment(got.info.experiment_id)
    assert exp.name == "extract"
    assert got.info.run_name == "extract:tiny:llama"
    tags = got.data.tags
    assert tags["stage"] == "extract" and tags["model"] == "tiny:llama"
    assert tags["dvc_exp_name"] == "sigma-02" and tags["params_sha256"] == "abc"
    assert len(tags["git_commit"]) >= 7
    assert tags["torch_version"] == torch.__version__
    assert tags["torch_num_threads"] == str(torch.get_num_threads())
    assert got.data.params["extract.batch_size"] == "4"
    assert got.data.metrics["tokens_per_s"] == 12.5
    assert (mlflow_tmp / "mlruns" / "extract").is_dir()
    # a second run reuses the experiment
    with stage_run("extract", "tiny:qwen2", params, {}) as run2:
        pass
    assert client.get_run(run2.run_id).info.experiment_id == got.info.experiment_id


def test_log_metrics_keeps_numbers_and_leaves_out_what_mlflow_cannot_plot(mlflow_tmp):
    with stage_run("gain", "tiny:llama", {}, {}) as run:
        run.log_metrics({"r": -0.5, "ok": True, "n": 3, "nan": float("nan"),
                         "inf": float("inf"), "none": None})
    assert _client().get_run(run.run_id).data.metrics == {"r": -0.5, "ok": 1.0, "n": 3.0}


def test_stages_starting_together_on_a_new_store_all_record_their_runs(mlflow_tmp):
    """Four stage processes open their runs at once on a store that does not exist yet (SLURM
    array jobs, parallel stages): the schema is created once, under the lock, and every run is
    recorded."""
    import subprocess
    import sys

    script = ("import sys\nfrom scalelens.tracking import stage_run\n"
              "with stage_run('burst', sys.argv[1], {'i': sys.argv[1]}, {}) as run:\n"
              "    run.log_metrics({'x': 1.0})\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, f"m{i}"], cwd=mlflow_tmp,
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    client = _client()
    runs = client.search_runs([client.get_experiment_by_name("burst").experiment_id])
    assert sorted(r.data.params["i"] for r in runs) == ["m0", "m1", "m2", "m3"]
    assert {r.info.status for r in runs} == {"FINISHED"}
