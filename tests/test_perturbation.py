"""Perturbation conditions and replicates, the driver on a tiny model, the summary and the
verdicts (band rule, floor / ceiling / problem-count premises) against numbers worked by hand."""

import numpy as np
import pytest
import torch

from scalelens.evaluation import arithmetic_items, score_benchmark
from scalelens.perturbation import (
    BASELINE,
    NO_SEED,
    NOT_SYN_LARGEST,
    RANDOM,
    REDUNDANT,
    SYN_LARGEST,
    SYNERGISTIC,
    UNINFORMATIVE,
    accuracy_premise,
    build_conditions,
    core_size,
    count_forward_tokens,
    run_perturbation,
    summarise_perturbation,
)


def test_conditions_replicate_each_core_per_noise_seed_and_cycle_seeds_over_random_sets():
    score = np.array([0.0, 5.0, -3.0, 2.0, np.nan, -1.0, 4.0, 1.0])
    conds = build_conditions(np.arange(8), score, 0.25, [0, 1, 2], [7, 9])
    assert [c.label for c in conds] == [
        BASELINE, "synergistic_noise7", "synergistic_noise9", "redundant_noise7",
        "redundant_noise9", "random_seed0_noise7", "random_seed1_noise9", "random_seed2_noise7"]
    assert conds[0].heads.size == 0 and conds[0].noise_seed == NO_SEED
    for c in conds[1:3]:
        assert c.heads.tolist() == [1, 6]  # scores 5 and 4, the same heads in every replicate
    for c in conds[3:5]:
        assert c.heads.tolist() == [2, 5]  # scores -3 and -1 (NaN never in a core first)
    for c, seed in zip(conds[5:], [0, 1, 2]):
        assert c.head_seed == seed and c.heads.size == 2 and len(set(c.heads.tolist())) == 2
        expect = np.sort(np.random.default_rng(seed).choice(8, size=2, replace=False))
        assert c.heads.tolist() == expect.tolist()
    again = build_conditions(np.arange(8), score, 0.25, [0, 1, 2], [7, 9])
    assert all(np.array_equal(a.heads, b.heads) for a, b in zip(conds, again))
    assert core_size(72, 0.25) == 18 and core_size(3, 0.1) == 1
    with pytest.raises(ValueError, match="fraction"):
        core_size(10, 0.0)
    with pytest.raises(ValueError, match="noise seed"):
        build_conditions(np.arange(8), score, 0.25, [0], [])


def _conditions():
    """baseline, syn x3, red x3, random x3 on 8 heads."""
    return build_conditions(np.arange(8), np.arange(8.0), 0.25, [0, 1, 2], [0, 1, 2])


#               base  syn x3            red x3            random x3
ACC = np.array([0.80, 0.50, 0.40, 0.60, 0.78, 0.76, 0.80, 0.70, 0.80, 0.75])
NLL = np.array([1.00, 1.10, 1.20, 1.30, 1.50, 1.60, 1.70, 1.00, 1.05, 1.10])


def test_summary_means_spreads_and_accuracy_verdict_by_hand():
    s = summarise_perturbation(_conditions(), ACC, NLL, n_problems=50, floor=0.2,
                               ceiling=0.95, min_problems=50)
    syn, red, rnd = s.stats[SYNERGISTIC], s.stats[REDUNDANT], s.stats[RANDOM]
    assert syn.n_replicates == red.n_replicates == rnd.n_replicates == 3
    assert syn.drop_mean == pytest.approx(0.3)  # 0.8 - mean(0.5, 0.4, 0.6)
    assert syn.drop_std == pytest.approx(0.1)  # std of (0.3, 0.4, 0.2), ddof=1
    assert syn.accuracy_mean == pytest.approx(0.5) and syn.accuracy_std == pytest.approx(0.1)
    assert red.drop_mean == pytest.approx(0.02) and red.drop_std == pytest.approx(0.02)
    assert rnd.drop_mean == pytest.approx(0.05) and rnd.drop_std == pytest.approx(0.05)
    assert syn.nll_rise_mean == pytest.approx(0.2) and syn.nll_rise_std == pytest.approx(0.1)
    assert red.nll_rise_mean == pytest.approx(0.6) and red.gold_nll_mean == pytest.approx(1.6)
    assert rnd.nll_rise_mean == pytest.approx(0.05)
    assert s.accuracy["random_seed1_noise1"] == pytest.approx(0.8)
    # accuracy: syn band low 0.2 > red high 0.04 and random high 0.10
    assert s.accuracy_verdict.verdict == SYN_LARGEST
    assert "synergistic band above both" in s.accuracy_verdict.reason
    # NLL: syn low 0.1 is not above red high 0.7 (nor random high 0.1: equal is not above)
    assert s.nll_verdict.verdict == NOT_SYN_LARGEST
    assert "not above redundant and random" in s.nll_verdict.reason
    assert (s.verdict.verdict, s.verdict_by) == (SYN_LARGEST, "accuracy")
    d = s.to_dict()
    assert d["synergistic.drop_mean"] == pytest.approx(0.3)
    assert d["random.varies"] == "head set and noise seed"
    assert d["synergistic.varies"] == "noise seed"
    assert d["accuracy_verdict"] == SYN_LARGEST and d["verdict_by"] == "accuracy"
    assert d["accuracy_floor"] == 0.2 and d["n_problems"] == 50


@pytest.mark.parametrize("base,n,min_problems,why", [
    (0.04, 50, 50, "below the floor 0.2"),
    (0.98, 50, 50, "above the ceiling 0.95"),
    (0.80, 24, 50, "24 problems: one problem is 4.17% of accuracy"),
])
def test_accuracy_outside_its_premise_is_uninformative_and_the_nll_decides(base, n, min_problems,
                                                                          why):
    acc = ACC.copy()
    acc[0] = base
    nll = NLL.copy()
    nll[1:4] = [2.0, 2.1, 2.2]  # syn rise 1.1 +- 0.1: low 1.0 > red high 0.7, random high 0.1
    s = summarise_perturbation(_conditions(), acc, nll, n_problems=n, floor=0.2, ceiling=0.95,
                               min_problems=min_problems)
    assert s.accuracy_verdict.verdict == UNINFORMATIVE
    assert why in s.accuracy_verdict.reason
    assert s.nll_verdict.verdict == SYN_LARGEST
    assert (s.verdict.verdict, s.verdict_by) == (SYN_LARGEST, "gold_nll")
    assert s.tags()["accuracy_verdict_reason"] == s.accuracy_verdict.reason


def test_premise_bounds_are_inclusive():
    assert accuracy_premise(50, 0.2, 0.2, 0.95, 50) is None
    assert accuracy_premise(50, 0.95, 0.2, 0.95, 50) is None
    assert accuracy_premise(49, 0.5, 0.2, 0.95, 50) is not None
    assert "floor" in accuracy_premise(50, 0.18, 0.2, 0.95, 50)


def test_one_replicate_gives_no_spread_so_both_verdicts_are_uninformative():
    conds = build_conditions(np.arange(8), np.arange(8.0), 0.25, [0, 1], [0])
    assert [c.label for c in conds] == [BASELINE, "synergistic_noise0", "redundant_noise0",
                                        "random_seed0_noise0", "random_seed1_noise0"]
    s = summarise_perturbation(conds, [0.8, 0.1, 0.7, 0.7, 0.7], [1, 3, 1, 1, 1], 50)
    assert s.stats[RANDOM].n_replicates == 2 and s.stats[SYNERGISTIC].drop_std == 0.0
    for v in (s.accuracy_verdict, s.nll_verdict):
        assert v.verdict == UNINFORMATIVE and "synergistic, redundant" in v.reason
    assert (s.verdict.verdict, s.verdict_by) == (UNINFORMATIVE, "none")


def test_forward_token_count_by_hand():
    # 2 problems: prompts 10 and 12 tokens, answers 2 and 3; 4 new tokens at most (3 steps)
    # per condition: (10 + 2 + 3) + (12 + 3 + 3) = 33
    assert count_forward_tokens(10, [10, 12], [2, 3], 4) == 330
    # 8 shared tokens run once: 8 + (2 + 2 + 3) + (4 + 3 + 3) = 25
    assert count_forward_tokens(10, [10, 12], [2, 3], 4, shared_prefix=8) == 250


def test_noise_replicates_differ_and_the_model_is_restored(tiny_lm):
    lm = tiny_lm("llama")
    n = lm.geometry.n_heads_total
    conds = build_conditions(np.arange(n), np.arange(float(n)), 0.5, [0], [0, 1])
    items = arithmetic_items(4, n_shots=1, seed=0)
    ids = torch.tensor([lm.tokenizer("check")["input_ids"]])
    with torch.no_grad():
        before = lm.model(ids).logits
    scores = run_perturbation(lm, items, conds, sigma_rel=0.5, max_new_tokens=2, batch_size=4,
                              progress=False)
    assert [c.label for c in conds] == [BASELINE, "synergistic_noise0", "synergistic_noise1",
                                        "redundant_noise0", "redundant_noise1",
                                        "random_seed0_noise0"]
    base = score_benchmark(lm, items, 2, 4)
    np.testing.assert_array_equal(scores[0].nll_nats, base.nll_nats)  # baseline untouched
    assert not np.array_equal(scores[1].nll_nats, base.nll_nats)
    assert not np.array_equal(scores[1].nll_nats, scores[2].nll_nats)  # another noise draw
    with torch.no_grad():
        assert torch.equal(lm.model(ids).logits, before)
    again = run_perturbation(lm, items, conds[2:3], 0.5, 2, 4, progress=False)
    np.testing.assert_array_equal(again[0].nll_nats, scores[2].nll_nats)  # seeded
    s = summarise_perturbation(conds, [x.accuracy for x in scores],
                               [x.gold_nll_nats for x in scores], len(items))
    rises = [scores[i].gold_nll_nats - base.gold_nll_nats for i in (1, 2)]
    assert s.stats[SYNERGISTIC].nll_rise_mean == pytest.approx(np.mean(rises))
    assert s.stats[SYNERGISTIC].nll_rise_std == pytest.approx(np.std(rises, ddof=1))
    assert s.accuracy_verdict.verdict == UNINFORMATIVE  # 4 problems < 50
