"""Gaussian PhiID estimator: standardised windows, closed-form mean MIs (MMI) and local MIs (CCS).

Every variable is divided by its own sample std (ddof=1), so the covariance of any subset of
(X, Y, X', Y') is a correlation matrix built from six numbers per pair:
a = r(X,Y), b = r(X,X'), c = r(X,Y'), d = r(Y,X'), e = r(Y,Y'), f = r(X',Y').
b and e depend on one head only (lag-tau autocorrelation of that head's windows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scalelens.phiid.atoms import ENTROPY_SUBSETS, MI_TERMS

# A pair whose (X, Y, X', Y') correlation matrix has a principal minor at or below this value is
# treated as singular (a perfectly collinear pair): rounding dominates such determinants.
SINGULAR_DET_THRESHOLD = 1e-12


def standardized_windows(series: np.ndarray, tau: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Past and future windows [n, T - tau], centred and divided by their std (ddof=1).

    Returns (past_z, future_z, window_constant): heads whose past or future window has zero
    variance are flagged in window_constant and get all-zero windows.
    """
    n_samples = series.shape[1] - tau
    past = series[:, :n_samples]
    future = series[:, tau:]
    window_constant = (np.ptp(past, axis=1) == 0) | (np.ptp(future, axis=1) == 0)
    return (
        _standardize(past, window_constant),
        _standardize(future, window_constant),
        window_constant,
    )


def _standardize(window: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """(w - mean) / std(ddof=1) per row; rows flagged constant become zeros."""
    centred = window - window.mean(axis=1, keepdims=True)
    std = np.sqrt((centred * centred).sum(axis=1, keepdims=True) / (window.shape[1] - 1))
    std[constant] = 1.0
    centred[constant] = 0.0
    return centred / std


def pair_correlations(
    past_z: np.ndarray, future_z: np.ndarray, i_idx: np.ndarray, j_idx: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The six correlations (a, b, c, d, e, f), [P] each, of pairs (source i, target j).

    Computed with block matrix products over the rows/columns the pairs touch, so a chunk of
    row-major pairs costs about its share of one n x n product and never a Python loop.
    """
    scale = 1.0 / (past_z.shape[1] - 1)
    r0, r1 = int(i_idx.min()), int(i_idx.max()) + 1
    c0, c1 = int(j_idx.min()), int(j_idx.max()) + 1
    n_rows, n_cols = r1 - r0, c1 - c0
    row_block = np.concatenate([past_z[r0:r1], future_z[r0:r1]])
    col_block = np.concatenate([past_z[c0:c1], future_z[c0:c1]])
    # one product holds all four lag-0 / lag-tau blocks: [[pp, pf], [fp, ff]]
    products = (row_block @ col_block.T).ravel()
    flat = (i_idx - r0) * (2 * n_cols) + (j_idx - c0)
    a = np.take(products, flat)
    c = np.take(products, flat + n_cols)
    d = np.take(products, flat + n_rows * 2 * n_cols)
    f = np.take(products, flat + n_rows * 2 * n_cols + n_cols)
    a, c, d, f = (v * scale for v in (a, c, d, f))
    auto = np.einsum("nt,nt->n", past_z, future_z) * scale
    return a, auto[i_idx], c, d, auto[j_idx], f


def correlation_determinants(corr6: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Closed-form determinants of the correlation sub-matrices that the nine MIs need.

    Keys name the variables: 'xy' is det of (X, Y), 'xyX' of (X, Y, X'), 'xyXY' the full 4x4
    (via the Schur complement of the (X, Y) block).
    """
    a, b, c, d, e, f = corr6
    a2, b2, c2, d2, e2, f2 = a * a, b * b, c * c, d * d, e * e, f * f
    det = {
        "xy": 1.0 - a2, "xX": 1.0 - b2, "xY": 1.0 - c2,
        "yX": 1.0 - d2, "yY": 1.0 - e2, "XY": 1.0 - f2,
    }  # fmt: skip
    det["xyX"] = det["xy"] - b2 - d2 + 2.0 * a * b * d
    det["xyY"] = det["xy"] - c2 - e2 + 2.0 * a * c * e
    det["xXY"] = det["XY"] - b2 - c2 + 2.0 * b * c * f
    det["yXY"] = det["XY"] - d2 - e2 + 2.0 * d * e * f
    off = f * det["xy"] - (b * c + d * e) + a * (b * e + c * d)
    with np.errstate(divide="ignore", invalid="ignore"):
        det["xyXY"] = (det["xyX"] * det["xyY"] - off * off) / det["xy"]
    return det


def singular_pairs(det: dict[str, np.ndarray]) -> np.ndarray:
    """True where any needed correlation determinant is <= SINGULAR_DET_THRESHOLD or not finite."""
    values = iter(det.values())
    smallest = next(values).copy()
    for value in values:
        np.minimum(smallest, value, out=smallest)  # propagates NaN, which fails the test below
    return ~(smallest > SINGULAR_DET_THRESHOLD)


def mean_mis_from_determinants(det: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Time-averaged Gaussian MIs {name: [P]} in nats: 1/2 log det ratios.

    The mean local entropy is k/2 log(2 pi) + 1/2 log det + k(N-1)/(2N); the k-terms cancel in
    every MI, leaving i(A;B) = 1/2 (log det A + log det B - log det AB).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        log = {key: np.log(value) for key, value in det.items()}
    return {
        "I_xta": -0.5 * log["xX"],
        "I_xtb": -0.5 * log["xY"],
        "I_yta": -0.5 * log["yX"],
        "I_ytb": -0.5 * log["yY"],
        "I_xyta": 0.5 * (log["xy"] - log["xyX"]),
        "I_xytb": 0.5 * (log["xy"] - log["xyY"]),
        "I_xtab": 0.5 * (log["XY"] - log["xXY"]),
        "I_ytab": 0.5 * (log["XY"] - log["yXY"]),
        "I_xytab": 0.5 * (log["xy"] + log["XY"] - log["xyXY"]),
    }


def correlation_matrices(corr6: Sequence[np.ndarray], singular: np.ndarray) -> np.ndarray:
    """4x4 correlation matrices [P, 4, 4] of (X, Y, X', Y'); singular pairs get the identity."""
    a, b, c, d, e, f = (np.where(singular, 0.0, r) for r in corr6)
    one = np.ones_like(a)
    return np.stack(
        [
            np.stack([one, a, b, c], axis=-1),
            np.stack([a, one, d, e], axis=-1),
            np.stack([b, d, one, f], axis=-1),
            np.stack([c, e, f, one], axis=-1),
        ],
        axis=-2,
    )


def local_mis(
    past_z: np.ndarray,
    future_z: np.ndarray,
    i_idx: np.ndarray,
    j_idx: np.ndarray,
    corr4: np.ndarray,
) -> dict[str, np.ndarray]:
    """Local (per-sample) Gaussian MIs {name: [P, N]} in nats for pairs (source i, target j).

    Local entropy up to a constant that cancels in MIs: 1/2 log det S + 1/2 z_S' S^-1 z_S,
    with z the standardised sample (sample mean removed) and S its correlation sub-matrix.
    The quadratic forms are sums of inverse entries times shared products z_a z_b.
    """
    z = (past_z[i_idx], past_z[j_idx], future_z[i_idx], future_z[j_idx])
    products = {(a, b): z[a] * z[b] for a in range(4) for b in range(a, 4)}
    half_h = {}
    for subset in ENTROPY_SUBSETS:
        if len(subset) == 1:
            half_h[subset] = 0.5 * products[(subset[0], subset[0])]
            continue
        idx = list(subset)
        sub_corr = corr4[:, idx][:, :, idx]
        inverse = np.linalg.inv(sub_corr)
        _, logdet = np.linalg.slogdet(sub_corr)
        quad = np.zeros_like(z[0])
        for u, a in enumerate(subset):
            quad += inverse[:, u, u, None] * products[(a, a)]
            for w in range(u + 1, len(subset)):
                quad += 2.0 * inverse[:, u, w, None] * products[(a, subset[w])]
        half_h[subset] = 0.5 * (logdet[:, None] + quad)
    return {
        name: half_h[a] + half_h[b] - half_h[tuple(sorted(a + b))]
        for name, (a, b) in MI_TERMS.items()
    }
