"""Helpers shared by the sweep verdicts: JSON views, Pearson r (plain, batched, permutation p).

A verdict json must be readable by a person: plain floats (NaN written as null), lists, and
strings; no numpy scalars.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

from scalelens.io import jsonable
from scalelens.sweeps.bootstrap import SeedLike, as_generator

logger = logging.getLogger(__name__)

INCONCLUSIVE = "INCONCLUSIVE"
MIN_MODELS_CROSS_MODEL = 2


to_jsonable = jsonable  # one converter for every json the project writes


def to_json_text(obj: object) -> str:
    """Indented JSON text of a verdict or result (the stage writes it to disk)."""
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=False)


def pearson_r_batched(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis (leading axes broadcast); NaN where either is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    sxy = (xc * yc).sum(axis=-1)
    sxx = (xc * xc).sum(axis=-1)
    syy = (yc * yc).sum(axis=-1)
    x_const = np.ptp(x, axis=-1) == 0
    y_const = np.ptp(y, axis=-1) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    r = np.clip(r, -1.0, 1.0)
    return np.where(x_const | y_const, np.nan, r)


def pearson_r_p(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """scipy's Pearson r and two-sided p; (NaN, NaN) for fewer than 3 points or constant input."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.pearsonr(x, y)
    return float(res.statistic), float(res.pvalue)


@dataclasses.dataclass(frozen=True)
class PermutationTest:
    """Two-sided permutation p for Pearson r: share of relabellings with |r| >= |r_observed|."""

    r: float
    p: float
    n_permutations: int
    exact: bool

    def to_dict(self) -> dict:
        return {
            "r": to_jsonable(self.r),
            "p": to_jsonable(self.p),
            "n_permutations": self.n_permutations,
            "exact": self.exact,
            "method": (
                "all permutations of y enumerated (p includes the identity)"
                if self.exact
                else "Monte Carlo permutations of y, p = (1 + count) / (1 + n_perm)"
            ),
        }


def permutation_pvalue(
    x: Sequence[float], y: Sequence[float], n_perm: int, seed: SeedLike
) -> PermutationTest:
    """Two-sided permutation p of Pearson r(x, y); exact enumeration when n! <= n_perm."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.size
    r_obs = float(pearson_r_batched(x, y))
    if n < 3 or not math.isfinite(r_obs):
        return PermutationTest(r=r_obs, p=math.nan, n_permutations=0, exact=False)
    tol = 1e-12
    if math.factorial(n) <= n_perm:
        perms = np.array(list(itertools.permutations(range(n))))
        r_perm = pearson_r_batched(x[None, :], y[perms])
        p = float(np.mean(np.abs(r_perm) >= abs(r_obs) - tol))
        return PermutationTest(r=r_obs, p=p, n_permutations=len(perms), exact=True)
    rng = as_generator(seed)
    perms = rng.permuted(np.broadcast_to(np.arange(n), (n_perm, n)), axis=1)
    r_perm = pearson_r_batched(x[None, :], y[perms])
    count = int(np.sum(np.abs(r_perm) >= abs(r_obs) - tol))
    return PermutationTest(r=r_obs, p=(1 + count) / (1 + n_perm), n_permutations=n_perm,
                           exact=False)


def fewer_models_reason(n_models: int, needed: int = MIN_MODELS_CROSS_MODEL) -> str | None:
    """Reason string when a cross-model verdict has too few models, else None."""
    if n_models < needed:
        return (
            f"only {n_models} model(s) with a valid result; a cross-model verdict needs at "
            f"least {needed}: add models to the models list"
        )
    return None
