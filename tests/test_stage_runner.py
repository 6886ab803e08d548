"""run_stage: outputs written aside and swapped in only on success; SIGTERM like Ctrl-C; the
MLflow run spans the stage's work and records how it ended and on what it ran."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from tests_paths import ROOT, repo_params

STAGE = '''
import time
from scalelens.errors import ScalelensError
from scalelens.stage import run_stage
from scalelens.tracking import stage_run


def main(ctx):
    a = ctx.out("results/fake/a.txt")
    a.write_text("new-a")
    d = ctx.out_dir("results/fake/dir")
    (d / "x.txt").write_text("new-x")
    if ctx.args.mode == "fail":
        raise ScalelensError("bad thing, named")
    if ctx.args.mode == "sleep":
        print("sleeping", flush=True)
        time.sleep(60)
    if ctx.args.mode == "crash":
        raise ZeroDivisionError("a bug")
    time.sleep(1.5)
    with stage_run("fake", ctx.model, {"p": 1}, {"t": "v"}) as run:
        run.log_metrics({"m": 1.0})
        run.log_artifact(a)
        if ctx.args.mode == "badlog":
            run.log_params({"p": 2})  # MLflow refuses to change a logged param


run_stage("fake", main, add_args=lambda p: p.add_argument("--mode", default="ok"))
'''


@pytest.fixture()
def work(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "fake.py").write_text(STAGE)
    params = repo_params()
    params["models"] = ["tiny:llama"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    old = tmp_path / "results" / "fake"
    (old / "dir").mkdir(parents=True)
    (old / "a.txt").write_text("old-a")
    (old / "dir" / "x.txt").write_text("old-x")
    (old / "dir" / "stale.txt").write_text("from an earlier setting")
    return tmp_path


def _env(work):
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
            "PYTHONPATH": str(ROOT / "src")}


def _run(work, mode):
    return subprocess.run([sys.executable, "stages/fake.py", "--model", "tiny:llama", "--mode",
                           mode], cwd=work, env=_env(work), capture_output=True, text=True,
                          timeout=300)


def _state(work):
    root = work / "results" / "fake"
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _runs(work):
    client = _client(work)
    return client.search_runs([client.get_experiment_by_name("fake").experiment_id])


def _client(work):
    """A client on the stage's store (the process-wide tracking URI is left alone)."""
    return mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")


OLD = {"a.txt": "old-a", "dir/x.txt": "old-x", "dir/stale.txt": "from an earlier setting"}


def test_success_swaps_every_output_in_and_replaces_folders_whole(work):
    out = _run(work, "ok")
    assert out.returncode == 0, out.stderr[-2000:]
    assert _state(work) == {"a.txt": "new-a", "dir/x.txt": "new-x"}
    assert not [p for p in (work / "results").rglob(".staging-*")]
    (run,) = _runs(work)
    assert run.info.status == "FINISHED"
    assert run.info.end_time - run.info.start_time >= 1500  # the run spans the stage's work
    tags = run.data.tags
    assert tags["t"] == "v" and tags["stage"] == "fake" and tags["model"] == "tiny:llama"
    assert tags["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert tags["cpu_model"] and tags["transformers_version"][0].isdigit()
    assert run.data.metrics["m"] == 1.0 and run.data.params["p"] == "1"
    freeze = Path(_client(work).download_artifacts(
        run.info.run_id, "environment/pip-freeze.txt", dst_path=str(work / "dl")))
    assert any(line.startswith("torch==") for line in freeze.read_text().splitlines())
    names = [f.path for f in _client(work).list_artifacts(run.info.run_id)]
    assert "a.txt" in names  # the staged file under its final name
    exp = _client(work).get_experiment_by_name("fake")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.parametrize("mode, code, status", [("fail", 2, "FAILED"), ("crash", 1, "FAILED")])
def test_a_failure_leaves_the_earlier_outputs_exactly_as_they_were(work, mode, code, status):
    out = _run(work, mode)
    assert out.returncode == code
    if mode == "fail":
        assert out.stderr.strip().splitlines() == ["fake: error: bad thing, named"]
    else:
        assert "ZeroDivisionError" in out.stderr  # a bug keeps its traceback
    assert _state(work) == OLD
    assert not [p for p in (work / "results").rglob(".staging-*")]
    (run,) = _runs(work)
    assert run.info.status == status


def test_what_mlflow_refuses_fails_the_stage_before_its_outputs_go_in(work):
    out = _run(work, "badlog")
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("fake: error: MLflow: ") and "p" in line
    assert _state(work) == OLD
    (run,) = _runs(work)
    assert run.info.status == "FAILED"


def _sleeping_stage(work):
    proc = subprocess.Popen([sys.executable, "stages/fake.py", "--model", "tiny:llama",
                             "--mode", "sleep"], cwd=work, env=_env(work),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while proc.stdout.readline().strip() != "sleeping":  # outputs are written aside by now
        assert time.time() < deadline and proc.poll() is None
    return proc


def test_a_stage_killed_outright_leaves_its_run_killed(work):
    proc = _sleeping_stage(work)
    proc.kill()  # SIGKILL: no clean-up in the stage; its tracking worker closes the run
    proc.communicate(timeout=60)
    deadline = time.time() + 60
    while _runs(work)[0].info.status == "RUNNING":
        assert time.time() < deadline
        time.sleep(0.5)
    assert _runs(work)[0].info.status == "KILLED"
    # the outputs in place are the earlier ones (what was written aside stays aside)
    assert {k: v for k, v in _state(work).items() if ".staging-" not in k} == OLD


def test_sigterm_is_handled_like_an_interrupt(work):
    proc = _sleeping_stage(work)
    os.killpg(proc.pid, signal.SIGTERM)  # as a scheduler sends it: to every process of the job
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err.strip().splitlines()[-1] == (
        "fake: terminated (SIGTERM); earlier outputs left as they were")
    assert _state(work) == OLD
    assert not [p for p in (work / "results").rglob(".staging-*")]
    (run,) = _runs(work)
    assert run.info.status == "KILLED"
