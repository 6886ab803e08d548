"""Shared artifacts through a DVC remote: push the tiny pipeline's outs, pull them into a fresh
clone (nothing reruns), against a local folder and against a real S3 API (moto's server mode on
127.0.0.1 with dvc-s3); a corrupted or missing object is reported by `dvc pull` and the stage
that needs it reruns."""

import socket
import subprocess
import sys
import time

import pytest
from tiny_pipeline import HUB_ID, clone, dvc, run

from scalelens.paths import model_paths

pytestmark = pytest.mark.xdist_group("ladder")  # one worker: tests share its fixtures


def _outs(lock: dict) -> dict[str, str]:
    """{path: md5} of every out in a dvc.lock."""
    found = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            found[out["path"]] = out["md5"]
    return found


def _lock(repo) -> dict:
    import yaml

    return yaml.safe_load((repo / "dvc.lock").read_text())


def _mlflow_runs(repo) -> int:
    db = repo / "mlflow.db"
    if not db.exists():
        return 0
    import sqlite3

    with sqlite3.connect(db) as con:
        return con.execute("select count(*) from runs").fetchone()[0]


@pytest.fixture(scope="module")
def pushed(ladder_repo, tmp_path_factory):
    """The ladder repo's outs pushed to a local remote (configured in a clone's config.local
    would be per-clone: here the remote folder is given to each clone)."""
    root, _ = ladder_repo
    remote = tmp_path_factory.mktemp("remote") / "store"
    dvc(root, "remote", "add", "--local", "-f", "-d", "store", str(remote))
    dvc(root, "push")
    return root, remote


def test_a_fresh_clone_pulls_instead_of_recomputing(pushed, tmp_path):
    root, remote = pushed
    fresh = clone(root, tmp_path / "colleague")
    dvc(fresh, "remote", "add", "--local", "-d", "store", str(remote))
    dvc(fresh, "pull")
    status = dvc(fresh, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout[-2000:]
    out = dvc(fresh, "repro")
    assert "Data and pipelines are up to date" in out.stdout + out.stderr
    assert _mlflow_runs(fresh) == 0  # no stage ran
    assert _lock(fresh) == _lock(root)
    for path in _outs(_lock(root)):
        assert (fresh / path).exists(), path


def test_a_corrupted_or_missing_object_is_reported_and_its_stage_reruns(pushed, tmp_path):
    root, remote = pushed
    target = model_paths(HUB_ID)
    npz = target.phiid_npz.as_posix()
    md5 = _outs(_lock(root))[npz]
    obj = remote / "files" / "md5" / md5[:2] / md5[2:]
    assert obj.is_file()
    saved = obj.read_bytes()
    try:
        obj.write_bytes(saved[: len(saved) // 2])  # corrupted in the remote
        fresh = clone(root, tmp_path / "corrupt")
        dvc(fresh, "remote", "add", "--local", "-d", "store", str(remote))
        dvc(fresh, "remote", "modify", "--local", "store", "verify", "true")
        pulled = dvc(fresh, "pull", check=False)
        assert pulled.returncode != 0
        assert npz in pulled.stdout + pulled.stderr or "failed" in (pulled.stdout +
                                                                     pulled.stderr).lower()
        assert not (fresh / npz).exists(), "a corrupted object must not be checked out"
        obj.unlink()  # and missing altogether
        again = dvc(fresh, "pull", check=False)
        assert again.returncode != 0
        status = dvc(fresh, "status").stdout
        assert f"phiid@{target.slug}" in status
        dvc(fresh, "repro")
        assert _outs(_lock(fresh))[npz] == md5  # recomputed, byte-identical
        assert _lock(fresh) == _lock(root)
    finally:
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.write_bytes(saved)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def s3_server(tmp_path, monkeypatch):
    """moto's S3 server on 127.0.0.1, started and stopped by the test."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        import boto3

        deadline = time.time() + 60
        while True:
            try:
                boto3.client("s3", endpoint_url=url).create_bucket(Bucket="scalelens")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_same_round_trip_against_a_real_s3_api(ladder_repo, s3_server, tmp_path):
    root, _ = ladder_repo
    work = clone(root, tmp_path / "pusher")
    run(["cp", "-r", str(root / ".dvc" / "cache"), str(work / ".dvc" / "cache")], tmp_path)
    for repo in (work,):
        dvc(repo, "remote", "add", "--local", "-d", "s3", "s3://scalelens/store")
        dvc(repo, "remote", "modify", "--local", "s3", "endpointurl", s3_server)
    dvc(work, "checkout")
    dvc(work, "push")
    fresh = clone(root, tmp_path / "puller")
    dvc(fresh, "remote", "add", "--local", "-d", "s3", "s3://scalelens/store")
    dvc(fresh, "remote", "modify", "--local", "s3", "endpointurl", s3_server)
    dvc(fresh, "pull")
    assert "Data and pipelines are up to date" in dvc(fresh, "status").stdout
    assert _mlflow_runs(fresh) == 0
    for path in _outs(_lock(root)):
        assert (fresh / path).exists(), path
