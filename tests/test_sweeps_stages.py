"""Stages si, gain, uniformity and their verdicts on tiny models, in a temp folder; bad input.

The stages run in-process through their own entry point (`run_stage`: argument parsing, one-line
errors, exit status 2, declared outputs removed on failure); one test runs a stage as a subprocess
to check the command line itself.
"""

import contextlib
import json
import shutil
import subprocess
import sys
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
NO_PHI = "no Phi-family model in the ladder; B11 compares Phi-1.5/Phi-2 with the Phi-3 references"


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
    # tiny random models pass the SI sanity check only in bf16 (its rounding): walk as the seed
    data["si"].update(n_boot=40, cpu_dtype_order=["bf16", "fp16", "fp32"])
    data["gain"].update(n_boot=40, n_perm=200)
    data["uniformity"].update(n_boot=40, layer_step=1, dataset="pairs.json")
    for section, values in sections.items():
        data[section].update(values)
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    if not (folder / "pairs.json").exists():  # params name it; a test may overwrite it
        (folder / "pairs.json").write_text(json.dumps(SMALL_DATASET))
    return path


def run(name: str, folder: Path, model: str | None = None, params: str = "params.yaml",
        module=None) -> int:
    """Run stage `name` as its command line would, in `folder`; the exit status."""
    module = module or stage_module(name)
    argv = [f"stages/{name}.py", "--params", params] + (["--model", model] if model else [])
    old_argv = sys.argv
    sys.argv = argv
    try:
        with contextlib.chdir(folder):
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
        # a tiny key's family is its config's model_type, marked inferred, in every study
        arch = model.removeprefix("tiny:")
        for stage in ("si", "gain", "uniformity"):
            d = read(pipeline, model_paths(model).sweep_json(stage))
            assert (d["family"], d["family_inferred"], d["model_type"]) == (arch, True, arch)
            assert d["family_source"].startswith(f"tiny random model {model}; inferred")
            assert d["size_b"] == pytest.approx(doc["n_params"] / 1e9)
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


def test_verdict_jsons_state_premise_rule_numbers_intervals(pipeline):
    # two tiny models of two families (llama, gpt_neox): no premise is met
    b11 = read(pipeline, LadderPaths.verdict_json("si"))
    assert b11["verdict"] == "NOT_APPLICABLE" and b11["tier"] is None
    assert b11["premise"]["met"] is False and b11["reason"] == NO_PHI == b11["premise"]["reason"]
    assert b11["premise"]["checked"]["families_of_measured_models"] == {
        "tiny:llama": "llama", "tiny:gpt_neox": "gpt_neox"}
    assert b11["rule"].startswith("Seed 002")
    measured = [m for m in b11["models"] if m["source"] == "measured"]
    assert [m["name"] for m in measured] == MODELS and not any(m["counted"] for m in measured)
    assert {"low", "high", "band_status", "family"} <= set(measured[0])  # still reported
    assert b11["within_family"]["n_steps"] == 0
    h25 = read(pipeline, LadderPaths.verdict_json("gain"))
    assert h25["premise"]["reason"] == ("no family has 3 or more models in the ladder (models per "
                                        "family: llama 1, gpt_neox 1)")
    for key in ("g_seed", "g_last"):
        v = h25[key]
        assert v["rule"].startswith("Seed 004") and v["verdict"] == "NOT_APPLICABLE"
        across = v["across_family"]
        assert across["label"].startswith("descriptive only") and across["n_models"] == 2
        assert across["pearson_r"] is None and across["models"][0]["gain"]["low"] is not None
    assert h25["verdict_g_seed"] == h25["g_seed"]["verdict"]
    peak = read(pipeline, LadderPaths.verdict_json("uniformity"))
    assert peak["verdict"] == "NOT_APPLICABLE" and peak["rule"].startswith("Seed 003")
    across = peak["across_family"]
    pcts = [m["max_pos_pct"] for m in across["models"]]
    assert across["std_peak_pct"] == pytest.approx(float(np.std(pcts)))
    assert [m["family"] for m in across["models"]] == ["llama", "gpt_neox"]
    for fig in ("si_ladder", "gain", "uniformity"):
        assert (pipeline / LadderPaths.verdict_fig(fig)).read_bytes()[:4] == b"\x89PNG"


def test_verdicts_are_mlflow_tags(pipeline, mlflow_env):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_env / 'mlflow.db'}")

    def tags(stage):
        exp = client.get_experiment_by_name(stage)
        return client.search_runs([exp.experiment_id], max_results=1)[0].data.tags

    b11 = read(pipeline, LadderPaths.verdict_json("si"))
    assert tags("si_verdict")["verdict.B11"] == b11["verdict"] == "NOT_APPLICABLE"
    assert tags("si_verdict")["tier.B11"] == "none (premise not met)"
    assert tags("si_verdict")["premise_met.B11"] == "False"
    si_runs = client.search_runs([client.get_experiment_by_name("si").experiment_id])
    assert {r.data.tags["family"] for r in si_runs} == {"llama", "gpt_neox"}
    h25 = read(pipeline, LadderPaths.verdict_json("gain"))
    assert tags("gain_verdict")["verdict.H25.G_seed"] == h25["verdict_g_seed"]
    assert tags("gain_verdict")["verdict.H25.G_last"] == h25["verdict_g_last"]
    peak = read(pipeline, LadderPaths.verdict_json("uniformity"))
    assert tags("uniformity_verdict")["verdict.peak_stability"] == peak["verdict"]
    assert tags("gain_verdict")["decided_on.H25"] == "none"
    si_tags = tags("si")
    assert si_tags["dtype_variant"] == "bf16" and si_tags["seeds"] == "42,123,456"
    assert si_tags["prompt_md5.standard10_v3"] == "715065bab181f46bf12ed471951141e2"


def test_one_model_gives_not_applicable_verdicts_not_a_crash(pipeline, tmp_path):
    shutil.copytree(pipeline / "results", tmp_path / "results")
    write_params(tmp_path, models=["tiny:llama"], si={"references": {}})
    for name in ("si_verdict", "gain_verdict", "uniformity_verdict"):
        assert run(name, tmp_path) == 0
    for name, key in (("si_verdict", None), ("gain_verdict", "g_seed"),
                      ("gain_verdict", "g_last"), ("uniformity_verdict", None)):
        doc = read(tmp_path, LadderPaths.verdict_json(name.removesuffix("_verdict")))
        v = doc[key] if key else doc
        assert v["verdict"] == "NOT_APPLICABLE", name
        assert not v["intervals_could_change_verdict"]
        assert doc["premise"]["met"] is False and v["reason"] == doc["premise"]["reason"]


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


# ---------------------------------------------------------------- verdicts on hand-made results


def identity(key: str) -> dict:
    """What the per-model stages record for a registry key (family, nominal size)."""
    from scalelens.sweeps.verdicts import identify_model

    return identify_model(key, None, counted_params=0).to_dict()


def write_per_model(folder: Path, key: str, si_point: float, rho: float, gains: list,
                    n_layers: int, peak_layer: int) -> None:
    """Per-model jsons of si, gain and uniformity for one registry key, with chosen numbers."""
    from scalelens.sweeps import uniformity as U

    ident = identity(key)
    si_doc = {"model": key, "dtype": "bf16", "architecture": {}, "seed_summary": {},
              "prompt_md5": "715065bab181f46bf12ed471951141e2", **ident,
              "si": {name: {"point": si_point + shift, "low": si_point + shift - 0.02,
                            "high": si_point + shift + 0.02, "level": 0.95, "n_boot": 20,
                            "n_valid_replicates": 20}
                     for name, shift in (("si_seed", 0.0), ("si_heads", 0.1))}}
    gain_doc = {"model": key, "rho": rho, "g_seed_per_prompt": gains,
                "g_last_per_prompt": [g * 0.9 for g in gains], "g_with_ln": {}, "d_head": 64,
                "head_dim": 64, "hidden_state_layout": {}, "prompt_md5": "x", **ident}
    layers = U.select_layers(n_layers, 4)
    depth = np.array(layers) / n_layers * 100
    r = 0.8 * np.exp(-(((depth - peak_layer / n_layers * 100) / 30) ** 2)) - 0.3
    pk = U.peak_summary(layers, r, n_layers)
    study = U.UniformityStudy(
        model=key, n_layers=n_layers, layers=layers, depth_pct=depth, r=r,
        p=np.full(len(layers), 0.2), r_low=r - 0.2, r_high=r + 0.2,
        r_replicates=np.zeros((0, len(layers))), category_names=("a", "b", "c"),
        category_ua=np.zeros((len(layers), 3)), category_preference=np.zeros(3), peak=pk,
        peak_pct_replicates=np.full(20, pk.max_pos_pct), peak_pct_low=pk.max_pos_pct - 4,
        peak_pct_high=pk.max_pos_pct + 4, bos_rule="kept position 0", n_pairs=9, n_boot=20,
        level=0.95)
    ua_doc = {**json.loads(json.dumps(study.to_dict())), **ident, "dataset_md5": "d"}
    for stage, doc in (("si", si_doc), ("gain", gain_doc), ("uniformity", ua_doc)):
        path = folder / model_paths(key).sweep_json(stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))


# the default ladder: (key, SI_seed, rho (seed's d_head), G per prompt, layers, peak layer)
DEFAULT_LADDER = [("smollm2-135m", 0.52, 9 / 64, [1.1, 1.3], 30, 8),
                  ("gemma3-270m", 0.41, 4 / 160, [0.9, 0.7], 18, 16),
                  ("qwen2.5-coder-0.5b", 0.30, 14 / 64, [1.2, 1.4], 24, 8),
                  ("qwen2.5-coder-1.5b", 0.45, 12 / 128, [0.8, 1.0], 28, 12)]


def run_verdicts(folder: Path, ladder) -> dict:
    write_params(folder, models=[row[0] for row in ladder])
    for row in ladder:
        write_per_model(folder, *row)
    for name in ("si_verdict", "gain_verdict", "uniformity_verdict"):
        assert run(name, folder) == 0, name
    return {name: read(folder, LadderPaths.verdict_json(name)) for name in
            ("si", "gain", "uniformity")}


def test_default_ladder_shape_b11_and_h25_not_applicable_peak_decided_on_qwen(tmp_path,
                                                                            mlflow_env):
    v = run_verdicts(tmp_path, DEFAULT_LADDER)
    b11, h25, ua = v["si"], v["gain"], v["uniformity"]
    assert b11["verdict"] == "NOT_APPLICABLE" and b11["reason"] == NO_PHI and b11["tier"] is None
    assert b11["per_model"]["qwen2.5-coder-1.5b"]["family"] == "qwen2.5-coder"
    (step,) = b11["within_family"]["steps"]
    assert (step["before"], step["after"]) == ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
    assert step["changes"]["si_seed"]["before"] == pytest.approx(
        {"point": 0.30, "low": 0.28, "high": 0.32})
    assert step["changes"]["si_seed"]["delta"] == pytest.approx(0.15)
    assert h25["verdict_g_seed"] == h25["verdict_g_last"] == "NOT_APPLICABLE"
    (step,) = h25["within_family"]["steps"]
    assert step["changes"]["rho"]["after"]["point"] == pytest.approx(0.09375)
    assert step["changes"]["G_seed"]["delta"] == pytest.approx(0.9 - 1.3)
    assert step["changes"]["G_last"]["before"]["point"] == pytest.approx(1.3 * 0.9)
    assert h25["g_seed"]["across_family"]["n_models"] == 4
    assert ua["premise"]["decided_on"] == ["qwen2.5-coder"] and ua["verdict"] == "STABLE"
    assert ua["by_family"]["qwen2.5-coder"]["std_peak_pct"] == pytest.approx(
        (12 / 28 - 8 / 24) * 100 / 2)
    (step,) = ua["within_family"]["steps"]
    assert step["changes"]["peak_depth_pct"]["after"]["low"] == pytest.approx(12 / 28 * 100 - 4)
    assert ua["across_family"]["std_peak_pct"] > 10  # 88.9 % for Gemma: descriptive only
    for fig in ("si_ladder", "gain", "uniformity"):
        assert (tmp_path / LadderPaths.verdict_fig(fig)).read_bytes()[:4] == b"\x89PNG"


def test_phi_and_pythia_ladder_decides_b11_on_phi_and_h25_on_pythia(tmp_path, mlflow_env):
    ladder = [("phi-1.5", 0.31, 32 / 64, [0.9, 0.95], 24, 8),
              ("phi-2", 0.35, 32 / 80, [0.85, 0.9], 32, 12),
              ("pythia-70m", 0.60, 8 / 64, [1.3, 1.5], 6, 4),
              ("pythia-160m", 0.55, 12 / 64, [1.1, 1.3], 12, 4),
              ("pythia-410m", 0.50, 16 / 64, [0.9, 1.1], 24, 8)]
    v = run_verdicts(tmp_path, ladder)
    b11, h25, ua = v["si"], v["gain"], v["uniformity"]
    assert b11["premise"]["met"] and b11["verdict"] == "HERITAGE_CONFIRMED"
    assert b11["tier"] == "A-Tier" and b11["n_total"] == 4  # phi-1.5, phi-2 and two references
    assert [m["name"] for m in b11["models"] if not m["counted"]] == [
        "pythia-70m", "pythia-160m", "pythia-410m"]
    assert h25["premise"]["decided_on"] == ["pythia"]
    assert h25["g_seed"]["by_family"]["pythia"]["pearson_r"] == pytest.approx(-1.0)
    assert h25["verdict_g_seed"] == "VALIDATED"
    assert [m["model"] for m in h25["g_seed"]["by_family"]["pythia"]["models"]] == [
        "pythia-70m", "pythia-160m", "pythia-410m"]
    assert ua["premise"]["decided_on"] == ["phi", "pythia"]
    phi_std = np.std([8 / 24 * 100, 12 / 32 * 100])  # 2.08 %: STABLE
    pythia_std = np.std([4 / 6 * 100, 4 / 12 * 100, 8 / 24 * 100])  # 15.7 %: SHIFTS
    assert ua["by_family"]["phi"]["std_peak_pct"] == pytest.approx(phi_std)
    assert ua["by_family"]["pythia"]["std_peak_pct"] == pytest.approx(pythia_std)
    assert ua["verdict"] == "INCONCLUSIVE" and "disagree" in ua["reason"]
    assert len(ua["within_family"]["steps"]) == 3  # phi 1.3 -> 2.7; pythia 70m -> 160m -> 410m


def test_verdict_on_a_result_without_a_family_names_the_stage_to_rerun(tmp_path, capfd,
                                                                       mlflow_env):
    write_params(tmp_path, models=["smollm2-135m", "gemma3-270m"])
    for row in DEFAULT_LADDER[:2]:
        write_per_model(tmp_path, *row)
    path = tmp_path / model_paths("gemma3-270m").sweep_json("gain")
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items()
                                if k != "family"}))
    assert run("gain_verdict", tmp_path) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dvc repro -f gain@gemma3-270m" in err[0]


def test_gain_stage_records_the_family_of_a_hub_id_and_a_local_folder(tmp_path, mlflow_env,
                                                                      monkeypatch):
    from hub_cache import save_as_hub_download

    from scalelens.models import loading

    # huggingface_hub reads HF_HOME once, at import (tests/test_hub_offline.py loads from a
    # hub cache in a fresh interpreter); here the hub load reads the snapshot folder directly
    snap = save_as_hub_download(tmp_path / "hf", "EleutherAI/pythia-70m",
                                load_model("tiny:gpt_neox"))
    monkeypatch.setattr(loading, "_load_hub", lambda hub_id, dtype, attn: loading._from_pretrained(
        str(snap), hub_id, dtype, attn))
    folder = tmp_path / "my-ckpt"
    phi = load_model("tiny:phi")
    phi.model.save_pretrained(folder)
    phi.tokenizer.save_pretrained(folder)
    keys = ["EleutherAI/pythia-70m", str(folder)]
    write_params(tmp_path, models=keys)
    for key in keys:
        assert run("gain", tmp_path, key) == 0, key
    hub = read(tmp_path, model_paths(keys[0]).sweep_json("gain"))
    assert (hub["family"], hub["family_inferred"], hub["registry_key"]) == (
        "pythia", False, "pythia-70m")
    assert hub["n_params"] == 70e6 and hub["n_params_source"].startswith("registry entry")
    local = read(tmp_path, model_paths(keys[1]).sweep_json("gain"))
    assert (local["family"], local["family_inferred"], local["model_type"]) == ("phi", True,
                                                                                "phi")
    assert local["family_source"].startswith("local folder; inferred from the config's "
                                             "model_type 'phi'")
    assert local["n_params"] == sum(p.numel() for p in phi.model.parameters())
