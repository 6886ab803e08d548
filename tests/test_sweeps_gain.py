"""Residual gain (seed 004): gain definitions on hand-computed norms, H25 verdict outcomes."""

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats

from scalelens.sweeps import gain as G
from scalelens.sweeps.verdicts import permutation_pvalue, to_json_text

# n_layers = 4. hidden_states norms: h0 (embeddings), h1..h3 = blocks 0..2, h4 = final norm.
HIDDEN = np.array([[1.0, 2.0, 4.0, 8.0, 3.0]])
# block outputs before the final norm: blocks 0..3 (block 3 is never in hidden_states)
BLOCKS = np.array([[2.0, 4.0, 8.0, 10.0]])


def test_gain_definitions_hand_case():
    np.testing.assert_allclose(G.seed_layer_gains(HIDDEN), [[2.0, 2.0, 2.0, 3 / 8]], rtol=1e-9)
    # seed's G = |h[-2]| / |h[-3]| = 8 / 4: the gain of block 2, the second-to-last block
    assert G.g_seed_per_prompt(HIDDEN)[0] == pytest.approx(8 / (4 + 1e-10), rel=1e-15)
    assert G.g_with_ln_per_prompt(HIDDEN)[0] == pytest.approx(3 / 8)
    assert G.g_last_per_prompt(HIDDEN, BLOCKS)[0] == pytest.approx(10 / 8)
    np.testing.assert_allclose(G.block_gain_curve(HIDDEN, BLOCKS), [[2.0, 2.0, 2.0, 1.25]])


def test_seed_fallback_with_a_single_block():
    h = np.array([[2.0, 5.0]])
    assert G.g_seed_per_prompt(h)[0] == pytest.approx(2.5)


def test_seed_gain_matches_plain_loop():
    rng = np.random.default_rng(0)
    h = rng.random((6, 7)) + 0.5
    for p in range(6):
        norms = list(h[p])
        gains = [norms[i] / (norms[i - 1] + 1e-10) for i in range(1, len(norms))]
        assert G.g_seed_per_prompt(h)[p] == pytest.approx(gains[-2], rel=1e-14)
        assert G.g_with_ln_per_prompt(h)[p] == pytest.approx(gains[-1], rel=1e-14)


def test_hidden_state_layout_detects_final_norm_and_hook_mismatch():
    lay = G.hidden_state_layout(HIDDEN, BLOCKS)
    assert lay.intermediate_match_block_outputs and not lay.last_hidden_is_raw_last_block
    no_norm = HIDDEN.copy()
    no_norm[0, -1] = 10.0
    assert G.hidden_state_layout(no_norm, BLOCKS).last_hidden_is_raw_last_block
    shifted = BLOCKS.copy()
    shifted[0, :3] = [4.0, 8.0, 9.0]  # hook one block off
    assert not G.hidden_state_layout(HIDDEN, shifted).intermediate_match_block_outputs


def test_rho_and_shape_errors():
    assert G.rho_head_density(8, 512) == (64, 0.125)
    assert G.rho_head_density(32, 2560) == (80, 0.4)
    with pytest.raises(ValueError, match="block_output_norms"):
        G.residual_gain_study(HIDDEN, BLOCKS[:, :3], 8, 512)


def test_study_bootstrap_contains_mean_and_is_deterministic():
    rng = np.random.default_rng(1)
    h = np.cumsum(rng.random((25, 7)) + 0.5, axis=1)
    b = h[:, 1:].copy()
    b[:, -1] *= 1.3
    a = G.residual_gain_study(h, b, 8, 512, model="m", n_boot=400, seed=3)
    g_seed = h[:, -2] / (h[:, -3] + 1e-10)
    assert a.g_seed.point == pytest.approx(g_seed.mean())
    assert a.g_seed_std == pytest.approx(np.std(g_seed))
    assert a.g_last.point == pytest.approx(np.mean(b[:, -1] / (h[:, -2] + 1e-10)))
    for iv in (a.g_seed, a.g_last, a.g_with_ln):
        assert iv.contains(iv.point)
    b2 = G.residual_gain_study(h, b, 8, 512, model="m", n_boot=400, seed=3)
    assert (a.g_seed.low, a.g_seed.high) == (b2.g_seed.low, b2.g_seed.high)
    assert a.layout.intermediate_match_block_outputs
    assert a.block_gain_curve.shape == (6,)
    assert json.loads(to_json_text(a))["rho"] == 0.125


# ---------------------------------------------------------------- H25


def model(name, rho, g, spread=0.001, n=10):
    return G.GainModelInput(name, rho, g + spread * np.linspace(-1, 1, n))


def test_h25_validated_by_rate_with_two_models_seed_oddity():
    v = G.h25_verdict([model("hi", 0.25, 0.9), model("lo", 0.1, 1.2)], n_boot=100)
    assert v.verdict == v.seed_rule_verdict == G.VALIDATED
    assert v.high_rho_dampen_rate == 1.0 and math.isnan(v.pearson_r)
    assert any("fewer than 3" in note for note in v.seed_rule_oddities)


def test_h25_validated_by_correlation_without_high_rho_models():
    ms = [model("a", 0.05, 1.30), model("b", 0.10, 1.20), model("c", 0.15, 1.05)]
    v = G.h25_verdict(ms, n_boot=100, n_perm=100)
    assert v.n_high_rho == 0 and v.high_rho_dampen_rate == 0.0
    assert v.pearson_r < -0.3 and v.verdict == G.VALIDATED
    rhos, gains = [0.05, 0.10, 0.15], [m.gain_per_prompt.mean() for m in ms]
    assert v.pearson_r == pytest.approx(stats.pearsonr(rhos, gains).statistic)
    assert v.pearson_p == pytest.approx(stats.pearsonr(rhos, gains).pvalue)
    assert v.permutation["exact"] and v.permutation["n_permutations"] == 6


def test_h25_not_validated():
    ms = [model("a", 0.05, 1.0, spread=0.0), model("b", 0.25, 1.1), model("c", 0.3, 1.2)]
    v = G.h25_verdict(ms, n_boot=100, n_perm=100)
    assert v.pearson_r > 0 and v.high_rho_dampen_rate == 0.0
    assert v.verdict == G.NOT_VALIDATED
    assert v.low_rho_expand_rate == 1.0  # G == 1.0 counts as expansion


def test_h25_inconclusive_with_two_models_and_no_dampening():
    v = G.h25_verdict([model("a", 0.25, 1.1), model("b", 0.1, 1.2)], n_boot=100)
    assert v.verdict == "INCONCLUSIVE" == v.seed_rule_verdict


def test_h25_fewer_than_two_models_is_inconclusive_with_reason():
    v = G.h25_verdict([model("only", 0.3, 0.8)], n_boot=50)
    assert v.seed_rule_verdict == G.VALIDATED  # what the seed would have said
    assert v.verdict == "INCONCLUSIVE" and "at least 2" in v.reason
    empty = G.h25_verdict([], n_boot=50)
    assert empty.verdict == "INCONCLUSIVE" and empty.n_models == 0


def test_h25_interval_straddling_one_can_change_verdict():
    wide = G.GainModelInput("wide", 0.3, np.array([0.6, 0.7, 0.8, 1.3, 1.4]))
    v = G.h25_verdict([wide, model("lo", 0.1, 1.2)], n_boot=300, seed=0)
    assert v.undecided_models == ("wide",)
    assert set(v.possible_verdicts) == {G.VALIDATED, "INCONCLUSIVE"}
    assert v.intervals_could_change_verdict
    assert 0 < v.bootstrap_verdict_fractions[G.VALIDATED] < 1


def test_permutation_p_exact_matches_hand_enumeration():
    x, y = [0.1, 0.2, 0.3, 0.4], [1.3, 1.1, 1.2, 0.9]
    r_obs = stats.pearsonr(x, y).statistic
    rs = [stats.pearsonr(x, [y[i] for i in p]).statistic for p in itertools.permutations(range(4))]
    expected = np.mean(np.abs(rs) >= abs(r_obs) - 1e-12)
    res = permutation_pvalue(x, y, n_perm=1000, seed=0)
    assert res.exact and res.p == pytest.approx(expected)
    mc = permutation_pvalue(x, y, n_perm=10, seed=0)  # 4! > 10 -> Monte Carlo
    assert not mc.exact and mc.p == permutation_pvalue(x, y, n_perm=10, seed=0).p


def test_h25_report_on_both_metrics():
    rng = np.random.default_rng(2)
    results = []
    for name, nh, dm in (("a", 8, 512), ("b", 16, 1024), ("c", 32, 2560)):
        h = np.cumsum(rng.random((12, 5)) + 0.5, axis=1)
        b = h[:, 1:].copy()
        b[:, -1] = h[:, -2] * (0.8 if nh >= 16 else 1.2)
        results.append(G.residual_gain_study(h, b, nh, dm, model=name, n_boot=50))
    docs = [{**json.loads(to_json_text(r)), "family": "pythia", "size_b": i + 1.0}
            for i, r in enumerate(results)]
    inputs = [G.gain_inputs_from_dict(d) for d in docs]
    rep = G.h25_report([s for s, _ in inputs], [last for _, last in inputs], n_boot=100,
                       n_perm=100)
    assert rep.premise.met and rep.premise.decided_on == ("pythia",)
    assert rep.g_last.verdict == G.VALIDATED  # both high-rho models dampen in their last block
    assert rep.g_seed.metric == "G_seed" and rep.g_last.metric == "G_last"
    doc = json.loads(to_json_text(rep))
    assert doc["verdict_g_last"] == G.VALIDATED and "rule" in doc["g_seed"]
    assert doc["g_last"]["by_family"]["pythia"]["verdict"] == G.VALIDATED


def test_gain_inputs_round_trip_through_json():
    h = np.cumsum(np.random.default_rng(4).random((6, 5)) + 0.5, axis=1)
    res = G.residual_gain_study(h, h[:, 1:] * 1.1, 8, 512, model="m", n_boot=20)
    seed_in, last_in = G.gain_inputs_from_dict(json.loads(to_json_text(res)))
    assert seed_in.rho == 0.125 and seed_in.model == "m"
    np.testing.assert_allclose(seed_in.gain_per_prompt, res.g_seed_per_prompt)
    np.testing.assert_allclose(last_in.gain_per_prompt, res.g_last_per_prompt)


def test_h25_rho_threshold_moves_the_high_rho_group():
    ms = [model("a", 0.15, 0.9), model("b", 0.25, 1.1)]
    seed_split = G.h25_verdict(ms, n_boot=50)  # only b is high-rho (>= 0.2) and it expands
    assert seed_split.n_high_rho == 1 and seed_split.high_rho_dampen_rate == 0.0
    assert seed_split.verdict == "INCONCLUSIVE" and seed_split.rho_threshold == 0.2
    lower = G.h25_verdict(ms, n_boot=50, rho_threshold=0.1)  # a and b high-rho, a dampens
    assert lower.n_high_rho == 2 and lower.high_rho_dampen_rate == 0.5
    assert lower.rho_threshold == 0.1 and lower.verdict == "INCONCLUSIVE"  # 0.5 is not > 0.5
    only_a = G.h25_verdict([ms[0]] + [model("c", 0.12, 0.95)], n_boot=50, rho_threshold=0.1)
    assert only_a.high_rho_dampen_rate == 1.0 and only_a.verdict == G.VALIDATED
