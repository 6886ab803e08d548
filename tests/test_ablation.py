"""Cumulative ablation: orders, KL against definitions, batching, summary numbers by hand."""

import numpy as np
import pytest
import torch

from scalelens.ablation import (
    NO_SEED,
    RANDOM,
    RED_FIRST,
    SYN_FIRST,
    build_orders,
    curve_table,
    kl_from_logits,
    removal_counts,
    require_rankings_fit,
    run_ablation_sweep,
    select_prompts,
    summarise_curves,
    syn_red_orders,
)
from scalelens.batching import position_ids_from_mask
from scalelens.errors import ScalelensError

TEXTS = ["a b c", "hello there, a longer prompt", "xyz", "1 + 2 = 3, 4 + 5 ="]


def test_orders_sort_by_score_ties_by_index_nan_last():
    flat = np.array([3, 0, 2, 1, 4])
    score = np.array([0.5, np.nan, 0.5, -1.0, 2.0])  # heads: 3->.5, 0->nan, 2->.5, 1->-1, 4->2
    syn, red = syn_red_orders(flat, score)
    assert syn.tolist() == [4, 2, 3, 1, 0]
    assert red.tolist() == [1, 2, 3, 4, 0]
    with pytest.raises(ValueError, match="permutation"):
        syn_red_orders(np.array([0, 0, 1]), np.zeros(3))


def test_build_orders_names_seeds_and_permutations():
    orders = build_orders(np.arange(6), np.arange(6.0), [5, 9])
    assert [(o.name, o.seed) for o in orders] == [(SYN_FIRST, NO_SEED), (RED_FIRST, NO_SEED),
                                                  (RANDOM, 5), (RANDOM, 9)]
    for o in orders:
        assert sorted(o.heads.tolist()) == list(range(6))
    assert orders[0].heads.tolist() == [5, 4, 3, 2, 1, 0]
    again = build_orders(np.arange(6), np.arange(6.0), [5, 9])
    assert np.array_equal(again[2].heads, orders[2].heads)
    assert not np.array_equal(orders[2].heads, orders[3].heads)


def test_removal_counts_end_at_all_heads():
    assert removal_counts(10, 4).tolist() == [0, 4, 8, 10]
    assert removal_counts(8, 4).tolist() == [0, 4, 8]
    with pytest.raises(ValueError, match="step_size"):
        removal_counts(8, 0)


def test_kl_matches_the_definition():
    ref = torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    other = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    p = np.exp([1.0, 0.0, -1.0]) / np.exp([1.0, 0.0, -1.0]).sum()
    expected = np.sum(p * np.log(p / (1 / 3)))
    kl = kl_from_logits(ref, other)
    assert kl[0] == pytest.approx(expected, rel=1e-12)
    assert kl[1] == 0.0


def test_select_prompts_round_robin_over_categories():
    cats = ["a", "a", "a", "b", "b", "c"]
    assert select_prompts(cats, 0).tolist() == [0, 1, 2, 3, 4, 5]
    assert select_prompts(cats, 3).tolist() == [0, 3, 5]
    assert select_prompts(cats, 4).tolist() == [0, 1, 3, 5]
    assert select_prompts(cats, 5).tolist() == [0, 1, 2, 3, 4, 5][:2] + [3, 4, 5]


def test_summary_auc_ratio_and_band_by_hand():
    frac = np.array([0.0, 0.5, 1.0])
    curves = np.array([
        [0.0, 4.0, 6.0],  # syn: AUC = 0.5*(0+4)/2 + 0.5*(4+6)/2 = 1 + 2.5 = 3.5
        [0.0, 1.0, 6.0],  # red: 0.25 + 1.75 = 2.0
        [0.0, 2.0, 6.0],  # random seed a: 0.5 + 2.0 = 2.5
        [0.0, 2.0, 6.0],
        [0.0, 3.5, 6.0],  # random seed c: 0.875 + 2.375 = 3.25
    ])
    names = [SYN_FIRST, RED_FIRST, RANDOM, RANDOM, RANDOM]
    s = summarise_curves(frac, curves, names)
    assert s.auc_syn_first == pytest.approx(3.5)
    assert s.auc_red_first == pytest.approx(2.0)
    assert s.auc_random_by_seed.tolist() == pytest.approx([2.5, 2.5, 3.25])
    assert s.auc_random_mean == pytest.approx(2.75)
    assert s.ratio_syn_random == pytest.approx(3.5 / 2.75)
    # band at the middle point: mean 2.5, std (ddof=1) of (2, 2, 3.5) = sqrt(0.75)
    upper_mid = 2.5 + np.sqrt(0.75)
    assert s.auc_band_upper == pytest.approx(0.25 * upper_mid + 0.25 * (upper_mid + 6.0))
    assert s.syn_first_above_random_band  # 4.0 > 3.366 in the middle
    assert s.fraction_points_above_band == 1.0
    head = s.headline()
    assert list(head) == ["auc_syn_first", "auc_red_first", "auc_random_mean", "auc_random_std",
                          "auc_band_upper", "ratio_syn_random", "ratio_red_random",
                          "fraction_points_above_band", "syn_first_above_random_band"]
    assert head["auc_syn_first"] == pytest.approx(3.5) and head["syn_first_above_random_band"]
    curves[0, 1] = 3.0
    s2 = summarise_curves(frac, curves, names)
    assert not s2.syn_first_above_random_band
    with pytest.raises(ValueError, match=">= 2 random"):
        summarise_curves(frac, curves[:3], names[:3])


def test_position_ids_skip_left_padding():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen3_4b", "gemma3"])
def test_sweep_batched_equals_one_prompt_at_a_time_and_restores(tiny_lm, arch):
    lm = tiny_lm(arch)
    n = lm.geometry.n_heads_total
    orders = build_orders(np.arange(n), np.linspace(-1, 1, n), [0, 1])
    with torch.no_grad():
        ids = lm.tokenizer(TEXTS[1], return_tensors="pt").input_ids
        before = lm.model(ids).logits
    batched = run_ablation_sweep(lm, TEXTS, orders, step_size=3, batch_size=4, progress=False)
    single = run_ablation_sweep(lm, TEXTS, orders, step_size=3, batch_size=1, progress=False)
    steps = list(range(0, n, 3)) + [n]  # llama and gpt2: [0, 3, 6, 8]
    assert batched.n_removed.tolist() == steps
    np.testing.assert_allclose(batched.kl_nats, single.kl_nats, rtol=1e-4, atol=1e-8)
    assert np.all(batched.kl_nats[:, 0] == 0)
    assert np.all(batched.kl_nats[:, 1:] > 0)
    # every order ends with every head removed: the same model, the same KL
    np.testing.assert_allclose(batched.kl_nats[:, -1], batched.kl_nats[0, -1][None].repeat(4, 0),
                               rtol=1e-9)
    assert batched.n_forward_passes == 1 + 4 * (len(steps) - 1) * 1
    assert single.n_forward_passes == 4 + 4 * (len(steps) - 1) * 4
    assert single.n_sequences == 4 + 4 * (len(steps) - 1) * 4
    with torch.no_grad():
        assert torch.equal(lm.model(ids).logits, before)


def test_sweep_kl_is_the_kl_of_an_explicit_ablation(tiny_lm):
    lm = tiny_lm("qwen2")
    from scalelens.interventions import ablate_heads

    n = lm.geometry.n_heads_total
    orders = build_orders(np.arange(n), np.arange(float(n)), [3, 4])
    sweep = run_ablation_sweep(lm, TEXTS[:1], orders, step_size=n, batch_size=2, progress=False)
    ids = lm.tokenizer(TEXTS[0], return_tensors="pt").input_ids
    with torch.no_grad():
        ref = lm.model(ids).logits[0, -1]
        with ablate_heads(lm, range(n)):
            abl = lm.model(ids).logits[0, -1]
    p, q = torch.softmax(ref.double(), -1), torch.softmax(abl.double(), -1)
    expected = float((p * (p.log() - q.log())).sum())
    assert sweep.kl_nats[0, -1, 0] == pytest.approx(expected, rel=1e-5)
    table = curve_table(sweep)
    assert table["order"].tolist() == [SYN_FIRST] * 2 + [RED_FIRST] * 2 + [RANDOM] * 4
    assert table["seed"].tolist() == [-1, -1, -1, -1, 3, 3, 4, 4]
    assert table["fraction"].tolist() == [0.0, 1.0] * 4


def test_rankings_must_list_every_head_of_the_model():
    require_rankings_fit(np.arange(12), "tiny:llama", 12)
    with pytest.raises(ScalelensError, match=r"^rankings list 11 heads but tiny:llama has 12: "
                                             r"rerun `dvc repro rank@tiny-llama`$"):
        require_rankings_fit(np.arange(11), "tiny:llama", 12)


def test_resolution_is_compared_with_the_seeds():
    from scalelens.ablation import resolution_vs_seed

    coarse = resolution_vs_seed(step_size=27, n_prompts=16)
    assert coarse["coarser_than_seed"] is True
    assert coarse["resolution_note"] == (
        "coarser than seed 001: a step of 27 heads (seed: 8) and 16 prompts (seed: 60); the "
        "seed's resolution: ablation.step_size 8, ablation.n_prompts 60")
    fine = resolution_vs_seed(step_size=8, n_prompts=64)
    assert fine["coarser_than_seed"] is False and fine["seed_step_size"] == 8
