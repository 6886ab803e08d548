"""Syn-red ranking and layer profile on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from scalelens.ranking import (
    average_ranks,
    layer_profile,
    layer_profile_from_scores,
    mean_over_partners,
    rank_heads,
    rankings_frame,
    read_head_grid,
    read_head_scores,
    third_sizes,
)

NAN = np.nan
# 2 layers x 2 heads. Synergy means: h0 (1+2+3)/3 = 2, h1 (1+4+5)/3 = 10/3, h2 4, h3 14/3.
STS = np.array([[NAN, 1, 2, 3], [1, NAN, 4, 5], [2, 4, NAN, 6], [3, 5, 6, NAN]], dtype=float)
# Redundancy means: h0 8/3, h1 8/3, h2 1, h3 1 (two ties).
RTR = np.array([[NAN, 6, 1, 1], [6, NAN, 1, 1], [1, 1, NAN, 1], [1, 1, 1, NAN]], dtype=float)


def test_hand_computed_ranking():
    ranking = rank_heads(STS, RTR, n_layers=2, n_heads_per_layer=2)
    np.testing.assert_allclose(ranking.synergy, [2, 10 / 3, 4, 14 / 3])
    np.testing.assert_allclose(ranking.redundancy, [8 / 3, 8 / 3, 1, 1])
    np.testing.assert_array_equal(ranking.synergy_rank, [1, 2, 3, 4])
    np.testing.assert_array_equal(ranking.redundancy_rank, [3.5, 3.5, 1.5, 1.5])  # ties averaged
    np.testing.assert_array_equal(ranking.syn_red_score, [-2.5, -1.5, 1.5, 2.5])
    np.testing.assert_allclose(ranking.syn_red_score_normalised, [-2.5 / 3, -0.5, 0.5, 2.5 / 3])
    np.testing.assert_array_equal(ranking.layer, [0, 0, 1, 1])
    np.testing.assert_array_equal(ranking.head, [0, 1, 0, 1])
    np.testing.assert_array_equal(ranking.flat_index, [0, 1, 2, 3])
    np.testing.assert_array_equal(ranking.n_partners_synergy, [3, 3, 3, 3])
    np.testing.assert_allclose(ranking.score_grid(), [[-2.5 / 3, -0.5], [0.5, 2.5 / 3]])


def test_nan_pairs_are_skipped_and_counted():
    sts = STS.copy()
    sts[0, 1] = sts[1, 0] = NAN
    means, counts = mean_over_partners(sts)
    np.testing.assert_allclose(means, [2.5, 4.5, 4, 14 / 3])
    np.testing.assert_array_equal(counts, [2, 2, 3, 3])


def test_head_without_partners_is_unranked_and_others_rank_among_themselves():
    sts, rtr = STS.copy(), RTR.copy()
    sts[3, :] = sts[:, 3] = NAN
    ranking = rank_heads(sts, rtr, 2, 2)
    assert np.isnan(ranking.synergy[3]) and np.isnan(ranking.syn_red_score[3])
    np.testing.assert_array_equal(ranking.synergy_rank[:3], [1, 2, 3])  # means 1.5, 2.5, 3
    np.testing.assert_array_equal(ranking.redundancy_rank[:3], [2.5, 2.5, 1])  # 3.5, 3.5, 1
    np.testing.assert_allclose(ranking.syn_red_score_normalised[:3], [-0.75, -0.25, 1.0])


def test_normalised_score_spans_minus_one_to_one():
    rng = np.random.default_rng(0)
    values = rng.random((12, 12))
    sts = values + values.T
    ranking = rank_heads(sts, -sts, 3, 4)  # redundancy order is the reverse of synergy order
    assert ranking.syn_red_score_normalised.max() == 1.0
    assert ranking.syn_red_score_normalised.min() == -1.0


def test_average_ranks_with_nan():
    np.testing.assert_array_equal(average_ranks(np.array([3.0, NAN, 1.0, 3.0])), [2.5, NAN, 1, 2.5])


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="layers"):
        rank_heads(STS, RTR, 3, 2)


def test_hand_computed_layer_profile():
    layer_means = np.array([-0.5, 0.0, 0.5, 0.7, 0.1, -0.4])
    scores = np.repeat(layer_means, 2) + np.tile([-0.1, 0.1], 6)  # 2 heads per layer
    scores[5] = NAN  # layer 2 keeps one head: its mean is that head's score
    profile = layer_profile_from_scores(scores, 6, 2)
    np.testing.assert_allclose(profile.depth, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(profile.mean_score, [-0.5, 0.0, 0.4, 0.7, 0.1, -0.4])
    np.testing.assert_array_equal(profile.n_heads_scored, [2, 2, 1, 2, 2, 2])
    assert profile.peak_layer == 3 and profile.peak_depth == pytest.approx(0.6)
    assert profile.layers_per_third == (2, 2, 2)
    assert profile.first_third_mean == pytest.approx(-0.25)
    assert profile.middle_third_mean == pytest.approx(0.55)
    assert profile.last_third_mean == pytest.approx(-0.15)
    assert profile.middle_more_synergistic and profile.middle_margin == pytest.approx(0.7)


def test_monotone_profile_is_not_middle_synergistic():
    profile = layer_profile_from_scores(np.linspace(-1, 1, 9), 9, 1)
    assert profile.peak_layer == 8 and profile.peak_depth == 1.0
    assert not profile.middle_more_synergistic and profile.middle_margin < 0


def test_third_sizes_are_symmetric():
    assert third_sizes(36) == (12, 12, 12)
    assert third_sizes(26) == (9, 8, 9)
    assert third_sizes(16) == (5, 6, 5)


def test_layer_profile_of_a_ranking():
    ranking = rank_heads(_toy_sts(), _toy_rtr(), 3, 2)
    profile = layer_profile(ranking)
    assert profile.peak_layer == 1 and profile.middle_more_synergistic


def _toy_sts() -> np.ndarray:
    """6 heads (3 layers x 2): middle-layer heads 2, 3 share high synergy with everyone."""
    base = np.ones((6, 6))
    base[2:4, :] += 2.0
    base[:, 2:4] += 2.0
    return base


def _toy_rtr() -> np.ndarray:
    """Outer-layer heads 0, 1, 4, 5 share high redundancy."""
    base = np.ones((6, 6))
    outer = [0, 1, 4, 5]
    base[np.ix_(outer, outer)] += 3.0
    return base


def test_rankings_csv_round_trips_through_its_reader(tmp_path):
    from scalelens.errors import ScalelensError
    from scalelens.io import save_csv

    ranking = rank_heads(STS, RTR, n_layers=2, n_heads_per_layer=2)
    path = tmp_path / "r.csv"
    save_csv(path, rankings_frame(ranking, "nats"))
    flat, score = read_head_scores(path)
    np.testing.assert_array_equal(flat, [0, 1, 2, 3])
    np.testing.assert_array_equal(score, [-2.5, -1.5, 1.5, 2.5])
    assert read_head_grid(path) == (2, 2)
    (tmp_path / "bad.csv").write_text("layer,head\n0,0\n")
    with pytest.raises(ScalelensError, match=r"bad.csv: no column flat_index, syn_red_score"):
        read_head_scores(tmp_path / "bad.csv")
