"""Experiments where researchers compare them: two `dvc exp run -S sigma=...` experiments of the
tiny pipeline; `dvc exp show` lists their metrics, their MLflow runs carry the experiment's name,
MlflowClient finds both experiments' perturbation runs, and the MLflow UI served on 127.0.0.1
shows the compared metric in headless Chromium, on the runs table of the experiment."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from browser import dump_dom
from tiny_pipeline import clone, dvc

pytestmark = pytest.mark.xdist_group("ladder-experiments")  # its clone: beside the "ladder" group

EXPERIMENTS = {"sigma-low": 0.05, "sigma-high": 0.3}


@pytest.fixture(scope="module")
def experiments(ladder_repo, tmp_path_factory):
    root, models = ladder_repo
    work = clone(root, tmp_path_factory.mktemp("exps") / "repo")
    shutil.copytree(root / ".dvc" / "cache", work / ".dvc" / "cache", dirs_exist_ok=True)
    dvc(work, "checkout")
    env = json.loads((work / ".tiny-env.json").read_text())
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    (work / ".tiny-env.json").write_text(json.dumps(env))
    for name, sigma in EXPERIMENTS.items():  # sigma is perturb's: its stages, not the report
        dvc(work, "exp", "run", "-n", name, "-S", f"sigma={sigma}", "perturb")
    return work, models


def test_dvc_exp_show_lists_both_experiments_with_their_metrics(experiments):
    work, models = experiments
    table = dvc(work, "exp", "show", "--md", "--no-pager").stdout
    for name, sigma in EXPERIMENTS.items():
        assert name in table
        assert str(sigma) in table
    assert "accuracy.baseline" in table or "perturb_metrics.json" in table


def _perturb_runs(work):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    client = MlflowClient()
    exp = client.get_experiment_by_name("perturb")
    return exp, client.search_runs([exp.experiment_id], max_results=100)


def test_mlflow_runs_carry_the_experiment_names_and_compare(experiments):
    work, models = experiments
    exp, runs = _perturb_runs(work)
    by_name: dict[str, list] = {}
    for run in runs:
        by_name.setdefault(run.data.tags.get("dvc_exp_name"), []).append(run)
    assert set(EXPERIMENTS) <= set(by_name)
    for name, sigma in EXPERIMENTS.items():
        assert len(by_name[name]) == len(models)  # one perturb run per model
        assert {r.data.metrics["sigma"] for r in by_name[name]} == {sigma}
        assert all(r.info.status == "FINISHED" for r in by_name[name])
    low = {r.data.tags["model"]: r.data.metrics for r in by_name["sigma-low"]}
    high = {r.data.tags["model"]: r.data.metrics for r in by_name["sigma-high"]}
    for model in models:  # stronger weight noise, other gold NLLs under the noised cores
        keys = sorted(k for k in low[model] if k.startswith("gold_nll_nats.syn"))
        assert keys and low[model][keys[0]] != high[model][keys[0]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_mlflow_ui_shows_the_comparison(experiments):
    work, _ = experiments
    exp, runs = _perturb_runs(work)
    chosen = {}
    for run in runs:
        name = run.data.tags.get("dvc_exp_name")
        if name in EXPERIMENTS and name not in chosen:
            chosen[name] = run
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri",
                               f"sqlite:///{work / 'mlflow.db'}", "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(base, timeout=5).read()
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "mlflow ui did not start"
                time.sleep(1)
        ids = json.dumps([r.info.run_id for r in chosen.values()]).replace(" ", "")
        dom = dump_dom(f"{base}/#/compare-runs?runs={ids}&experiments="
                       f"[\"{exp.experiment_id}\"]")
        assert "sigma" in dom
        for sigma in EXPERIMENTS.values():
            assert str(sigma) in dom, sigma
        table = dump_dom(f"{base}/#/experiments/{exp.experiment_id}?workflowType="
                         f"machine_learning")
        assert "perturb:" in table and "Duration" in table  # the runs table
    finally:
        server.terminate()
        server.wait(timeout=60)
