"""scalelens.paths and scalelens.pipeline: one function from a model key to every result path,
and a dvc.yaml generated from it whose code deps are each stage's import closure."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests_paths import ROOT, repo_params

from scalelens.errors import ScalelensError
from scalelens.params import load_params
from scalelens.paths import (
    MissingInputError,
    ModelPaths,
    check_unique_slugs,
    model_paths,
    model_slug,
    require_input,
)
from scalelens.pipeline import STAGES, build_dvc_yaml, import_closure, render


@pytest.fixture()
def in_root(monkeypatch):
    monkeypatch.chdir(ROOT)
    return ROOT


def test_slugs_of_every_kind_of_key(tmp_path):
    ckpt = tmp_path / "ckpt" / "my model v2"
    ckpt.mkdir(parents=True)
    assert model_slug("qwen2.5-coder-0.5b") == "qwen2.5-coder-0.5b"
    assert model_slug("EleutherAI/pythia-410m") == "EleutherAI--pythia-410m"
    assert model_slug("tiny:llama") == "tiny-llama"
    assert model_slug("tiny:gemma3_text:3") == "tiny-gemma3_text-3"
    assert model_slug(str(ckpt)) == "my-model-v2"
    assert model_slug(str(ckpt) + "/") == "my-model-v2"
    assert model_slug("org/name@rev") == "org--name-rev"
    with pytest.raises(ScalelensError, match="empty"):
        model_slug("  ")


def test_a_slug_is_one_file_name_part_and_paths_use_it():
    for key in ("a/b/c", "tiny:x:1", "we:ird//key"):
        slug = model_slug(key)
        assert "/" not in slug and ":" not in slug and slug
    mp = model_paths("EleutherAI/pythia-410m")
    assert mp == ModelPaths("EleutherAI--pythia-410m")
    assert mp.activations_npz.as_posix() == "results/activations/EleutherAI--pythia-410m.npz"
    assert mp.sweep_json("gain").as_posix() == "results/sweeps/gain/EleutherAI--pythia-410m.json"
    assert mp.perturb_dir.as_posix() == "results/perturb/EleutherAI--pythia-410m"


def test_two_keys_with_one_slug_are_an_error(tmp_path):
    (tmp_path / "a" / "ckpt").mkdir(parents=True)
    (tmp_path / "b" / "ckpt").mkdir(parents=True)
    assert check_unique_slugs(["tiny:llama", "org/x"]) == {"tiny-llama": "tiny:llama",
                                                           "org--x": "org/x"}
    with pytest.raises(ScalelensError, match="would both write"):
        check_unique_slugs([str(tmp_path / "a" / "ckpt"), str(tmp_path / "b" / "ckpt")])


def test_missing_upstream_output_names_the_stage_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mp = model_paths("org/name")
    with pytest.raises(MissingInputError) as e:
        require_input(mp.rankings_csv, "rank", "org/name")
    assert str(e.value) == ("results/phiid/org--name_head_rankings.csv not found: run "
                            "`dvc repro rank@org--name` (or `python stages/rank.py --model "
                            "org/name`) first")
    mp.rankings_csv.parent.mkdir(parents=True)
    mp.rankings_csv.write_text("x")
    assert require_input(mp.rankings_csv, "rank", "org/name") == mp.rankings_csv


def test_committed_dvc_yaml_is_the_generated_one(in_root):
    """Edit scalelens/pipeline.py or the ladder, then run `python -m scalelens.pipeline`."""
    assert (in_root / "dvc.yaml").read_text(encoding="utf-8") == render(
        load_params(in_root / "params.yaml"))


def test_every_stage_script_exists_and_is_in_dvc_yaml(in_root):
    stages = build_dvc_yaml(load_params("params.yaml"))["stages"]
    assert {s.name for s in STAGES} <= set(stages)
    for name, body in stages.items():
        do = body.get("do", body)
        script = f"stages/{name}.py"
        assert Path(script).is_file() and do["cmd"].startswith(f"sh scripts/py {script}")
        assert do["deps"][0] == script


def test_deps_cover_the_import_closure(in_root):
    stages = build_dvc_yaml(load_params("params.yaml"))["stages"]
    for name, body in stages.items():
        deps = set(body.get("do", body)["deps"])
        closure = import_closure(f"stages/{name}.py")
        assert set(closure) <= deps, name
        # the modules every stage runs through
        for f in ("src/scalelens/params.py", "src/scalelens/stage.py", "src/scalelens/io.py",
                  "src/scalelens/paths.py", "src/scalelens/tracking.py"):
            assert f in closure, (name, f)
    rank = set(import_closure("stages/rank.py"))
    assert {"src/scalelens/phiid/engine.py", "src/scalelens/phiid/result.py"} <= rank
    perturb = set(import_closure("stages/perturb.py"))  # graphs.py via plots.interventions
    assert {"src/scalelens/graphs.py", "src/scalelens/perturbation.py",
            "src/scalelens/evaluation.py", "src/scalelens/batching.py"} <= perturb


@pytest.mark.parametrize("stage", ["rank", "perturb"])
def test_static_closure_contains_every_module_a_stage_really_imports(stage, in_root):
    """Checked against the interpreter: import the stage, list scalelens modules loaded."""
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('s', 'stages/{stage}.py')\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(json.dumps(sorted(getattr(v, '__file__', None) or '' for k, v in "
        "sys.modules.items() if k == 'scalelens' or k.startswith('scalelens.'))))\n")
    env = {**os.environ, "PYTHONPATH": str(in_root / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=in_root, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = {Path(f).resolve().relative_to(in_root).as_posix()
              for f in json.loads(out.stdout.strip().splitlines()[-1]) if f}
    assert loaded and loaded <= set(import_closure(f"stages/{stage}.py"))


def test_a_hub_id_and_a_local_folder_get_their_own_stage_instances(tmp_path, in_root):
    p = repo_params()
    ckpt = tmp_path / "checkpoint-7"
    ckpt.mkdir()
    p["models"] = ["EleutherAI/pythia-70m", str(ckpt)]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    stages = build_dvc_yaml(load_params(tmp_path / "params.yaml"))["stages"]
    assert stages["extract"]["foreach"] == {"EleutherAI--pythia-70m": "EleutherAI/pythia-70m",
                                            "checkpoint-7": str(ckpt)}
    assert "results/activations/${key}.npz" in stages["extract"]["do"]["outs"]
    assert "results/sweeps/si/EleutherAI--pythia-70m.json" in stages["si_verdict"]["deps"]


def test_declared_metrics_are_the_metrics_of_dvc_yaml(in_root):
    from scalelens.pipeline import SLUG, declared_metrics

    params = load_params("params.yaml")
    stages = build_dvc_yaml(params)["stages"]
    from_yaml = set()
    for body in stages.values():
        do = body.get("do", body)
        for entry in do.get("metrics", []):
            path = next(iter(entry)) if isinstance(entry, dict) else entry
            keys = list(body["foreach"]) if "foreach" in body else [None]
            from_yaml |= {path.replace(SLUG, k) if k else path for k in keys}
    assert {p.as_posix() for p in declared_metrics(params)} == from_yaml
