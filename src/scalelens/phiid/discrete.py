"""Discrete (binary, plug-in) PhiID estimator, in bits.

Each of the four variables X, Y, X', Y' is binarised as 1 where it is above its own mean
(the window's mean, as for the Gaussian normalisation), else 0. A pair's joint pattern at
sample t is coded as 8 X + 4 Y + 2 X' + Y', so a pair's whole distribution is 16 counts.
"""

from __future__ import annotations

import numpy as np

from scalelens.phiid.atoms import ENTROPY_SUBSETS, MI_TERMS


def binarized_windows(series: np.ndarray, tau: int) -> tuple[np.ndarray, np.ndarray]:
    """Past and future windows [n, T - tau] as uint8, 1 where above the window's own mean."""
    n_samples = series.shape[1] - tau
    past = series[:, :n_samples]
    future = series[:, tau:]
    past_bits = (past > past.mean(axis=1, keepdims=True)).astype(np.uint8)
    future_bits = (future > future.mean(axis=1, keepdims=True)).astype(np.uint8)
    return past_bits, future_bits


def joint_codes(
    past_bits: np.ndarray, future_bits: np.ndarray, i_idx: np.ndarray, j_idx: np.ndarray
) -> np.ndarray:
    """Joint pattern codes [P, N] in 0..15 of pairs (source i, target j)."""
    codes = past_bits[i_idx].astype(np.int64) * 8
    codes += past_bits[j_idx] * 4
    codes += future_bits[i_idx] * 2
    codes += future_bits[j_idx]
    return codes


def joint_counts(codes: np.ndarray) -> np.ndarray:
    """Counts [P, 16] of each joint pattern per pair, by one bincount over offset codes."""
    n_pairs = codes.shape[0]
    offsets = (np.arange(n_pairs, dtype=np.int64) * 16)[:, None]
    return np.bincount((codes + offsets).ravel(), minlength=16 * n_pairs).reshape(n_pairs, 16)


def _marginal_counts(counts: np.ndarray, subset: tuple[int, ...]) -> np.ndarray:
    """Counts [P, 2, 2, 2, 2] summed over the variables outside subset (kept as size-1 axes)."""
    joint = counts.reshape(-1, 2, 2, 2, 2)
    drop = tuple(1 + v for v in range(4) if v not in subset)
    return joint.sum(axis=drop, keepdims=True) if drop else joint


def mean_mis(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Time-averaged MIs {name: [P]} in bits: plug-in entropies of the counts."""
    n_samples = counts[0].sum()
    entropy = {}
    for subset in ENTROPY_SUBSETS:
        prob = _marginal_counts(counts, subset).reshape(counts.shape[0], -1) / n_samples
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(prob > 0, prob * np.log2(prob), 0.0)
        entropy[subset] = -terms.sum(axis=1)
    return {
        name: entropy[a] + entropy[b] - entropy[tuple(sorted(a + b))]
        for name, (a, b) in MI_TERMS.items()
    }


def local_mis(codes: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Local MIs {name: [P, N]} in bits: log2 p(a,b) / (p(a) p(b)) at each sample's pattern."""
    n_samples = codes.shape[1]
    local_h = {}
    for subset in ENTROPY_SUBSETS:
        marginal = np.broadcast_to(_marginal_counts(counts, subset), (counts.shape[0], 2, 2, 2, 2))
        per_sample = np.take_along_axis(marginal.reshape(counts.shape[0], 16), codes, axis=1)
        local_h[subset] = -np.log2(per_sample / n_samples)
    return {
        name: local_h[a] + local_h[b] - local_h[tuple(sorted(a + b))]
        for name, (a, b) in MI_TERMS.items()
    }
