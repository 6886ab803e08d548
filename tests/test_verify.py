"""scalelens.verify: the same result means equal verdicts and metrics within tolerance."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from tests_paths import ROOT, repo_params

from scalelens.params import load_params
from scalelens.paths import LadderPaths, model_paths
from scalelens.verify import compare, metric_files


def test_compare_follows_its_definition():
    ref = {"verdict": "STABLE", "std": 9.43, "n": 4, "flags": [True, False], "nan": None,
           "per_model": {"a": {"g": 1.0}}}
    assert compare(ref, ref, "f") == []
    close = {**ref, "std": 9.43 * (1 + 5e-4)}
    assert compare(close, ref, "f") == []  # within rtol 1e-3
    far = {**ref, "std": 9.43 * (1 + 2e-3)}
    (d,) = compare(far, ref, "f")
    assert d.key == "std" and "differs by 2.00e-03 relative" in d.why
    (d,) = compare({**ref, "verdict": "SHIFTS"}, ref, "f")
    assert (d.key, d.why) == ("verdict", "not equal")
    (d,) = compare({**ref, "flags": [True, True]}, ref, "f")
    assert d.key == "flags[1]"
    (d,) = compare({**ref, "per_model": {"a": {"g": 1.0}, "b": {}}}, ref, "f")
    assert d.key == "per_model.b" and d.why == "key only on one side"
    assert compare({"x": 0.0}, {"x": 1e-12}, "f") == []  # atol
    assert len(compare({"x": 1.0}, {"x": 1.0 + 1e-6}, "f", rtol=1e-9)) == 1


def test_metric_files_are_every_declared_metric_per_model(tmp_path):
    files = {p.as_posix() for p in metric_files(load_params(ROOT / "params.yaml"))}
    assert LadderPaths.verdict_json("si").as_posix() in files
    for key in ("smollm2-135m", "qwen2.5-coder-1.5b"):
        mp = model_paths(key)
        assert {mp.phiid_metrics.as_posix(), mp.attribution_metrics.as_posix(),
                mp.perturb_metrics.as_posix(), mp.sweep_metrics("gain").as_posix()} <= files


def _git(repo, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


@pytest.fixture()
def repo(tmp_path):
    p = repo_params()
    p["models"] = ["tiny:llama"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    verdict = tmp_path / LadderPaths.verdict_json("gain")
    verdict.parent.mkdir(parents=True)
    verdict.write_text(json.dumps({"verdict": "VALIDATED", "r": -0.41}))
    metrics = tmp_path / model_paths("tiny:llama").phiid_metrics
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"mean_synergy": 0.0461, "unit": "nats"}))
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "reference")
    return tmp_path


def _verify(repo, *args):
    return subprocess.run([sys.executable, "-m", "scalelens.verify", *args], cwd=repo,
                          capture_output=True, text=True, timeout=120)


def test_the_command_names_what_differs(repo):
    same = _verify(repo)
    assert same.returncode == 0 and "2 metrics and verdict files are the same result" in \
        same.stdout
    metrics = repo / model_paths("tiny:llama").phiid_metrics
    metrics.write_text(json.dumps({"mean_synergy": 0.04610001, "unit": "nats"}))
    assert _verify(repo).returncode == 0  # machine-level noise
    (repo / LadderPaths.verdict_json("gain")).write_text(
        json.dumps({"verdict": "NOT_VALIDATED", "r": -0.41}))
    metrics.write_text(json.dumps({"mean_synergy": 0.05, "unit": "nats"}))
    out = _verify(repo)
    assert out.returncode == 1
    lines = out.stdout.strip().splitlines()
    assert lines == [
        "results/phiid/tiny-llama_phiid_metrics.json: mean_synergy: differs by 8.46e-02 "
        "relative (> rtol 0.001) (workspace 0.05, reference 0.0461)",
        "results/verdicts/gain_verdict.json: verdict: not equal (workspace 'NOT_VALIDATED', "
        "reference 'VALIDATED')"]
    assert _verify(repo, "--ref", "nope").returncode == 2
