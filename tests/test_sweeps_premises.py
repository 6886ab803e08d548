"""Premises and families of the sweep verdicts (B11, H25, UA peak stability).

The family of every kind of model key; premises met and not met; the rule decided within the
family that meets the premise; within-family steps checked against hand-computed values.
"""

import dataclasses
import json

import numpy as np
import pytest
from test_sweeps_uniformity import make_study_inputs

from scalelens.models.registry import REGISTRY
from scalelens.sweeps import gain as G
from scalelens.sweeps import si as S
from scalelens.sweeps import uniformity as U
from scalelens.sweeps import verdicts as V
from scalelens.sweeps.verdicts import to_json_text

NO_PHI = "no Phi-family model in the ladder; B11 compares Phi-1.5/Phi-2 with the Phi-3 references"
REFS = {"Phi-3-mini (3.8B)": {"si": 0.329, "size_b": 3.8},
        "Phi-3-medium (14B)": {"si": 0.334, "size_b": 14.0}}
# The default ladder: (key, family, nominal size in B)
DEFAULT = [("smollm2-135m", "smollm2", 0.135), ("gemma3-270m", "gemma3", 0.27),
           ("qwen2.5-coder-0.5b", "qwen2.5-coder", 0.494),
           ("qwen2.5-coder-1.5b", "qwen2.5-coder", 1.54)]


# ---------------------------------------------------------------- the family of a model key


def test_family_of_registry_keys_and_hub_ids():
    f = V.model_family("qwen2.5-coder-1.5b")
    assert (f.family, f.inferred, f.source) == ("qwen2.5-coder", False, "registry key")
    hub = V.model_family("microsoft/PHI-2", model_type="phi")  # hub ids are case-insensitive
    assert (hub.family, hub.inferred, hub.registry_key) == ("phi", False, "phi-2")
    assert hub.source == "registry entry phi-2 with this hub id"
    other = V.model_family("someorg/some-llama", model_type="llama")
    assert (other.family, other.inferred, other.hub_id) == ("llama", True, "someorg/some-llama")
    assert other.source.startswith("hub id not in the registry; inferred from the config's "
                                   "model_type 'llama'")


def test_family_of_tiny_keys_is_their_model_type_marked_inferred():
    f = V.model_family("tiny:llama", "llama")
    assert (f.family, f.inferred, f.registry_key) == ("llama", True, None)
    phi3 = V.model_family("tiny:phi3_medium", "phi3")  # the registry files phi3 under "phi"
    assert phi3.family == "phi" and "filed as family 'phi'" in phi3.source
    assert V.model_family("tiny:gemma3_text_1b", "gemma3_text").family == "gemma3"
    assert V.model_family("tiny:mystery", None).family == "unknown"


def test_model_type_aliases_agree_with_the_registry():
    aliased = [s for s in REGISTRY.values() if s.architecture in V.MODEL_TYPE_FAMILY]
    assert {s.architecture for s in aliased} == set(V.MODEL_TYPE_FAMILY)
    assert all(V.MODEL_TYPE_FAMILY[s.architecture] == s.family for s in aliased)


def test_family_of_local_folders(tmp_path):
    snap = tmp_path / "hub" / "models--EleutherAI--pythia-160m" / "snapshots" / "c0ffee"
    snap.mkdir(parents=True)  # `hf download` leaves a model here
    f = V.model_family(str(snap), "gpt_neox")
    assert (f.family, f.registry_key, f.hub_id, f.inferred) == (
        "pythia", "pythia-160m", "EleutherAI/pythia-160m", True)
    assert "hub cache folder models--EleutherAI--pythia-160m" in f.source
    saved = tmp_path / "ckpt"
    saved.mkdir()
    (saved / "config.json").write_text(json.dumps({"_name_or_path": "microsoft/phi-1_5",
                                                   "model_type": "phi"}))
    f = V.model_family(str(saved), "phi")
    assert f.registry_key == "phi-1.5" and "_name_or_path" in f.source
    plain = tmp_path / "plain"
    plain.mkdir()
    f = V.model_family(str(plain), "qwen2")
    assert (f.family, f.inferred) == ("qwen2", True) and f.source.startswith("local folder;")


def test_identity_takes_the_registry_size_where_there_is_an_entry():
    reg = V.identify_model("qwen2.5-coder-0.5b", "qwen2", counted_params=123).to_dict()
    assert reg["n_params"] == 494e6 and reg["size_b"] == pytest.approx(0.494)
    assert reg["n_params_source"] == "registry (nominal size)" and reg["family_inferred"] is False
    hub = V.identify_model("EleutherAI/pythia-70m", "gpt_neox", counted_params=123)
    assert hub.n_params == 70e6
    assert hub.n_params_source == "registry entry pythia-70m (nominal size)"
    tiny = V.identify_model("tiny:llama", "llama", counted_params=37792).to_dict()
    assert tiny["n_params"] == 37792 and tiny["n_params_source"].startswith("counted")
    assert (tiny["family"], tiny["family_inferred"]) == ("llama", True)


def test_a_per_model_json_without_a_family_names_the_stage_to_rerun():
    with pytest.raises(V.MissingFamilyError, match="dvc repro -f gain@EleutherAI--pythia-70m"):
        V.family_member_from_doc("EleutherAI/pythia-70m", {"model": "x"}, "gain")
    m = V.family_member_from_doc("m", {"family": "f", "size_b": 1.5, "family_inferred": True},
                                 "si")
    assert m == V.FamilyMember("m", "f", 1.5, True)


# ---------------------------------------------------------------- premises and steps


def members(rows=DEFAULT):
    return [V.FamilyMember(k, f, s) for k, f, s in rows]


def test_family_premises_on_the_default_ladder():
    h25 = G.h25_premise(members())
    assert not h25.met and h25.decided_on == ()
    assert h25.reason == ("no family has 3 or more models in the ladder (models per family: "
                          "smollm2 1, gemma3 1, qwen2.5-coder 2)")
    ua = U.peak_premise(members())
    assert ua.met and ua.decided_on == ("qwen2.5-coder",)
    assert ua.reason == "met by qwen2.5-coder (2 sizes); the rule is applied within this family"
    assert ua.checked["n_sizes_per_family"] == {"smollm2": 1, "gemma3": 1, "qwen2.5-coder": 2}
    assert ua.checked["models_per_family"]["qwen2.5-coder"] == ["qwen2.5-coder-0.5b",
                                                               "qwen2.5-coder-1.5b"]


def test_two_models_of_one_size_are_one_size():
    same = members([("a", "f", 1.0), ("b", "f", 1.0), ("c", "f", None)])
    assert not U.peak_premise(same).met  # one size (c has none)
    assert G.h25_premise(same).met  # H25 counts models: 3


def test_within_family_steps_join_consecutive_sizes():
    ms = members([("b", "f", 2.0), ("x", "g", 1.0), ("a", "f", 1.0), ("c", "f", 3.0)])
    q = {"a": {"v": V.Quantity(1.0, 0.5, 1.5)}, "b": {"v": V.Quantity(2.0, 1.6, 2.4)},
         "c": {"v": V.Quantity(2.1)}, "x": {"v": V.Quantity(9.0)}}
    w = V.within_family_steps(ms, q)
    assert w.families == {"f": ("a", "b", "c"), "g": ("x",)}
    assert [(s.before, s.after) for s in w.steps] == [("a", "b"), ("b", "c")]
    first, second = (s.changes["v"] for s in w.steps)
    assert first.delta == pytest.approx(1.0) and first.intervals_overlap is False  # 1.5 < 1.6
    assert second.delta == pytest.approx(0.1) and second.intervals_overlap is None  # no interval
    doc = json.loads(to_json_text(w))
    assert doc["n_steps"] == 2 and doc["steps"][1]["changes"]["v"]["after"]["low"] is None
    assert doc["steps"][0]["size_before_b"] == 1.0


def test_combining_family_verdicts():
    assert V.combine_family_verdicts({"f": ("A", "why")}) == ("A", "decided within family f: why")
    assert V.combine_family_verdicts({"f": ("A", "x"), "g": ("A", "y")})[0] == "A"
    verdict, reason = V.combine_family_verdicts({"f": ("A", "x"), "g": ("B", "y")})
    assert verdict == "INCONCLUSIVE" and reason == ("the families that meet the premise "
                                                    "disagree: f: A (x); g: B (y)")


# ---------------------------------------------------------------- B11


def si_row(name, value, family, size, half=0.01):
    return S.MeasuredSI(name, value, value - half, value + half, size, family=family)


def test_b11_without_a_phi_model_is_not_applicable_and_reports_every_model():
    values = {"smollm2-135m": 0.52, "gemma3-270m": 0.41, "qwen2.5-coder-0.5b": 0.30,
              "qwen2.5-coder-1.5b": 0.45}
    ladder = [si_row(k, values[k], f, s, half=0.02) for k, f, s in DEFAULT]
    v = S.b11_verdict(ladder, REFS)
    assert (v.verdict, v.tier, v.b11_recommendation, v.seed_rule_verdict) == (
        "NOT_APPLICABLE", None, None, None)
    assert v.reason == v.premise.reason == NO_PHI and not v.premise.met
    assert v.premise.checked["measured_phi_family_models"] == []
    assert v.possible_verdicts == ("NOT_APPLICABLE",) and not v.intervals_could_change_verdict
    assert not any(e.counted for e in v.models) and v.n_total == 0
    rows = {e.name: e for e in v.models}
    assert rows["gemma3-270m"].si == 0.41 and rows["gemma3-270m"].band_status == "outside"
    assert rows["qwen2.5-coder-0.5b"].high == pytest.approx(0.32)
    (step,) = v.within_family.steps
    assert (step.family, step.before, step.after) == ("qwen2.5-coder", "qwen2.5-coder-0.5b",
                                                      "qwen2.5-coder-1.5b")
    c = step.changes["si_seed"]
    assert (c.before.point, c.before.low, c.before.high) == pytest.approx((0.30, 0.28, 0.32))
    assert c.delta == pytest.approx(0.15) and c.intervals_overlap is False  # 0.32 < 0.43
    sizes = [s for _, _, s in DEFAULT]
    sis = [values[k] for k, _, _ in DEFAULT]
    assert v.across_family["linear_slope_si_per_b"] == pytest.approx(np.polyfit(sizes, sis, 1)[0])
    assert v.across_family["label"].startswith("descriptive only")
    doc = json.loads(to_json_text(v))
    assert doc["tier"] is None and doc["premise"]["met"] is False
    assert doc["within_family"]["steps"][0]["changes"]["si_seed"]["delta"] == pytest.approx(0.15)


def test_b11_counts_the_phi_family_and_the_references_only():
    ladder = [si_row("phi-1.5", 0.31, "phi", 1.3), si_row("phi-2", 0.35, "phi", 2.7),
              si_row("qwen2.5-coder-0.5b", 0.60, "qwen2.5-coder", 0.494)]
    v = S.b11_verdict(ladder, REFS)
    assert v.premise.met and v.premise.decided_on == ("phi",)
    assert v.premise.checked["measured_phi_family_models"] == ["phi-1.5", "phi-2"]
    # qwen is far outside the band but not Phi: it does not make a size confound
    assert v.verdict == S.HERITAGE_CONFIRMED and v.tier == "A-Tier"
    assert (v.n_total, v.n_within) == (4, 4)
    assert {e.name: e.counted for e in v.models} == {
        "phi-1.5": True, "phi-2": True, "qwen2.5-coder-0.5b": False, "Phi-3-mini (3.8B)": True,
        "Phi-3-medium (14B)": True}
    assert "not counted (not Phi family): qwen2.5-coder-0.5b" in v.notes
    (step,) = v.within_family.steps
    assert step.family == "phi" and step.changes["si_seed"].delta == pytest.approx(0.04)
    outside = S.b11_verdict([si_row("phi-2", 0.50, "phi", 2.7), ladder[2]], REFS)
    assert outside.verdict == S.SIZE_CONFOUND_DETECTED and outside.reason.startswith("1/3")
    alone = S.b11_verdict([si_row("phi-2", 0.33, "phi", 2.7)], {})
    assert alone.premise.met and alone.verdict == "INCONCLUSIVE" and "at least 2" in alone.reason


# ---------------------------------------------------------------- H25


def gain_in(model, family, size, rho, gains):
    return G.GainModelInput(model, rho, np.asarray(gains, dtype=float), family, size)


def test_h25_not_applicable_on_the_default_ladder_with_the_qwen_step():
    # rho with the seed's d_head = hidden // heads, from the registry configs
    rho = {"smollm2-135m": 9 / 64, "gemma3-270m": 4 / 160, "qwen2.5-coder-0.5b": 14 / 64,
           "qwen2.5-coder-1.5b": 12 / 128}
    gains = {"smollm2-135m": [1.1, 1.3], "gemma3-270m": [0.9, 0.7],
             "qwen2.5-coder-0.5b": [1.2, 1.4], "qwen2.5-coder-1.5b": [0.8, 1.0]}
    seed_in = [gain_in(k, f, s, rho[k], gains[k]) for k, f, s in DEFAULT]
    last_in = [dataclasses.replace(m, gain_per_prompt=m.gain_per_prompt / 2) for m in seed_in]
    rep = G.h25_report(seed_in, last_in, n_boot=200, n_perm=100)
    assert rep.g_seed.verdict == rep.g_last.verdict == "NOT_APPLICABLE"
    assert rep.g_seed.reason == rep.premise.reason and rep.g_seed.by_family == {}
    (step,) = rep.within_family.steps
    assert (step.before, step.after) == ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
    assert step.changes["rho"].before.point == pytest.approx(0.21875)
    assert step.changes["rho"].after.point == pytest.approx(0.09375)
    seed_step, last_step = step.changes["G_seed"], step.changes["G_last"]
    assert (seed_step.before.point, seed_step.after.point) == pytest.approx((1.3, 0.9))
    assert (last_step.before.point, last_step.after.point) == pytest.approx((0.65, 0.45))
    assert 1.2 <= seed_step.before.low <= 1.3 <= seed_step.before.high <= 1.4
    assert seed_step.intervals_overlap is False  # [1.2, 1.4] vs [0.8, 1.0]
    across = rep.to_dict()["g_seed"]["across_family"]
    means = [np.mean(gains[k]) for k, _, _ in DEFAULT]
    assert across["pearson_r"] == pytest.approx(np.corrcoef([rho[k] for k, _, _ in DEFAULT],
                                                            means)[0, 1])
    assert across["label"].startswith("descriptive only") and "verdict" not in across


PYTHIA = [("pythia-70m", 0.07, 8 / 64, [1.3, 1.5]), ("pythia-160m", 0.16, 12 / 64, [1.1, 1.3]),
          ("pythia-410m", 0.41, 16 / 64, [0.9, 1.1])]


def test_h25_decided_within_the_family_that_meets_the_premise():
    seed_in = [gain_in(k, "pythia", s, r, g) for k, s, r, g in PYTHIA]
    seed_in.append(gain_in("gemma3-270m", "gemma3", 0.27, 0.025, [0.1, 0.3]))
    rep = G.h25_report(seed_in, seed_in, n_boot=200, n_perm=100)
    assert rep.premise.met and rep.premise.decided_on == ("pythia",)
    v = rep.g_seed.by_family["pythia"]
    assert [e.model for e in v.models] == ["pythia-70m", "pythia-160m", "pythia-410m"]
    rho, g = [0.125, 0.1875, 0.25], [1.4, 1.2, 1.0]
    assert v.pearson_r == pytest.approx(np.corrcoef(rho, g)[0, 1])
    assert v.pearson_r == pytest.approx(-1.0)
    # the one high-rho model (410m, rho 0.25) has G = 1.0, not < 1: the rate is 0, r decides
    assert v.n_high_rho == 1 and v.high_rho_dampen_rate == 0.0
    assert rep.g_seed.verdict == G.VALIDATED
    assert rep.g_seed.reason == "decided within family pythia: r(rho, G) = -1.000 < -0.3 with 3 " \
                                "models"
    # across families the low-rho, low-G Gemma model turns r positive: descriptive only
    across = rep.g_seed.across_family
    assert across.pearson_r == pytest.approx(np.corrcoef(rho + [0.025], g + [0.2])[0, 1])
    assert across.pearson_r > 0


def test_h25_families_that_disagree_are_inconclusive():
    seed_in = [gain_in(k, "pythia", s, r, g) for k, s, r, g in PYTHIA]
    seed_in += [gain_in(f"g{i}", "gemma3", i + 1.0, rho, [gain])
                for i, (rho, gain) in enumerate([(0.02, 0.9), (0.03, 1.0), (0.04, 1.1)])]
    rep = G.h25_report(seed_in, seed_in, n_boot=100, n_perm=100)
    assert rep.premise.decided_on == ("pythia", "gemma3")
    assert rep.g_seed.by_family["gemma3"].verdict == G.NOT_VALIDATED  # r = +1, no high rho
    assert rep.g_seed.verdict == "INCONCLUSIVE"
    assert rep.g_seed.reason.startswith("the families that meet the premise disagree: pythia: "
                                        "VALIDATED (")


# ---------------------------------------------------------------- UA peak stability


def peak(model, family, size, n_layers, layer, r_low=0.4, r_high=0.8):
    pct = layer / n_layers * 100
    summary = U.PeakSummary(0.6, layer, pct, -0.5, 0, 0.0, n_layers, 0.1, ())
    return U.ModelPeak(model, n_layers, summary, np.full(20, pct), family, size, False,
                       pct - 5.0, pct + 5.0, r_low, r_high)


# peak layers on the layer_step-4 grids of the real depths (30, 18, 24 and 28 layers)
DEFAULT_PEAKS = [peak("smollm2-135m", "smollm2", 0.135, 30, 8),
                 peak("gemma3-270m", "gemma3", 0.27, 18, 16),
                 peak("qwen2.5-coder-0.5b", "qwen2.5-coder", 0.494, 24, 8),
                 peak("qwen2.5-coder-1.5b", "qwen2.5-coder", 1.54, 28, 12)]


def test_peak_stability_decided_on_the_qwen_pair_of_the_default_ladder():
    rep = U.peak_stability_report(DEFAULT_PEAKS)
    assert rep.premise.decided_on == ("qwen2.5-coder",)
    v = rep.by_family["qwen2.5-coder"]
    expected = abs(12 / 28 * 100 - 8 / 24 * 100) / 2  # std (ddof 0) of two values
    assert v.std_peak_pct == pytest.approx(expected)
    assert expected == pytest.approx(4.7619, abs=1e-4)
    assert rep.verdict == U.STABLE and not rep.intervals_could_change_verdict
    assert rep.reason == ("decided within family qwen2.5-coder: std of peak depth 4.76 % < 10.0 "
                          "% over 2 models")
    # across families the spread is far larger (it would have said SHIFTS): descriptive only
    pcts = [8 / 30 * 100, 16 / 18 * 100, 8 / 24 * 100, 12 / 28 * 100]
    assert rep.across_family.std_peak_pct == pytest.approx(np.std(pcts))
    assert rep.across_family.std_peak_pct > 10
    (step,) = rep.within_family.steps
    depth = step.changes["peak_depth_pct"]
    assert (depth.before.point, depth.after.point) == pytest.approx((100 / 3, 300 / 7))
    assert (depth.before.low, depth.after.high) == pytest.approx((100 / 3 - 5, 300 / 7 + 5))
    assert depth.delta == pytest.approx(300 / 7 - 100 / 3) and depth.intervals_overlap is True
    assert (step.changes["peak_layer"].before.point, step.changes["n_layers"].after.point) == (
        8, 28)
    doc = json.loads(to_json_text(rep))
    assert "verdict" not in doc["across_family"] and doc["by_family"]["qwen2.5-coder"][
        "verdict"] == U.STABLE
    assert doc["premise"]["met"] is True and doc["within_family"]["n_steps"] == 1


def test_peak_stability_not_applicable_without_two_sizes_of_one_family():
    rep = U.peak_stability_report(DEFAULT_PEAKS[:3])
    assert rep.verdict == "NOT_APPLICABLE" and rep.by_family == {}
    assert rep.reason == ("no family has 2 or more sizes in the ladder (sizes per family: "
                          "smollm2 1, gemma3 1, qwen2.5-coder 1)")
    assert rep.across_family.std_peak_pct == pytest.approx(
        np.std([8 / 30 * 100, 16 / 18 * 100, 8 / 24 * 100]))
    assert rep.within_family.steps == () and not rep.intervals_could_change_verdict


def test_model_peak_reads_family_size_and_peak_intervals_from_the_json():
    ea, eb, na, nb, cat = make_study_inputs(5)
    s = U.uniformity_asymmetry_study(ea, eb, na, nb, cat, [0, 2, 4], 4, model="m", n_boot=30)
    doc = {**json.loads(to_json_text(s)), "family": "pythia", "size_b": 0.41,
           "family_inferred": False}
    p = U.model_peak_from_dict(doc)
    i = list(s.layers).index(s.peak.max_pos_layer)
    assert (p.family, p.size_b) == ("pythia", 0.41)
    assert (p.peak_r_low, p.peak_r_high) == pytest.approx((s.r_low[i], s.r_high[i]))
    assert (p.peak_pct_low, p.peak_pct_high) == pytest.approx((s.peak_pct_low, s.peak_pct_high))
    direct = U.model_peak(s, "pythia", 0.41)
    assert (direct.peak_r_low, direct.peak_pct_high) == pytest.approx((p.peak_r_low,
                                                                       p.peak_pct_high))
