"""Z-scores of a census against a null ensemble, significance profiles and enrichment calls.

Z_c = (observed_c - mean_null_c) / std_null_c with the sample std (ddof=1) of the null counts.
Where every null sample has the same count for class c (zero variance) Z_c is set to 0 and
``zero_variance[c]`` is True, whatever the observed count.

SP = Z / ||Z||_2 over the 13 weakly connected classes (021D ... 300); the entries of 003, 012 and
102 are 0 in the 16-vector. If all connected Z are 0, SP is all zeros. Enriched / anti-enriched
classes are connected classes with Z >= threshold / Z <= -threshold (default 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalelens.motifs.census import CONNECTED_MASK, TRIAD_LABELS

Z_THRESHOLD = 2.0


@dataclass(frozen=True, eq=False)
class ZScores:
    """Observed census against a null ensemble, all arrays (16,) in TRIAD_LABELS order."""

    observed: np.ndarray
    null_mean: np.ndarray
    null_std: np.ndarray
    z: np.ndarray
    zero_variance: np.ndarray


def z_scores(observed: np.ndarray, null_counts: np.ndarray) -> ZScores:
    """Per-class Z of observed (16,) against null_counts (n_random, 16); needs n_random >= 2."""
    observed = np.asarray(observed, dtype=np.float64)
    null_counts = np.asarray(null_counts, dtype=np.float64)
    if null_counts.ndim != 2 or null_counts.shape[1] != observed.shape[0]:
        raise ValueError(
            f"null_counts must be (n_random, {observed.shape[0]}), got {null_counts.shape}"
        )
    if null_counts.shape[0] < 2:
        raise ValueError(f"need at least 2 null samples for a std, got {null_counts.shape[0]}")
    mean = null_counts.mean(axis=0)
    zero_var = np.all(null_counts == null_counts[0], axis=0)
    std = np.where(zero_var, 0.0, null_counts.std(axis=0, ddof=1))
    z = np.zeros_like(mean)
    np.divide(observed - mean, std, out=z, where=~zero_var)
    return ZScores(
        observed=observed.astype(np.int64),
        null_mean=mean,
        null_std=std,
        z=z,
        zero_variance=zero_var,
    )


def significance_profile(z: np.ndarray, mask: np.ndarray = CONNECTED_MASK) -> np.ndarray:
    """Z normalised to unit L2 norm over the masked classes; 0 outside the mask (last axis)."""
    z = np.asarray(z, dtype=np.float64)
    masked = np.where(mask, z, 0.0)
    norm = np.linalg.norm(masked, axis=-1, keepdims=True)
    return np.divide(masked, norm, out=np.zeros_like(masked), where=norm > 0)


def enrichment(
    z: np.ndarray, threshold: float = Z_THRESHOLD, mask: np.ndarray = CONNECTED_MASK
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(enriched, anti_enriched) MAN labels: masked classes with Z >= t and Z <= -t."""
    if threshold <= 0:
        raise ValueError(f"enrichment threshold must be > 0, got {threshold}")
    z = np.asarray(z)
    up = tuple(lab for lab, zi, m in zip(TRIAD_LABELS, z, mask) if m and zi >= threshold)
    down = tuple(lab for lab, zi, m in zip(TRIAD_LABELS, z, mask) if m and zi <= -threshold)
    return up, down
