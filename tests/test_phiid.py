"""PhiID engine against the per-pair, per-sample reference and hand-checkable cases."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
from phiid_reference import ATOMS, local_entropy_gaussian, reference_vector

from scalelens.phiid import ATOM_NAMES, pairwise_phiid
from scalelens.phiid.atoms import ATOMS_FROM_KNOWNS, SWAP_ATOM_ORDER, knowns_to_atoms_matrix
from scalelens.phiid.gaussian import correlation_determinants
from scalelens.phiid.pairs import (
    chunk_ranges,
    n_pairs,
    pair_index,
    pairs_in_range,
    parse_shard,
    shard_pair_range,
    shard_pairs,
)

ATOL = 1e-9
ESTIMATORS = [("gaussian", "MMI"), ("gaussian", "CCS"), ("discrete", "MMI")]


def white_noise(n_heads: int, length: int, seed: int) -> np.ndarray:
    """Independent standard normal series [n_heads, length]."""
    return np.random.default_rng(seed).standard_normal((n_heads, length))


def coupled_ar1(n_heads: int, length: int, seed: int, phi: float = 0.7) -> np.ndarray:
    """VAR(1) series [n_heads, length]: each head autocorrelated (phi) and coupled to the others."""
    rng = np.random.default_rng(seed)
    coupling = phi * np.eye(n_heads) + 0.25 * rng.uniform(-1, 1, (n_heads, n_heads)) / n_heads
    series = np.zeros((n_heads, length + 50))
    for t in range(1, length + 50):
        series[:, t] = coupling @ series[:, t - 1] + rng.standard_normal(n_heads)
    return series[:, 50:] + 3.0  # offset: norms are positive; the estimator removes the mean


def pure_ar1(length: int, phi: float, seed: int) -> np.ndarray:
    """x_t = phi x_(t-1) + white noise, started from its stationary distribution."""
    rng = np.random.default_rng(seed)
    x = np.empty(length)
    x[0] = rng.standard_normal() / np.sqrt(1 - phi**2)
    for t in range(1, length):
        x[t] = phi * x[t - 1] + rng.standard_normal()
    return x


DATA = {"random": white_noise, "ar1": coupled_ar1}


def test_atom_names_match_reference_order():
    assert ATOM_NAMES == ATOMS


def test_knowns_matrix_inverse_is_exact_integer():
    matrix = knowns_to_atoms_matrix()
    assert np.array_equal(ATOMS_FROM_KNOWNS @ matrix, np.eye(16))
    assert np.array_equal(ATOMS_FROM_KNOWNS, np.rint(ATOMS_FROM_KNOWNS))


def test_swap_permutation_exchanges_x_and_y():
    swapped = [ATOM_NAMES[k] for k in SWAP_ATOM_ORDER]
    assert swapped[ATOM_NAMES.index("xty")] == "ytx"
    assert swapped[ATOM_NAMES.index("rtx")] == "rty"
    assert swapped[ATOM_NAMES.index("sts")] == "sts"
    assert np.array_equal(SWAP_ATOM_ORDER[SWAP_ATOM_ORDER], np.arange(16))


def test_closed_form_determinants_match_numpy():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((4, 4, 30)) + rng.standard_normal((4, 1, 30))
    for sample in data:
        corr = np.corrcoef(sample)
        corr6 = np.array([corr[0, 1], corr[0, 2], corr[0, 3], corr[1, 2], corr[1, 3], corr[2, 3]])
        det = correlation_determinants(corr6[:, None])
        assert det["xyXY"][0] == pytest.approx(np.linalg.det(corr), abs=1e-13)
        assert det["xyX"][0] == pytest.approx(np.linalg.det(corr[np.ix_([0, 1, 2], [0, 1, 2])]))
        assert det["yXY"][0] == pytest.approx(np.linalg.det(corr[np.ix_([1, 2, 3], [1, 2, 3])]))


def test_mean_local_entropy_closed_form():
    """PHIID.md: mean of -log p over N samples = k/2 log 2pi + 1/2 log det S + k(N-1)/(2N)."""
    x = coupled_ar1(3, 40, seed=2)
    variables = {"A": x[0], "B": x[1], "C": x[2]}
    n, k = 40, 3
    cov = np.cov(x, ddof=1)
    closed = k / 2 * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(cov)[1] + k * (n - 1) / (2 * n)
    assert local_entropy_gaussian(variables, ["A", "B", "C"]).mean() == pytest.approx(closed, 1e-12)


@pytest.mark.parametrize("estimator,redundancy", ESTIMATORS + [("discrete", "CCS")])
@pytest.mark.parametrize("tau", [1, 2])
@pytest.mark.parametrize("data", ["random", "ar1"])
def test_all_atoms_match_reference_in_both_orders(estimator, redundancy, tau, data):
    series = DATA[data](4, 90, seed=10 + tau)
    result = pairwise_phiid(
        series, estimator=estimator, redundancy=redundancy, tau=tau, return_atoms=True
    )
    assert result.unit == ("nats" if estimator == "gaussian" else "bits")
    for i, j in zip(*np.triu_indices(4, 1), strict=True):
        forward = reference_vector(series[i], series[j], tau, estimator, redundancy)
        backward = reference_vector(series[j], series[i], tau, estimator, redundancy)
        np.testing.assert_allclose(result.atoms[:, i, j], forward, rtol=0, atol=ATOL)
        np.testing.assert_allclose(result.atoms[:, j, i], backward, rtol=0, atol=ATOL)
        for matrix, atom in ((result.sts, "sts"), (result.rtr, "rtr")):
            k = ATOMS.index(atom)
            assert matrix[i, j] == pytest.approx(forward[k], abs=ATOL)
            assert matrix[j, i] == pytest.approx(backward[k], abs=ATOL)
    assert np.isnan(np.diag(result.sts)).all() and np.isnan(result.atoms[:, 0, 0]).all()


@pytest.mark.parametrize("estimator,redundancy", ESTIMATORS)
def test_sts_rtr_without_atoms_and_in_small_chunks_match(estimator, redundancy):
    series = coupled_ar1(7, 60, seed=3)
    full = pairwise_phiid(series, estimator=estimator, redundancy=redundancy, return_atoms=True)
    small = pairwise_phiid(series, estimator=estimator, redundancy=redundancy, chunk_pairs=4)
    np.testing.assert_allclose(small.sts, full.atoms[ATOM_NAMES.index("sts")], atol=1e-12)
    np.testing.assert_allclose(small.rtr, full.atoms[ATOM_NAMES.index("rtr")], atol=1e-12)
    np.testing.assert_allclose(small.sts, small.sts.T, atol=0)
    assert small.atoms is None


def test_prompts_are_averaged_over_valid_lengths_and_categories():
    rng = np.random.default_rng(4)
    series = np.stack([coupled_ar1(3, 70, seed=s) for s in range(3)]).astype(np.float32)
    lengths = np.array([70, 55, 62])
    series[1, :, 55:] = np.nan  # steps past the generated length
    categories = ["math", "code", "math"]
    result = pairwise_phiid(series, lengths=lengths, categories=categories, tau=1)
    per_prompt = np.array(
        [reference_vector(series[p, 0, : lengths[p]], series[p, 2, : lengths[p]]) for p in range(3)]
    )
    sts = ATOMS.index("sts")
    assert result.sts[0, 2] == pytest.approx(per_prompt[:, sts].mean(), abs=ATOL)
    assert result.categories == ("code", "math")
    assert result.sts_by_category[1, 0, 2] == pytest.approx(per_prompt[[0, 2], sts].mean(), ATOL)
    assert result.sts_by_category[0, 2, 0] == pytest.approx(per_prompt[1, sts], abs=ATOL)
    assert result.n_prompts == 3 and result.n_prompts_defined[0, 2] == 3
    assert not result.degeneracy.any
    assert rng is not None


def test_independent_gaussian_series_have_near_zero_atoms():
    series = white_noise(3, 20_000, seed=5)
    result = pairwise_phiid(series, return_atoms=True)
    off_diagonal = result.atoms[:, ~np.eye(3, dtype=bool)]
    assert np.abs(off_diagonal).max() < 1e-3


def test_atoms_sum_to_joint_mutual_information():
    series = coupled_ar1(3, 300, seed=6)
    result = pairwise_phiid(series, return_atoms=True)
    x, y = series[0], series[1]
    corr = np.corrcoef(np.stack([x[:-1], y[:-1], x[1:], y[1:]]))

    def logdet(idx):
        return np.linalg.slogdet(corr[np.ix_(idx, idx)])[1]

    i_xytab = 0.5 * (logdet([0, 1]) + logdet([2, 3]) - logdet([0, 1, 2, 3]))
    assert result.atoms[:, 0, 1].sum() == pytest.approx(i_xytab, abs=1e-12)
    assert result.atoms[:, 1, 0].sum() == pytest.approx(i_xytab, abs=1e-12)


def test_nearly_identical_series_are_dominated_by_redundancy():
    x = pure_ar1(3000, 0.8, seed=7)
    y = x + 0.05 * np.random.default_rng(8).standard_normal(x.shape)
    result = pairwise_phiid(np.stack([x, y]), return_atoms=True)
    atoms = dict(zip(ATOM_NAMES, result.atoms[:, 0, 1], strict=True))
    total = sum(atoms.values())
    assert atoms["rtr"] > 0.8 * total
    assert atoms["rtr"] > 10 * abs(atoms["sts"])


def test_autocorrelated_source_with_independent_target_is_unique_xtx():
    """x AR(1) with phi, y white noise: only xtx carries information, -1/2 log(1 - phi^2)."""
    phi = 0.6
    x = pure_ar1(40_000, phi, seed=9)
    y = white_noise(1, 40_000, seed=10)[0]
    result = pairwise_phiid(np.stack([x, y]), return_atoms=True)
    atoms = dict(zip(ATOM_NAMES, result.atoms[:, 0, 1], strict=True))
    assert atoms["xtx"] == pytest.approx(-0.5 * np.log(1 - phi**2), abs=0.01)
    assert all(abs(v) < 1e-3 for k, v in atoms.items() if k != "xtx")


def test_discrete_alternating_series_are_pure_redundancy_of_one_bit():
    x = np.tile([0.0, 1.0], 21)[:41]  # 40 samples per window, balanced
    result = pairwise_phiid(np.stack([x, 1.0 - x]), estimator="discrete", return_atoms=True)
    atoms = dict(zip(ATOM_NAMES, result.atoms[:, 0, 1], strict=True))
    assert result.unit == "bits"
    assert atoms["rtr"] == pytest.approx(1.0, abs=1e-12)
    assert all(abs(v) < 1e-12 for k, v in atoms.items() if k != "rtr")


def test_discrete_xor_dynamics_give_one_bit_of_synergy_to_x():
    """x' = x XOR y with y fair coin flips: stx = 1 bit, every other atom about 0."""
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 20_000)
    x = np.zeros_like(y)
    for t in range(1, len(y)):
        x[t] = x[t - 1] ^ y[t - 1]
    result = pairwise_phiid(np.stack([x, y]).astype(float), estimator="discrete", return_atoms=True)
    atoms = dict(zip(ATOM_NAMES, result.atoms[:, 0, 1], strict=True))
    assert atoms["stx"] == pytest.approx(1.0, abs=0.01)
    assert all(abs(v) < 0.01 for k, v in atoms.items() if k != "stx")


# --- degenerate input -------------------------------------------------------------------------


def _assert_pairs_of_head_nan(matrix: np.ndarray, head: int) -> None:
    others = [k for k in range(matrix.shape[0]) if k != head]
    assert np.isnan(matrix[head, others]).all() and np.isnan(matrix[others, head]).all()


@pytest.mark.parametrize(
    "estimator,redundancy,bad_value,reason",
    [
        ("gaussian", "MMI", "constant", "constant"),
        ("gaussian", "CCS", "nan", "nonfinite"),
        ("discrete", "MMI", "inf", "nonfinite"),
        ("discrete", "MMI", "constant", "constant"),
    ],
)
def test_degenerate_head_is_nan_counted_and_logged(
    estimator, redundancy, bad_value, reason, caplog
):
    series = coupled_ar1(4, 50, seed=12)
    series[2] = {"constant": 1.5, "nan": series[2], "inf": series[2]}[bad_value]
    if bad_value == "nan":
        series[2, 7] = np.nan
    if bad_value == "inf":
        series[2, 7] = np.inf
    with caplog.at_level(logging.WARNING, logger="scalelens.phiid"):
        result = pairwise_phiid(series, estimator=estimator, redundancy=redundancy)
    _assert_pairs_of_head_nan(result.sts, 2)
    _assert_pairs_of_head_nan(result.rtr, 2)
    assert np.isfinite(result.sts[0, 1]) and np.isfinite(result.rtr[0, 3])
    report = result.degeneracy
    assert report.n_degenerate_heads == 1 and report.head_reasons == {reason: 1}
    assert report.n_degenerate_pairs == 3 and report.n_undefined_pairs == 3
    assert report.pair_reasons == {"degenerate_head": 3}
    assert "degenerate" in caplog.text


def test_window_with_zero_variance_is_degenerate_for_gaussian_only():
    series = coupled_ar1(3, 30, seed=13)
    series[1] = 0.0
    series[1, -1] = 1.0  # the past window (all but the last step) is constant
    gaussian = pairwise_phiid(series)
    assert gaussian.degeneracy.head_reasons == {"constant_window": 1}
    _assert_pairs_of_head_nan(gaussian.sts, 1)
    discrete = pairwise_phiid(series, estimator="discrete")
    assert not discrete.degeneracy.any and np.isfinite(discrete.sts[0, 1])


def test_too_short_series_are_nan_for_every_pair(caplog):
    series = coupled_ar1(3, 4, seed=14)
    with caplog.at_level(logging.WARNING, logger="scalelens.phiid"):
        result = pairwise_phiid(series, tau=2)  # needs tau + 3 = 5 steps
    assert np.isnan(result.sts).all() and np.isnan(result.rtr).all()
    assert result.degeneracy.head_reasons == {"too_short": 3}
    assert result.degeneracy.n_undefined_pairs == 3
    assert "too_short" in caplog.text


def test_identical_heads_are_singular_not_infinite():
    series = coupled_ar1(3, 60, seed=15)
    series[2] = 2.0 * series[0] + 1.0  # perfectly collinear with head 0
    result = pairwise_phiid(series, return_atoms=True)
    assert np.isnan(result.sts[0, 2]) and np.isnan(result.atoms[:, 2, 0]).all()
    assert np.isfinite(result.sts[1, 2])
    assert result.degeneracy.pair_reasons == {"singular_covariance": 1}
    assert result.degeneracy.n_degenerate_heads == 0


def test_head_degenerate_in_one_prompt_is_averaged_over_the_others(caplog):
    series = np.stack([coupled_ar1(3, 40, seed=s) for s in (16, 17, 18)])
    series[1, 0] = 0.0  # head 0 is constant in prompt 1 only
    with caplog.at_level(logging.WARNING, logger="scalelens.phiid"):
        result = pairwise_phiid(series)
    expected = np.mean([reference_vector(series[p, 0], series[p, 1])[-1] for p in (0, 2)])
    assert result.sts[0, 1] == pytest.approx(expected, abs=ATOL)
    assert result.n_prompts_defined[0, 1] == 2 and result.n_prompts_defined[1, 2] == 3
    report = result.degeneracy
    assert report.n_degenerate_pairs == 2 and report.n_undefined_pairs == 0
    assert report.undefined_pairs_per_prompt.tolist() == [0, 2, 0]
    assert "degenerate" in caplog.text


def test_clean_input_logs_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger="scalelens.phiid"):
        result = pairwise_phiid(coupled_ar1(3, 40, seed=19))
    assert caplog.text == "" and not result.degeneracy.any


def test_invalid_arguments_raise_actionable_errors():
    series = coupled_ar1(3, 20, seed=20)
    with pytest.raises(ValueError, match="estimator"):
        pairwise_phiid(series, estimator="kraskov")
    with pytest.raises(ValueError, match="tau"):
        pairwise_phiid(series, tau=0)
    with pytest.raises(ValueError, match="lengths"):
        pairwise_phiid(series[None], lengths=np.array([21]))
    with pytest.raises(ValueError, match="categories"):
        pairwise_phiid(series[None], categories=["a", "b"])
    with pytest.raises(ValueError, match="2 heads"):
        pairwise_phiid(series[:1])


# --- pair indexing and shards -----------------------------------------------------------------


def test_pairs_are_row_major_upper_triangle():
    i, j = pairs_in_range(6, 0, n_pairs(6))
    ti, tj = np.triu_indices(6, 1)
    assert np.array_equal(i, ti) and np.array_equal(j, tj)
    assert np.array_equal(pair_index(6, tj, ti), np.arange(15))


def test_shards_are_balanced_and_tile_all_pairs():
    ranges = [shard_pair_range(1152, f"{k}/7") for k in range(7)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n_pairs(1152) == 662_976
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    sizes = [b - a for a, b in ranges]
    assert max(sizes) - min(sizes) <= 1
    i, j = shard_pairs(10, "1/3")
    start, stop = shard_pair_range(10, (1, 3))
    assert np.array_equal(pair_index(10, i, j), np.arange(start, stop))
    assert chunk_ranges(10, 25, 10) == [(10, 20), (20, 25)]


@pytest.mark.parametrize("spec", ["3/3", "1-4", "-1/2", "0/0"])
def test_bad_shard_specs_raise(spec):
    with pytest.raises(ValueError, match="shard"):
        parse_shard(spec)
