"""PhiID settings (estimator, redundancy, lag) and the names of degeneracy reasons."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ESTIMATORS = ("gaussian", "discrete")
REDUNDANCIES = ("MMI", "CCS")
HEAD_REASONS = ("ok", "too_short", "nonfinite", "constant", "constant_window")
PAIR_REASONS = ("ok", "degenerate_head", "singular_covariance")
_DEFAULT_CHUNK_PAIRS = {
    ("gaussian", "MMI"): 131_072,
    ("gaussian", "CCS"): 2_048,
    ("discrete", "MMI"): 8_192,
    ("discrete", "CCS"): 2_048,
}


@dataclass(frozen=True)
class PhiIDSettings:
    """Estimator ('gaussian' | 'discrete'), redundancy ('MMI' | 'CCS') and lag tau >= 1."""

    estimator: str = "gaussian"
    redundancy: str = "MMI"
    tau: int = 1

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator {self.estimator!r} unknown; use one of {ESTIMATORS}")
        if self.redundancy not in REDUNDANCIES:
            raise ValueError(f"redundancy {self.redundancy!r} unknown; use one of {REDUNDANCIES}")
        if isinstance(self.tau, bool) or not isinstance(self.tau, int | np.integer) or self.tau < 1:
            raise ValueError(f"tau must be an integer >= 1, got {self.tau!r}")
        object.__setattr__(self, "tau", int(self.tau))

    @property
    def unit(self) -> str:
        """'nats' for the Gaussian estimator, 'bits' for the discrete one."""
        return "nats" if self.estimator == "gaussian" else "bits"

    @property
    def min_length(self) -> int:
        """Shortest usable series: tau + 3 steps."""
        return self.tau + 3

    @property
    def default_chunk_pairs(self) -> int:
        """Pairs per chunk bounding memory: large on the covariance path, small for local values."""
        return _DEFAULT_CHUNK_PAIRS[(self.estimator, self.redundancy)]
