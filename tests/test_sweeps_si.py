"""SI (seed 002): entropy recipe, SI_seed / SI_heads, sanity check, dtype walk, B11 verdict."""

import json
import math

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from scalelens.sweeps import si
from scalelens.sweeps.bootstrap import bootstrap, percentile_bounds, resample_counts
from scalelens.sweeps.verdicts import to_json_text


def causal_attention(rng, n_layers, n_heads, t, sharpness=3.0):
    """Random causal softmax attention [layers, heads, t, t]."""
    logits = rng.normal(size=(n_layers, n_heads, t, t)) * sharpness
    mask = np.tril(np.ones((t, t), dtype=bool))
    logits = np.where(mask, logits, -np.inf)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def seed_entropy_loop(attn, valid_len):
    """The seed's per-head loop, written plainly."""
    n_layers, n_heads = attn.shape[:2]
    out = np.zeros((n_layers, n_heads))
    for layer in range(n_layers):
        for head in range(n_heads):
            w = attn[layer, head][:valid_len, :valid_len].mean(axis=0)
            w = w / (w.sum() + 1e-10)
            w = w[w > 0]
            if len(w) > 1:
                out[layer, head] = scipy_entropy(w, base=2) / np.log2(len(w))
    return out


def seed_si_loop(head_entropies):
    c = np.corrcoef(head_entropies.T)
    upper = c[np.triu_indices(head_entropies.shape[1], k=1)]
    return 1.0 - float(np.nanmean(upper))


# ---------------------------------------------------------------- entropy


def test_entropy_hand_cases():
    att = np.zeros((1, 3, 2, 2))
    att[0, 0] = [[1.0, 0.0], [0.5, 0.5]]  # mean row [0.75, 0.25]
    att[0, 1] = [[1.0, 0.0], [1.0, 0.0]]  # all mass on key 0 -> one nonzero entry -> 0
    att[0, 2] = [[0.5, 0.5], [0.5, 0.5]]  # uniform -> 1
    ent = si.normalized_attention_entropy(att)
    expected0 = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)) / math.log2(2)
    assert ent[0, 0] == pytest.approx(expected0, abs=1e-9)
    assert ent[0, 1] == 0.0
    assert ent[0, 2] == pytest.approx(1.0, abs=1e-9)


def test_entropy_truncates_to_valid_len():
    att = np.zeros((1, 1, 4, 4))
    att[0, 0, :2, :2] = [[0.5, 0.5], [0.5, 0.5]]
    att[0, 0, 2:, :] = 0.25  # would change the result if not truncated
    assert si.normalized_attention_entropy(att, valid_len=2)[0, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="valid_len"):
        si.normalized_attention_entropy(att, valid_len=5)


def test_entropy_matches_seed_loop():
    rng = np.random.default_rng(0)
    att = causal_attention(rng, 3, 4, 9)
    np.testing.assert_allclose(si.normalized_attention_entropy(att, 7),
                               seed_entropy_loop(att, 7), atol=1e-12)


def test_prompt_entropies_shape_and_mismatch():
    rng = np.random.default_rng(1)
    atts = [causal_attention(rng, 2, 3, t) for t in (6, 8, 7)]
    e = si.prompt_head_entropies(atts)
    assert e.shape == (3, 2, 3)
    np.testing.assert_allclose(e[1], seed_entropy_loop(atts[1], 8), atol=1e-12)
    with pytest.raises(ValueError, match="prompt 1"):
        si.prompt_head_entropies([atts[0], causal_attention(rng, 2, 4, 6)])


# ---------------------------------------------------------------- SI


def test_si_seed_hand_case():
    # head slots over 3 layers: [1,2,3], [3,2,1], [1,2,3] -> r = -1, 1, -1 -> mean -1/3
    ent = np.array([[1.0, 3.0, 1.0], [2.0, 2.0, 2.0], [3.0, 1.0, 3.0]])
    val = si.si_seed_from_entropies(ent)
    assert val.mean_corr == pytest.approx(-1 / 3)
    assert val.si == pytest.approx(4 / 3)
    assert val.n_constant_excluded == 0


def test_si_seed_matches_corrcoef_nanmean_with_constant_slot():
    rng = np.random.default_rng(2)
    ent = rng.random((6, 5))
    ent[:, 3] = 0.5  # constant slot: corrcoef -> NaN, nanmean skips it
    val = si.si_seed_from_entropies(ent)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = seed_si_loop(ent)
    assert val.si == pytest.approx(expected, abs=1e-12)
    assert val.n_constant_excluded == 1


def test_si_heads_hand_case_and_constant_exclusion():
    # 3 prompts, 1 layer, 3 heads: [0,1,2], [2,1,0], constant -> one pair, r = -1
    pe = np.array([[[0.0, 2.0, 0.4]], [[1.0, 1.0, 0.4]], [[2.0, 0.0, 0.4]]])
    val = si.si_heads_from_prompt_entropies(pe)
    assert val.mean_corr == pytest.approx(-1.0)
    assert val.si == pytest.approx(2.0)
    assert val.n_constant_excluded == 1
    assert val.n_units == 3


def test_si_heads_matches_plain_pairwise_loop():
    rng = np.random.default_rng(3)
    pe = rng.random((7, 3, 4))
    units = pe.reshape(7, -1).T
    rs = [np.corrcoef(units[i], units[j])[0, 1]
          for i in range(len(units)) for j in range(i + 1, len(units))]
    assert si.si_heads_from_prompt_entropies(pe).si == pytest.approx(1 - np.mean(rs), abs=1e-12)


def test_relabelling_heads_of_one_layer_changes_si_seed_not_si_heads():
    rng = np.random.default_rng(4)
    pe = rng.random((8, 5, 6))
    permuted = pe.copy()
    permuted[:, 2, :] = pe[:, 2, [3, 0, 5, 1, 4, 2]]  # same model, heads of layer 2 renamed
    a = si.specialization_index(pe, n_boot=50, seed=0)
    b = si.specialization_index(permuted, n_boot=50, seed=0)
    assert abs(a.si_seed.point - b.si_seed.point) > 1e-3
    assert a.si_heads.point == pytest.approx(b.si_heads.point, abs=1e-12)
    np.testing.assert_allclose(a.si_heads_replicates, b.si_heads_replicates, atol=1e-12)


def test_specialization_index_point_equals_seed_definition_and_bootstrap():
    rng = np.random.default_rng(5)
    pe = rng.random((10, 4, 5))
    res = si.specialization_index(pe, n_boot=300, seed=7)
    with np.errstate(invalid="ignore"):
        assert res.si_seed.point == pytest.approx(seed_si_loop(pe.mean(axis=0)), abs=1e-12)
    # replicate 0 recomputed by hand from the same resampled prompts
    counts = resample_counts(10, 300, 7)
    idx = np.repeat(np.arange(10), counts[0])
    assert res.si_seed_replicates[0] == pytest.approx(seed_si_loop(pe[idx].mean(axis=0)),
                                                      abs=1e-10)
    units = pe[idx].reshape(len(idx), -1).T
    c = np.corrcoef(units)
    assert res.si_heads_replicates[0] == pytest.approx(
        1 - np.nanmean(c[np.triu_indices(len(units), 1)]), abs=1e-10)
    again = si.specialization_index(pe, n_boot=300, seed=7)
    np.testing.assert_array_equal(res.si_seed_replicates, again.si_seed_replicates)
    other = si.specialization_index(pe, n_boot=300, seed=8)
    assert not np.array_equal(res.si_seed_replicates, other.si_seed_replicates)
    assert res.si_seed.low <= res.si_seed.high
    assert json.loads(to_json_text(res))["n_prompts"] == 10


def test_specialization_index_rejects_too_small_inputs():
    with pytest.raises(ValueError, match="2 heads"):
        si.specialization_index(np.random.default_rng(0).random((4, 3, 1)), n_boot=10)
    with pytest.raises(ValueError, match="2 prompts"):
        si.specialization_index(np.random.default_rng(0).random((1, 3, 3)), n_boot=10)


# ---------------------------------------------------------------- bootstrap (shared module)


def test_bootstrap_mean_interval_contains_point_and_is_deterministic():
    x = np.arange(20, dtype=float)
    res = bootstrap(lambda w: (w @ x) / w.sum(axis=1), 20, 500, seed=11)
    assert res.point == pytest.approx(9.5)
    iv = res.interval()
    assert iv.low < 9.5 < iv.high and iv.contains(9.5)
    assert iv.n_valid == 500
    res2 = bootstrap(lambda w: (w @ x) / w.sum(axis=1), 20, 500, seed=11)
    np.testing.assert_array_equal(res.replicates, res2.replicates)
    counts = resample_counts(20, 500, 11)
    assert np.all(counts.sum(axis=1) == 20)


def test_percentile_bounds_ignore_nan():
    reps = np.array([[1.0], [np.nan], [3.0], [2.0]])
    lo, hi, n = percentile_bounds(reps, 0.5)
    assert n[0] == 3
    assert lo[0] == pytest.approx(1.5) and hi[0] == pytest.approx(2.5)


# ---------------------------------------------------------------- seeds, architecture


def test_seed_summary_flags_deterministic_pass():
    s = si.summarize_seed_values({42: 0.41, 123: 0.41, 456: 0.41})
    assert s.std == 0.0 and s.deterministic and s.note == si.DETERMINISTIC_SEED_NOTE
    s2 = si.summarize_seed_values({42: 0.1, 123: 0.2, 456: 0.3})
    assert s2.mean == pytest.approx(0.2)
    assert s2.std == pytest.approx(np.std([0.1, 0.2, 0.3]))
    assert not s2.deterministic


def test_architecture_facts():
    mha = si.architecture_facts(n_layers=32, n_heads=32, hidden_size=3072)
    assert mha.attention_kind == "MHA" and mha.n_kv_heads == 32
    assert mha.rho_head == pytest.approx(32 / math.sqrt(3072))
    assert mha.rho_kv == pytest.approx(1.0)
    assert mha.d_head == 96
    gqa = si.architecture_facts(40, 40, 5120, n_kv_heads=10)
    assert gqa.attention_kind == "GQA" and gqa.attention_label == "GQA (40:10)"
    assert gqa.rho_kv == pytest.approx(0.25)
    assert si.architecture_facts(18, 8, 2048, n_kv_heads=1).attention_kind == "MQA"
    with pytest.raises(ValueError, match="n_kv_heads"):
        si.architecture_facts(4, 4, 64, n_kv_heads=8)


# ---------------------------------------------------------------- sanity check and dtype walk


def test_sanity_check_outcomes():
    rng = np.random.default_rng(6)
    good = causal_attention(rng, 4, 4, 12)
    res = si.sanity_check_attention(good, label="bf16")
    assert res.ok and res.reason == "passed" and res.baseline_si >= 0.05
    assert res.heads_identical is False
    assert si.sanity_check_attention(good[:, :, :5, :5]).reason == "valid_len_too_small"
    assert si.sanity_check_attention(None, valid_len=12).reason == "no_attentions"
    assert si.sanity_check_attention(np.zeros((2, 2, 8, 8))).reason == "degenerate_attn"
    bad = good.copy()
    bad[3, 0, 5, 0] = np.nan
    assert si.sanity_check_attention(bad).reason == "nan_inf"
    same = np.repeat(good[:, :1], 4, axis=1)  # all heads identical -> SI_seed = 0
    res_same = si.sanity_check_attention(same)
    assert res_same.heads_identical and res_same.warnings
    assert not res_same.ok and res_same.reason == "si_below_threshold"
    assert si.sanity_check_attention(same, fail_on_identical_heads=True).reason == "heads_identical"


def test_dtype_walk_returns_first_passing_variant_in_order():
    rng = np.random.default_rng(7)
    good = causal_attention(rng, 4, 4, 12)
    calls = []

    def measure(label):
        calls.append(label)
        if label == "bf16":
            raise RuntimeError("bf16 not supported")
        if label == "fp16":
            return np.full_like(good, np.nan)
        return good

    sel = si.select_dtype_variant(measure)
    assert calls == ["bf16", "fp16", "fp32"]
    assert sel.chosen == "fp32" and sel.result.ok
    assert [a.reason for a in sel.attempts][:2] == [
        "measure_failed: RuntimeError: bf16 not supported", "nan_inf"]
    first = si.select_dtype_variant(lambda label: good)
    assert first.chosen == "bf16" and len(first.attempts) == 1
    with pytest.raises(si.SanityCheckError, match="no dtype variant") as err:
        si.select_dtype_variant(lambda label: None)
    assert len(err.value.attempts) == 3


# ---------------------------------------------------------------- B11 verdict

REFS = {"Phi-3-mini (3.8B)": {"si": 0.329, "size_b": 3.8},
        "Phi-3-medium (14B)": {"si": 0.334, "size_b": 14.0}}


def measured(name, value, half=0.01, size=None, family="phi"):
    return si.MeasuredSI(name, value, value - half, value + half, size, family=family)


def test_b11_heritage_confirmed():
    v = si.b11_verdict([measured("a", 0.31), measured("b", 0.35)], REFS)
    assert v.verdict == si.HERITAGE_CONFIRMED == v.seed_rule_verdict
    assert v.tier == "A-Tier" and v.n_total == 4 and v.n_within == 4
    assert not v.intervals_could_change_verdict and v.undecided_models == ()


def test_b11_size_confound_detected():
    v = si.b11_verdict([measured("a", 0.31), measured("b", 0.50)], REFS)
    assert v.verdict == si.SIZE_CONFOUND_DETECTED
    assert v.tier == "B-Tier" and v.b11_recommendation == "B-Tier (unchanged)"
    assert v.reason.startswith("1/4")


def test_b11_inconclusive_when_all_within_but_too_few_models():
    v = si.b11_verdict([measured("a", 0.33)], REFS)
    assert v.n_total == 3 and v.verdict == "INCONCLUSIVE" and v.tier == "B-Tier"


def test_b11_straddling_interval_is_undecided_and_could_change_verdict():
    v = si.b11_verdict([measured("a", 0.32), measured("b", 0.37, half=0.03)], REFS)
    assert v.verdict == si.HERITAGE_CONFIRMED
    assert v.undecided_models == ("b",)
    assert set(v.possible_verdicts) == {si.HERITAGE_CONFIRMED, si.SIZE_CONFOUND_DETECTED}
    assert v.intervals_could_change_verdict
    doc = json.loads(to_json_text(v))
    assert doc["verdict"] == si.HERITAGE_CONFIRMED and "rule" in doc
    assert doc["models"][1]["band_status"] == "undecided"


def test_b11_no_measured_model_is_inconclusive_not_crash():
    v = si.b11_verdict([si.MeasuredSI("broken", math.nan, math.nan, math.nan, family="phi")],
                       REFS)
    assert v.verdict == "INCONCLUSIVE" and v.excluded_models == ("broken",)
    assert v.premise.met and "no measured Phi-family model" in v.reason


def test_measured_si_round_trips_through_json():
    res = si.specialization_index(np.random.default_rng(9).random((6, 3, 4)), n_boot=30)
    m = si.measured_si_from_dict("m", json.loads(to_json_text(res)), size_b=1.3, family="phi")
    assert m.si == pytest.approx(res.si_seed.point) and m.high == pytest.approx(res.si_seed.high)
    assert m.si_heads == pytest.approx(res.si_heads.point) and m.size_b == 1.3
    assert m.family == "phi"
