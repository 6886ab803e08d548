"""Stages si, gain, uniformity and their verdicts on tiny models, in a temp folder; bad input.

The stages run in-process through their own entry point (`run_stage`: argument parsing, one-line
errors, exit status 2, declared outputs removed on failure); one test runs a stage as a subprocess
to check the command line itself.
"""

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from tests_paths import ROOT, repo_params, stage_module

from scalelens.io import load_npz
from scalelens.models import load_model
from scalelens.paths import LadderPaths, model_paths
from scalelens.sweeps import si as S

MODELS = ["tiny:llama", "tiny:gpt_neox"]


def category(n, prefix):
    return {"description": f"{prefix} pairs", "expected_effect": "A preferred",
            "pairs": [[f"The {prefix} statement number {i} is true.",
                       f"Statement {prefix} {i} false is the."] for i in range(n)]}


SMALL_DATASET = {name: category(3, name) for name in ("alpha", "beta", "gamma")}


def write_params(folder: Path, name: str = "params.yaml", models=MODELS, **sections) -> Path:
    """params.yaml of the repository with tiny models, small bootstraps and the small dataset."""
    data = repo_params()
    data["models"] = list(models)
    data["device"] = "cpu"
    data["si"].update(n_boot=40)
    data["gain"].update(n_boot=40, n_perm=200)
    data["uniformity"].update(n_boot=40, layer_step=1, dataset="pairs.json")
    for section, values in sections.items():
        data[section].update(values)
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    if not (folder / "pairs.json").exists():  # params name it; a test may overwrite it
        (folder / "pairs.json").write_text(json.dumps(SMALL_DATASET))
    return path


@contextmanager
def inside(folder: Path):
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def run(name: str, folder: Path, model: str | None = None, params: str = "params.yaml",
        module=None) -> int:
    """Run stage `name` as its command line would, in `folder`; the exit status."""
    module = module or stage_module(name)
    argv = [f"stages/{name}.py", "--params", params] + (["--model", model] if model else [])
    old_argv = sys.argv
    sys.argv = argv
    try:
        with inside(folder):
            module.run_stage(name, module.main, per_model=model is not None)
        return 0
    except SystemExit as e:
        return int(e.code)
    finally:
        sys.argv = old_argv


@pytest.fixture(scope="module")
def mlflow_env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        yield folder


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, mlflow_env):
    """Every per-model stage for both tiny models, then the three verdicts."""
    folder = tmp_path_factory.mktemp("pipeline")
    write_params(folder)
    (folder / "pairs.json").write_text(json.dumps(SMALL_DATASET))
    for name in ("si", "gain", "uniformity"):
        for model in MODELS:
            assert run(name, folder, model) == 0, (name, model)
    for name in ("si_verdict", "gain_verdict", "uniformity_verdict"):
        assert run(name, folder) == 0, name
    return folder


def read(folder: Path, path) -> dict:
    return json.loads((folder / path).read_text())


def test_si_stage_output_follows_the_definitions(pipeline):
    for model in MODELS:
        doc = read(pipeline, model_paths(model).sweep_json("si"))
        arrays = load_npz(pipeline / model_paths(model).sweep_npz("si"))
        ent = arrays["prompt_entropies"]
        assert ent.shape == (10, 2, 4)  # Standard-10 v3, tiny models have 2 layers x 4 heads
        assert doc["si"]["si_seed"]["point"] == pytest.approx(
            S.si_seed_from_entropies(ent.mean(axis=0)).si)
        assert doc["si"]["si_heads"]["point"] == pytest.approx(
            S.si_heads_from_prompt_entropies(ent).si)
        assert doc["dtype"] == "bf16" and doc["dtype_selection"]["attempts"][0]["ok"]
        summary = doc["seed_summary"]["si_seed"]
        assert summary["seeds"] == [42, 123, 456] and summary["std"] == 0.0
        assert summary["deterministic"] and "bootstrap" in summary["note"]
        assert doc["prompt_md5"] == "715065bab181f46bf12ed471951141e2"
        assert doc["capture"] == {"attn_implementation": "eager", "use_cache": False,
                                  "padding": False, "each_prompt_alone": True,
                                  "chat_template": False}
        assert doc["valid_lengths"] == arrays["valid_lengths"].tolist()
        assert max(doc["valid_lengths"]) <= 128 and doc["n_params_source"].startswith("counted")
        lm = load_model(model)
        assert doc["n_params"] == sum(p.numel() for p in lm.model.parameters())
    assert read(pipeline, model_paths("tiny:llama").sweep_json("si"))["architecture"][
        "attention_label"] == "GQA (4:2)"


def test_gain_stage_output_follows_the_definitions(pipeline):
    for model in MODELS:
        doc = read(pipeline, model_paths(model).sweep_json("gain"))
        arrays = load_npz(pipeline / model_paths(model).sweep_npz("gain"))
        h, b = arrays["hidden_norms"], arrays["block_output_norms"]
        assert h.shape == (25, 3) and b.shape == (25, 2)
        assert doc["g_seed"]["point"] == pytest.approx(np.mean(h[:, -2] / (h[:, -3] + 1e-10)))
        assert doc["g_last"]["point"] == pytest.approx(np.mean(b[:, -1] / (h[:, -2] + 1e-10)))
        assert doc["g_with_ln"]["point"] == pytest.approx(np.mean(h[:, -1] / (h[:, -2] + 1e-10)))
        assert doc["rho"] == pytest.approx(4 / 8)  # 4 heads, d_head = 32 // 4
        assert doc["hidden_state_layout"]["intermediate_match_block_outputs"]
        assert not doc["hidden_state_layout"]["last_hidden_is_raw_last_block"]
        assert doc["prompt_md5"] == "20cc087d58c50aea1c2b6f54c87d0bfb"


def test_uniformity_stage_output(pipeline):
    doc = read(pipeline, model_paths("tiny:llama").sweep_json("uniformity"))
    assert doc["layers"] == [0, 1, 2] and doc["category_names"] == ["alpha", "beta", "gamma"]
    assert doc["bos_rule"].startswith("skipped position 0")  # the byte tokenizer prepends BOS
    arrays = load_npz(pipeline / model_paths("tiny:llama").sweep_npz("uniformity"))
    pref = arrays["nll_b"] - arrays["nll_a"]
    means = [pref[arrays["category_index"] == c].mean() for c in range(3)]
    np.testing.assert_allclose(doc["category_preference"], means, rtol=1e-9)
    assert len(doc["r"]) == 3 and doc["n_pairs"] == 9


def test_verdict_jsons_state_rule_numbers_intervals(pipeline):
    b11 = read(pipeline, LadderPaths.verdict_json("si"))
    assert b11["verdict"] == "SIZE_CONFOUND_DETECTED"  # tiny models' SI is far from 0.33
    assert b11["rule"].startswith("Seed 002") and b11["tier"] == "B-Tier"
    assert [m["name"] for m in b11["models"] if m["source"] == "measured"] == MODELS
    assert {"low", "high", "band_status"} <= set(b11["models"][0])
    assert isinstance(b11["intervals_could_change_verdict"], bool)
    h25 = read(pipeline, LadderPaths.verdict_json("gain"))
    for key in ("g_seed", "g_last"):
        v = h25[key]
        assert v["rule"].startswith("Seed 004") and v["n_models"] == 2
        assert v["verdict"] in ("VALIDATED", "INCONCLUSIVE")  # 2 models: seed rule, no r
        assert v["pearson_r"] is None and v["models"][0]["gain"]["low"] is not None
    assert h25["verdict_g_seed"] == h25["g_seed"]["verdict"]
    peak = read(pipeline, LadderPaths.verdict_json("uniformity"))
    assert peak["verdict"] in ("STABLE", "SHIFTS") and peak["rule"].startswith("Seed 003")
    pcts = [m["max_pos_pct"] for m in peak["models"]]
    assert peak["std_peak_pct"] == pytest.approx(float(np.std(pcts)))
    for fig in ("si_ladder", "gain", "uniformity"):
        assert (pipeline / LadderPaths.verdict_fig(fig)).read_bytes()[:4] == b"\x89PNG"


def test_verdicts_are_mlflow_tags(pipeline):
    from mlflow.tracking import MlflowClient

    client = MlflowClient()

    def tags(stage):
        exp = client.get_experiment_by_name(stage)
        return client.search_runs([exp.experiment_id], max_results=1)[0].data.tags

    b11 = read(pipeline, LadderPaths.verdict_json("si"))
    assert tags("si_verdict")["verdict.B11"] == b11["verdict"]
    assert tags("si_verdict")["tier.B11"] == b11["tier"]
    h25 = read(pipeline, LadderPaths.verdict_json("gain"))
    assert tags("gain_verdict")["verdict.H25.G_seed"] == h25["verdict_g_seed"]
    assert tags("gain_verdict")["verdict.H25.G_last"] == h25["verdict_g_last"]
    peak = read(pipeline, LadderPaths.verdict_json("uniformity"))
    assert tags("uniformity_verdict")["verdict.peak_stability"] == peak["verdict"]
    si_tags = tags("si")
    assert si_tags["dtype_variant"] == "bf16" and si_tags["seeds"] == "42,123,456"
    assert si_tags["prompt_md5.standard10_v3"] == "715065bab181f46bf12ed471951141e2"


def test_one_model_gives_inconclusive_verdicts_not_a_crash(pipeline, tmp_path):
    shutil.copytree(pipeline / "results", tmp_path / "results")
    write_params(tmp_path, models=["tiny:llama"], si={"references": {}})
    for name in ("si_verdict", "gain_verdict", "uniformity_verdict"):
        assert run(name, tmp_path) == 0
    for name, key in (("si_verdict", None), ("gain_verdict", "g_seed"),
                      ("gain_verdict", "g_last"), ("uniformity_verdict", None)):
        doc = read(tmp_path, LadderPaths.verdict_json(name.removesuffix("_verdict")))
        v = doc[key] if key else doc
        assert v["verdict"] == "INCONCLUSIVE", name
        assert "at least 2" in v["reason"] and not v["intervals_could_change_verdict"]


def test_verdict_without_a_per_model_result_names_the_stage_to_run(pipeline, tmp_path, capfd):
    shutil.copytree(pipeline / "results", tmp_path / "results")
    earlier = (tmp_path / LadderPaths.verdict_json("gain")).read_bytes()
    write_params(tmp_path, models=["tiny:llama", "tiny:qwen2"])
    assert run("gain_verdict", tmp_path) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dvc repro gain@tiny-qwen2" in err[0]
    # the earlier good verdict is left exactly as it was, not deleted
    assert (tmp_path / LadderPaths.verdict_json("gain")).read_bytes() == earlier


@pytest.mark.parametrize("dataset, expected", [
    ({"alpha": category(3, "a"), "beta": {"description": "d", "expected_effect": "e"},
      "gamma": category(3, "g")}, "category 'beta': 'pairs' must be a list"),
    ({"alpha": category(3, "a"), "beta": {**category(3, "b"), "pairs": [["x", "y"], ["only"],
                                                                       ["u", "v"]]},
      "gamma": category(3, "g")}, "category 'beta', pair 1: expected [statement_a, statement_b]"),
    ({"alpha": category(3, "a"), "beta": category(2, "b"), "gamma": category(3, "g")},
     "category 'beta': 2 pairs; each category needs at least 3"),
    ({"alpha": category(3, "a"), "beta": category(3, "b")}, "2 categories"),
    ([["a", "b"]], "top level must be an object"),
])
def test_bad_dataset_is_one_line_naming_category_and_pair(tmp_path, capfd, dataset, expected):
    write_params(tmp_path, models=["tiny:llama"])
    (tmp_path / "pairs.json").write_text(json.dumps(dataset))
    assert run("uniformity", tmp_path, "tiny:llama") == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("uniformity: error: pairs.json")
    assert expected in err[0]
    assert not (tmp_path / model_paths("tiny:llama").sweep_json("uniformity")).exists()


def test_model_without_eager_attention_is_a_one_line_error(tmp_path, capfd, mlflow_env):
    write_params(tmp_path, models=["tiny:llama"])
    module = stage_module("si")
    real = module.load_model
    module.load_model = lambda key, **kw: real(key, **{**kw, "attn_implementation": "sdpa"})
    assert run("si", tmp_path, "tiny:llama", module=module) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("si: error: tiny:llama: attention cannot be "
                                               "captured eagerly")
    assert "eager" in err[0] and "bf16, fp16, fp32" in err[0]
    assert not list((tmp_path / "results").rglob("*.json"))


def test_sanity_failure_messages():
    attempts = [S.SanityResult(False, "si_below_threshold", label) for label in ("bf16", "fp16")]
    msg = stage_module("si").sanity_failure_message("m", attempts)
    assert msg == ("m: no dtype variant passed the SI sanity check; every variant (bf16, fp16) "
                   "failed with: si_below_threshold")
    mixed = [S.SanityResult(False, "nan_inf", "bf16"), S.SanityResult(False, "x", "fp32")]
    assert "(bf16: nan_inf; fp32: x)" in stage_module("si").sanity_failure_message("m", mixed)


def test_command_line_error_is_one_line_with_status_2(tmp_path):
    write_params(tmp_path, models=["tiny:llama"])
    (tmp_path / "pairs.json").write_text(json.dumps({"alpha": category(1, "a")}))
    proc = subprocess.run([sys.executable, str(ROOT / "stages/uniformity.py"), "--model",
                           "tiny:llama"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "uniformity: error: pairs.json: 1 categories; Pearson r across categories needs at "
        "least 3: add categories"]


def test_dtype_walk_loads_each_variant_and_keeps_the_first_that_passes(monkeypatch):
    import torch

    module = stage_module("si")
    real = module.capture.attention_patterns

    def broken_in_bf16(lm, text, max_length):
        att = real(lm, text, max_length)
        return att * np.nan if lm.dtype == torch.bfloat16 else att

    monkeypatch.setattr(module.capture, "attention_patterns", broken_in_bf16)
    selection, lm = module.walk_dtype_variants("tiny:qwen2", "a sanity test prompt", ["bf16",
                                               "fp16", "fp32"], "cpu", 128, 0.05)
    assert selection.chosen == "fp16" and lm.dtype == torch.float16
    assert [(a.label, a.reason) for a in selection.attempts] == [("bf16", "nan_inf"),
                                                                  ("fp16", "passed")]
