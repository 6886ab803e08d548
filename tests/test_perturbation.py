"""Perturbation conditions, the driver on a tiny model, and the summary by hand."""

import numpy as np
import pytest
import torch

from scalelens.evaluation import arithmetic_items, score_benchmark
from scalelens.perturbation import (
    BASELINE,
    RANDOM,
    REDUNDANT,
    SYNERGISTIC,
    build_conditions,
    core_size,
    run_perturbation,
    summarise_perturbation,
)


def test_conditions_take_the_top_bottom_and_random_quarters():
    score = np.array([0.0, 5.0, -3.0, 2.0, np.nan, -1.0, 4.0, 1.0])
    conds = build_conditions(np.arange(8), score, 0.25, [0, 1, 2])
    assert [c.label for c in conds] == [BASELINE, SYNERGISTIC, REDUNDANT, "random_seed0",
                                        "random_seed1", "random_seed2"]
    assert conds[0].heads.size == 0
    assert conds[1].heads.tolist() == [1, 6]  # scores 5 and 4
    assert conds[2].heads.tolist() == [2, 5]  # scores -3 and -1 (NaN never in a core first)
    for c in conds[3:]:
        assert c.heads.size == 2 and len(set(c.heads.tolist())) == 2
    again = build_conditions(np.arange(8), score, 0.25, [0, 1, 2])
    assert all(np.array_equal(a.heads, b.heads) for a, b in zip(conds, again))
    assert core_size(72, 0.25) == 18 and core_size(3, 0.1) == 1
    with pytest.raises(ValueError, match="fraction"):
        core_size(10, 0.0)


def test_summary_drops_and_verdicts_by_hand():
    conds = build_conditions(np.arange(8), np.arange(8.0), 0.25, [0, 1])
    acc = [0.8, 0.2, 0.7, 0.6, 0.5]
    nll = [1.0, 3.0, 1.5, 2.0, 4.0]
    s = summarise_perturbation(conds, acc, nll)
    assert s.drop_synergistic == pytest.approx(0.6)
    assert s.drop_redundant == pytest.approx(0.1)
    assert s.drop_random_mean == pytest.approx(0.25)
    assert s.drop_random_std == pytest.approx(np.std([0.2, 0.3], ddof=1))
    assert s.nll_rise_random_mean == pytest.approx(2.0)
    assert s.syn_drop_largest
    assert not s.syn_nll_rise_largest  # 2.0 rise for syn vs 2.0 random mean: a tie
    assert s.accuracy["random_seed1"] == 0.5


def test_perturbation_changes_scores_and_restores_the_model(tiny_lm):
    lm = tiny_lm("llama")
    n = lm.geometry.n_heads_total
    conds = build_conditions(np.arange(n), np.arange(float(n)), 0.5, [0])
    items = arithmetic_items(4, n_shots=1, seed=0)
    ids = torch.tensor([lm.tokenizer("check")["input_ids"]])
    with torch.no_grad():
        before = lm.model(ids).logits
    scores = run_perturbation(lm, items, conds, sigma_rel=0.5, noise_seed=0, max_new_tokens=2,
                              batch_size=4, progress=False)
    assert len(scores) == 4
    base = score_benchmark(lm, items, 2, 4)
    np.testing.assert_array_equal(scores[0].nll_nats, base.nll_nats)  # baseline untouched
    assert not np.array_equal(scores[1].nll_nats, base.nll_nats)
    with torch.no_grad():
        assert torch.equal(lm.model(ids).logits, before)
    again = run_perturbation(lm, items, conds[1:2], 0.5, 0, 2, 4, progress=False)
    np.testing.assert_array_equal(again[0].nll_nats, scores[1].nll_nats)  # seeded
    s = summarise_perturbation(conds, [x.accuracy for x in scores],
                               [x.gold_nll_nats for x in scores])
    assert s.nll_rise_synergistic == pytest.approx(scores[1].gold_nll_nats - base.gold_nll_nats)
    assert RANDOM in [c.name for c in conds]
