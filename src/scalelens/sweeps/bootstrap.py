"""Percentile bootstrap shared by the three sweep studies (prompts for SI and gain, pairs for UA).

Every statistic is written as a function of per-unit *weights* (how many times each prompt or
pair is drawn in a replicate), so one resampling scheme serves all studies and the statistics
stay vectorised over replicates. The point estimate is the same function at weight 1 for every
unit. With the same seed and the same number of units (and strata), two models get the same
resampled units, so their replicates are paired.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

SeedLike = int | np.random.Generator

DEFAULT_CHUNK_REPLICATES = 256


def as_generator(seed: SeedLike) -> np.random.Generator:
    """Return a numpy Generator for an int seed (or the Generator itself)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise ValueError(f"seed must be an int or numpy Generator, got {seed!r}")


def resample_counts(
    n_units: int,
    n_boot: int,
    seed: SeedLike,
    strata: np.ndarray | None = None,
) -> np.ndarray:
    """Draw counts [n_boot, n_units]: times each unit is drawn, with replacement.

    Without strata all units form one pool of size n_units; with strata (one integer label per
    unit) each stratum is resampled within itself, keeping its size.
    """
    if n_units < 1:
        raise ValueError(f"need at least one unit to bootstrap, got n_units={n_units}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = as_generator(seed)
    labels = np.zeros(n_units, dtype=np.int64) if strata is None else np.asarray(strata)
    if labels.shape != (n_units,):
        raise ValueError(f"strata must have shape ({n_units},), got {labels.shape}")
    counts = np.zeros((n_boot, n_units), dtype=np.int64)
    rows = np.arange(n_boot)[:, None]
    for label in _ordered_unique(labels):
        members = np.flatnonzero(labels == label)
        draws = members[rng.integers(0, members.size, size=(n_boot, members.size))]
        flat = (rows * n_units + draws).ravel()
        counts += np.bincount(flat, minlength=n_boot * n_units).reshape(n_boot, n_units)
    return counts


def _ordered_unique(labels: np.ndarray) -> list:
    """Unique labels in order of first appearance (so the draw order is data-order stable)."""
    _, first = np.unique(labels, return_index=True)
    return [labels[i] for i in np.sort(first)]


@dataclass(frozen=True)
class PercentileInterval:
    """A scalar point estimate with its percentile bootstrap interval."""

    point: float
    low: float
    high: float
    level: float
    n_boot: int
    n_valid: int

    def contains(self, value: float) -> bool:
        """True if low <= value <= high."""
        return bool(self.low <= value <= self.high)

    def straddles(self, edge: float) -> bool:
        """True if the interval holds values on both sides of (or at) edge."""
        return bool(self.low <= edge <= self.high)

    def to_dict(self) -> dict:
        """Plain-JSON view (NaN becomes None)."""
        return {
            "point": _num(self.point),
            "low": _num(self.low),
            "high": _num(self.high),
            "level": self.level,
            "n_boot": self.n_boot,
            "n_valid_replicates": self.n_valid,
        }


def _num(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Point estimate(s), replicates [n_boot, ...] and percentile bounds of one statistic."""

    point: np.ndarray
    replicates: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float
    n_valid: np.ndarray

    @property
    def n_boot(self) -> int:
        return int(self.replicates.shape[0])

    def interval(self, index: tuple | int = ()) -> PercentileInterval:
        """The scalar interval at one index of a vector-valued statistic (() for a scalar)."""
        return PercentileInterval(
            point=float(self.point[index]),
            low=float(self.low[index]),
            high=float(self.high[index]),
            level=self.level,
            n_boot=self.n_boot,
            n_valid=int(self.n_valid[index]),
        )


def percentile_bounds(
    replicates: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower/upper percentile bounds over axis 0, ignoring non-finite replicates; plus n_valid."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    reps = np.asarray(replicates, dtype=np.float64)
    finite = np.isfinite(reps)
    n_valid = finite.sum(axis=0)
    tail = 100.0 * (1.0 - level) / 2.0
    cleaned = np.where(finite, reps, np.nan)
    low = np.full(reps.shape[1:], np.nan)
    high = np.full(reps.shape[1:], np.nan)
    has = n_valid > 0
    if np.any(has):
        lo, hi = np.nanpercentile(cleaned[:, has], [tail, 100.0 - tail], axis=0)
        low[has], high[has] = lo, hi
    return low, high, n_valid


def bootstrap(
    statistic: Callable[[np.ndarray], np.ndarray],
    n_units: int,
    n_boot: int,
    seed: SeedLike,
    strata: np.ndarray | None = None,
    level: float = 0.95,
    chunk: int = DEFAULT_CHUNK_REPLICATES,
) -> BootstrapResult:
    """Percentile bootstrap of statistic(weights [b, n_units]) -> [b, ...] over resampled units.

    The point estimate is statistic(ones [1, n_units])[0]; replicates are evaluated in chunks of
    `chunk` replicates to bound memory.
    """
    counts = resample_counts(n_units, n_boot, seed, strata)
    point = np.asarray(statistic(np.ones((1, n_units))), dtype=np.float64)[0]
    parts = [
        np.asarray(statistic(counts[i : i + chunk].astype(np.float64)), dtype=np.float64)
        for i in range(0, n_boot, chunk)
    ]
    replicates = np.concatenate(parts, axis=0)
    low, high, n_valid = percentile_bounds(replicates, level)
    n_bad = int(replicates.size - np.isfinite(replicates).sum())
    if n_bad:
        logger.debug("bootstrap: %d non-finite replicate values ignored", n_bad)
    return BootstrapResult(
        point=point, replicates=replicates, low=low, high=high, level=level, n_valid=n_valid
    )
