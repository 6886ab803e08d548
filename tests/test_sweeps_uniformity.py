"""Uniformity asymmetry (seed 003): dataset schema, formulas, layer summary, peak verdict."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from scalelens.sweeps import uniformity as U
from scalelens.sweeps.bootstrap import resample_counts
from scalelens.sweeps.verdicts import to_json_text

DEFAULT_DATASET = Path(__file__).resolve().parents[1] / "data" / "statements" / "default_pairs.json"


def category(n=3, prefix="s"):
    return {"description": "d", "expected_effect": "e",
            "pairs": [[f"{prefix} a {i}", f"{prefix} b {i}"] for i in range(n)]}


# ---------------------------------------------------------------- dataset


def test_default_dataset_follows_schema_and_size():
    ds = U.load_statement_pairs(DEFAULT_DATASET)
    assert len(ds.categories) >= 6
    for c in ds.categories:
        assert len(c.pairs) >= 20 and c.description and c.expected_effect
        assert all(len(s.split()) <= 20 for pair in c.pairs for s in pair)
    assert ds.category_index().shape == (ds.n_pairs,)
    assert ds.statements_a()[0] != ds.statements_b()[0]


def test_dataset_errors_name_category_and_pair():
    raw = {"x": category(), "y": category(), "z": category()}
    assert U.validate_statement_pairs(raw).n_pairs == 9
    bad_pair = json.loads(json.dumps(raw))
    bad_pair["y"]["pairs"][2] = ["only one"]
    with pytest.raises(U.DatasetSchemaError, match=r"category 'y', pair 2"):
        U.validate_statement_pairs(bad_pair)
    empty_string = json.loads(json.dumps(raw))
    empty_string["z"]["pairs"][1] = ["fine", "  "]
    with pytest.raises(U.DatasetSchemaError, match=r"category 'z', pair 1"):
        U.validate_statement_pairs(empty_string)
    few = {"x": category(), "y": category(2), "z": category()}
    with pytest.raises(U.DatasetSchemaError, match=r"category 'y'.*2 pairs.*at least 3"):
        U.validate_statement_pairs(few)
    no_desc = json.loads(json.dumps(raw))
    del no_desc["x"]["description"]
    with pytest.raises(U.DatasetSchemaError, match=r"category 'x'.*'description'"):
        U.validate_statement_pairs(no_desc)
    with pytest.raises(U.DatasetSchemaError, match="top level"):
        U.validate_statement_pairs([["a", "b"]])
    with pytest.raises(U.DatasetSchemaError, match="at least 3"):
        U.validate_statement_pairs({"x": category(), "y": category()})


def test_load_reports_missing_and_invalid_file(tmp_path):
    with pytest.raises(U.DatasetSchemaError, match="not found"):
        U.load_statement_pairs(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(U.DatasetSchemaError, match="not valid JSON"):
        U.load_statement_pairs(broken)


# ---------------------------------------------------------------- per-statement helpers


def test_select_layers_every_step_plus_last():
    assert U.select_layers(6, 4) == (0, 4, 6)
    assert U.select_layers(8, 4) == (0, 4, 8)
    assert U.select_layers(24) == (0, 4, 8, 12, 16, 20, 24)


def test_bos_rule_and_pooling():
    pythia = U.bos_rule(first_input_id=510, bos_token_id=0)
    assert not pythia.skip_first and "not the BOS" in pythia.rule
    llama = U.bos_rule(first_input_id=1, bos_token_id=1)
    assert llama.skip_first and "skipped position 0" in llama.rule
    assert not U.bos_rule(5, None).skip_first
    h = np.array([[[10.0, 0.0], [1.0, 2.0], [3.0, 4.0]]])
    np.testing.assert_allclose(U.mean_pooled_embeddings(h, True), [[2.0, 3.0]])
    np.testing.assert_allclose(U.mean_pooled_embeddings(h, False), [[14 / 3, 2.0]])
    with pytest.raises(ValueError, match="nothing left"):
        U.mean_pooled_embeddings(h[:, :1], True)


def test_next_token_nll_hand_case():
    assert U.next_token_nll_nats(np.zeros((3, 4)), np.array([0, 1, 2])) == pytest.approx(
        math.log(4))
    logits = np.array([[0.0, math.log(3.0)], [0.0, 0.0]])  # p(token 1 | token 0) = 3/4
    assert U.next_token_nll_nats(logits, np.array([0, 1])) == pytest.approx(-math.log(0.75))


# ---------------------------------------------------------------- uniformity and UA


def test_uniformity_hand_case():
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # cosines: (1,2) = 0, (1,3) = (2,3) = 1/sqrt(2)
    assert U.uniformity(e) == pytest.approx(math.sqrt(2) / 3, abs=1e-9)


def test_weighted_uniformity_leaves_out_copies_of_one_item():
    e = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    k = U.cosine_kernel(e)
    ones = U._weighted_uniformity(k, np.ones((1, 3)))
    assert ones[0, 0] == pytest.approx(U.uniformity(e[0]))
    # item 0 drawn twice, item 2 once: pairs (0,2), (0,2); the (0,0) copy pair is left out
    dup = U._weighted_uniformity(k, np.array([[2.0, 0.0, 1.0]]))
    assert dup[0, 0] == pytest.approx(1 / math.sqrt(2), abs=1e-9)


def make_study_inputs(seed=0, n_cat=4, per_cat=5, n_sel=3, d=6):
    rng = np.random.default_rng(seed)
    cat = np.repeat(np.arange(n_cat), per_cat)
    ea = rng.normal(size=(n_sel, cat.size, d))
    eb = rng.normal(size=(n_sel, cat.size, d))
    return ea, eb, rng.random(cat.size), rng.random(cat.size), cat


def test_study_matches_seed_loop():
    ea, eb, na, nb, cat = make_study_inputs()
    s = U.uniformity_asymmetry_study(ea, eb, na, nb, cat, [0, 2, 4], 4, n_boot=50, seed=0)
    for li in range(3):
        uas, prefs = [], []
        for c in range(4):
            m = cat == c
            uas.append(U.uniformity(ea[li, m]) - U.uniformity(eb[li, m]))
            prefs.append(np.mean(nb[m] - na[m]))
        r, p = stats.pearsonr(uas, prefs)
        assert s.r[li] == pytest.approx(r, abs=1e-10)
        assert s.p[li] == pytest.approx(p, abs=1e-10)
    np.testing.assert_allclose(s.depth_pct, [0, 50, 100])


def test_study_bootstrap_resamples_within_categories_deterministically():
    ea, eb, na, nb, cat = make_study_inputs(1)
    a = U.uniformity_asymmetry_study(ea, eb, na, nb, cat, [0, 2, 4], 4, n_boot=60, seed=5)
    b = U.uniformity_asymmetry_study(ea, eb, na, nb, cat, [0, 2, 4], 4, n_boot=60, seed=5)
    np.testing.assert_array_equal(a.r_low, b.r_low)
    np.testing.assert_array_equal(a.peak_pct_replicates, b.peak_pct_replicates)
    counts = resample_counts(cat.size, 60, 5, strata=cat)
    for c in range(4):
        assert np.all(counts[:, cat == c].sum(axis=1) == 5)
    # replicate 0, layer 0 by hand: duplicated pairs count twice in the NLL mean; in
    # uniformity, pairs of two copies of the same statement are left out
    def hand_uniformity(emb, idx):
        unit = emb[idx] / (np.linalg.norm(emb[idx], axis=1, keepdims=True) + 1e-10)
        return np.mean([unit[i] @ unit[j] for i in range(len(idx))
                        for j in range(i + 1, len(idx)) if idx[i] != idx[j]])

    uas, prefs = [], []
    for c in range(4):
        m = np.flatnonzero(cat == c)
        idx = np.repeat(m, counts[0, m])
        uas.append(hand_uniformity(ea[0], idx) - hand_uniformity(eb[0], idx))
        prefs.append(np.mean(nb[idx] - na[idx]))
    assert a.r_replicates[0, 0] == pytest.approx(stats.pearsonr(uas, prefs).statistic,
                                                 abs=1e-10)


def test_peak_summary_seed_definitions():
    s = U.peak_summary([0, 4, 8, 12, 16], [0.2, 0.5, -0.1, -0.4, 0.3], 16)
    assert (s.max_pos_r, s.max_pos_layer, s.max_pos_pct) == (0.5, 4, 25.0)
    assert (s.max_neg_r, s.max_neg_layer, s.max_neg_pct) == (-0.4, 12, 75.0)
    assert (s.final_layer, s.final_r) == (16, 0.3)
    assert [(c.layer_before, c.layer_after, c.midpoint_pct) for c in s.sign_changes] == [
        (4, 8, 37.5), (12, 16, 87.5)]
    tie = U.peak_summary([0, 2, 4], [0.5, 0.5, 0.1], 4)
    assert tie.max_pos_layer == 0  # first occurrence, as list.index in the seed
    no_pos = U.peak_summary([0, 2], [-0.5, -0.2], 2)
    assert no_pos.max_pos_r == -0.2  # 'max positive' is just the max, as in the seed


# ---------------------------------------------------------------- verdict


def peak(name, pct, reps):
    summary = U.PeakSummary(0.5, 0, pct, -0.5, 0, 0.0, 0, 0.0, ())
    return U.ModelPeak(name, 24, summary, np.asarray(reps, dtype=float))


def test_peak_verdict_fewer_than_two_models_inconclusive():
    v = U.peak_stability_verdict([peak("a", 30.0, [30.0] * 10)])
    assert v.verdict == "INCONCLUSIVE" and v.seed_rule_verdict == U.STABLE
    assert "at least 2" in v.reason
    assert U.peak_stability_verdict([]).verdict == "INCONCLUSIVE"


def test_peak_verdict_stable_and_shifts():
    stable = U.peak_stability_verdict([peak("a", 25.0, [25.0] * 10), peak("b", 30.0, [30.0] * 10)])
    assert stable.std_peak_pct == pytest.approx(2.5) and stable.verdict == U.STABLE
    assert not stable.intervals_could_change_verdict
    assert stable.bootstrap_verdict_fractions[U.STABLE] == 1.0
    shifts = U.peak_stability_verdict([peak("a", 25.0, [25.0, 50.0] * 5),
                                       peak("b", 75.0, [75.0, 50.0] * 5)])
    assert shifts.std_peak_pct == pytest.approx(25.0) and shifts.verdict == U.SHIFTS
    assert shifts.intervals_could_change_verdict
    assert shifts.bootstrap_verdict_fractions[U.STABLE] == pytest.approx(0.5)
    doc = json.loads(to_json_text(shifts))
    assert doc["verdict"] == U.SHIFTS and doc["rule"].startswith("Seed 003")


def test_study_to_verdict_end_to_end():
    studies = []
    for i in range(2):
        ea, eb, na, nb, cat = make_study_inputs(10 + i)
        studies.append(U.uniformity_asymmetry_study(ea, eb, na, nb, cat, [0, 2, 4], 4,
                                                    model=f"m{i}", n_boot=40, seed=0,
                                                    bos_rule_applied="kept position 0"))
    v = U.peak_stability_verdict([U.model_peak(s) for s in studies])
    assert v.verdict in (U.STABLE, U.SHIFTS) and v.n_boot_used <= 40
    assert json.loads(to_json_text(studies[0]))["bos_rule"] == "kept position 0"


def test_model_peak_round_trips_through_json():
    ea, eb, na, nb, cat = make_study_inputs(3)
    s = U.uniformity_asymmetry_study(ea, eb, na, nb, cat, [0, 2, 4], 4, model="m", n_boot=30)
    back = U.model_peak_from_dict(json.loads(to_json_text(s)))
    assert back.summary == s.peak and back.n_layers == 4
    np.testing.assert_array_equal(back.peak_pct_replicates, s.peak_pct_replicates)


def test_uniformity_study_round_trips_through_json():
    ea, eb, na, nb, cat = make_study_inputs(4)
    s = U.uniformity_asymmetry_study(ea, eb, na, nb, cat, [0, 2, 4], 4, model="m", n_boot=30,
                                     category_names=["w", "x", "y", "z"], bos_rule_applied="rule")
    back = U.uniformity_study_from_dict(json.loads(to_json_text(s)))
    assert back.layers == s.layers and back.peak == s.peak and back.bos_rule == "rule"
    assert back.category_names == ("w", "x", "y", "z") and back.r_replicates.shape == (0, 3)
    for name in ("r", "p", "r_low", "r_high", "depth_pct", "category_ua", "peak_pct_replicates"):
        np.testing.assert_allclose(getattr(back, name), getattr(s, name), equal_nan=True)


def test_the_seeds_first_token_rule_is_a_switch():
    from scalelens.sweeps.uniformity import SEED_RULE, bos_rule

    assert bos_rule(5, 1).skip_first is False  # not BOS: kept by default
    assert bos_rule(1, 1).skip_first is True
    always = bos_rule(5, 1, mode="always")
    assert always.skip_first is True and always.rule == SEED_RULE
    assert bos_rule(5, None, mode="always").skip_first is True
    with pytest.raises(ValueError, match="skip_first"):
        bos_rule(1, 1, mode="sometimes")
