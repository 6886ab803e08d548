"""Syn-red ranking of heads from pairwise PhiID, and its profile over layer depth (figure 2c).

Per head: synergy = mean sts over partners, redundancy = mean rtr over partners (diagonal and
NaN pairs excluded, partners counted). Ranks run 1..m over the m heads with both means defined,
ascending (rank m = most synergistic / most redundant), ties get the average of their ranks.
syn-red score = synergy rank - redundancy rank, in [-(m-1), m-1]; normalised = score / (m-1),
in [-1, 1], positive for heads more synergistic than redundant. Flat head index =
layer * n_heads_per_layer + head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HeadRanking:
    """Per-head synergy/redundancy means, their ranks and the syn-red score ([n] arrays each)."""

    n_layers: int
    n_heads_per_layer: int
    layer: np.ndarray
    head: np.ndarray
    synergy: np.ndarray
    redundancy: np.ndarray
    n_partners_synergy: np.ndarray
    n_partners_redundancy: np.ndarray
    synergy_rank: np.ndarray
    redundancy_rank: np.ndarray
    syn_red_score: np.ndarray
    syn_red_score_normalised: np.ndarray

    @property
    def flat_index(self) -> np.ndarray:
        """layer * n_heads_per_layer + head."""
        return self.layer * self.n_heads_per_layer + self.head

    def to_columns(self) -> dict[str, np.ndarray]:
        """Column name -> array, ready for pandas.DataFrame(...) or a csv writer."""
        return {
            "layer": self.layer,
            "head": self.head,
            "flat_index": self.flat_index,
            "synergy": self.synergy,
            "redundancy": self.redundancy,
            "n_partners_synergy": self.n_partners_synergy,
            "n_partners_redundancy": self.n_partners_redundancy,
            "synergy_rank": self.synergy_rank,
            "redundancy_rank": self.redundancy_rank,
            "syn_red_score": self.syn_red_score,
            "syn_red_score_normalised": self.syn_red_score_normalised,
        }

    def score_grid(self, normalised: bool = True) -> np.ndarray:
        """Syn-red scores as a [n_layers, n_heads_per_layer] grid (figure 2b)."""
        score = self.syn_red_score_normalised if normalised else self.syn_red_score
        return score.reshape(self.n_layers, self.n_heads_per_layer)


@dataclass(frozen=True)
class LayerProfile:
    """Mean normalised syn-red score per layer against normalised depth layer / (n_layers - 1).

    Thirds: the first and last round(n_layers / 3) layers, the middle the rest; each third's mean
    is the mean of its layer means. middle_margin = middle - max(first, last) (> 0 iff
    middle_more_synergistic).
    """

    layers: np.ndarray
    depth: np.ndarray
    mean_score: np.ndarray
    n_heads_scored: np.ndarray
    peak_layer: int
    peak_depth: float
    first_third_mean: float
    middle_third_mean: float
    last_third_mean: float
    layers_per_third: tuple[int, int, int]
    middle_more_synergistic: bool
    middle_margin: float


def mean_over_partners(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row means of a pair matrix ignoring the diagonal and NaN entries, and the counts used."""
    values = np.array(matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"pair matrix must be square [n, n], got shape {values.shape}")
    np.fill_diagonal(values, np.nan)
    finite = np.isfinite(values)
    counts = finite.sum(axis=1)
    sums = np.where(finite, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), counts


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ascending ranks 1..m of the finite values (ties averaged); NaN where the value is NaN."""
    # scipy.stats costs about 1 s at import: only the stages that call this pay it
    from scipy.stats import rankdata

    ranks = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    ranks[finite] = rankdata(values[finite], method="average")
    return ranks


def rank_heads(
    sts: np.ndarray, rtr: np.ndarray, n_layers: int, n_heads_per_layer: int
) -> HeadRanking:
    """Syn-red ranking of every head from pairwise synergy (sts) and redundancy (rtr) matrices."""
    n_heads = n_layers * n_heads_per_layer
    if np.shape(sts) != (n_heads, n_heads) or np.shape(rtr) != (n_heads, n_heads):
        raise ValueError(
            f"sts/rtr must be [{n_heads}, {n_heads}] for {n_layers} layers x {n_heads_per_layer} "
            f"heads, got {np.shape(sts)} and {np.shape(rtr)}"
        )
    synergy, n_syn = mean_over_partners(sts)
    redundancy, n_red = mean_over_partners(rtr)
    ranked = np.isfinite(synergy) & np.isfinite(redundancy)
    syn_rank = average_ranks(np.where(ranked, synergy, np.nan))
    red_rank = average_ranks(np.where(ranked, redundancy, np.nan))
    score = syn_rank - red_rank
    n_ranked = int(ranked.sum())
    normalised = score / (n_ranked - 1) if n_ranked > 1 else np.full(n_heads, np.nan)
    flat = np.arange(n_heads)
    return HeadRanking(
        n_layers=n_layers,
        n_heads_per_layer=n_heads_per_layer,
        layer=flat // n_heads_per_layer,
        head=flat % n_heads_per_layer,
        synergy=synergy,
        redundancy=redundancy,
        n_partners_synergy=n_syn,
        n_partners_redundancy=n_red,
        synergy_rank=syn_rank,
        redundancy_rank=red_rank,
        syn_red_score=score,
        syn_red_score_normalised=normalised,
    )


def third_sizes(n_layers: int) -> tuple[int, int, int]:
    """Layers in the first, middle and last third: round(L/3), the rest, round(L/3)."""
    outer = round(n_layers / 3)
    return outer, n_layers - 2 * outer, outer


def layer_profile_from_scores(
    scores: np.ndarray, n_layers: int, n_heads_per_layer: int
) -> LayerProfile:
    """Layer profile from per-head normalised scores [n_layers * n_heads_per_layer], NaN ignored."""
    if n_layers < 3:
        raise ValueError(f"a layer profile with thirds needs >= 3 layers, got {n_layers}")
    grid = np.asarray(scores, dtype=np.float64).reshape(n_layers, n_heads_per_layer)
    scored = np.isfinite(grid)
    n_scored = scored.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_scored > 0, np.where(scored, grid, 0.0).sum(axis=1) / n_scored, np.nan)
    if not np.isfinite(mean).any():
        raise ValueError("no layer has a finite syn-red score; check the PhiID degeneracy report")
    layers = np.arange(n_layers)
    peak = int(np.nanargmax(mean))
    first, middle, last = third_sizes(n_layers)
    thirds = (mean[:first], mean[first : first + middle], mean[first + middle :])
    first_mean, middle_mean, last_mean = (_finite_mean(t) for t in thirds)
    margin = middle_mean - max(first_mean, last_mean)
    return LayerProfile(
        layers=layers,
        depth=layers / (n_layers - 1),
        mean_score=mean,
        n_heads_scored=n_scored,
        peak_layer=peak,
        peak_depth=float(peak / (n_layers - 1)),
        first_third_mean=first_mean,
        middle_third_mean=middle_mean,
        last_third_mean=last_mean,
        layers_per_third=(first, middle, last),
        middle_more_synergistic=bool(margin > 0),
        middle_margin=float(margin),
    )


def _finite_mean(values: np.ndarray) -> float:
    """Mean of the finite values, NaN if there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def layer_profile(ranking: HeadRanking) -> LayerProfile:
    """Mean normalised syn-red score per layer, its peak depth and the middle-third comparison."""
    return layer_profile_from_scores(
        ranking.syn_red_score_normalised, ranking.n_layers, ranking.n_heads_per_layer
    )


# -- the head-rankings csv (stage rank writes it; ablate, perturb and graph_cores read it) --------

RANKINGS_REQUIRED = ("layer", "head", "flat_index", "syn_red_score")


def rankings_frame(ranking: HeadRanking, unit: str):
    """The head-rankings csv as a DataFrame: one row per head (flat order); synergy/redundancy are
    means over partners in `unit`."""
    import pandas as pd

    frame = pd.DataFrame(ranking.to_columns())
    frame["unit"] = unit
    return frame


def read_rankings(path):
    """The head-rankings csv written from `rankings_frame`, its columns checked (one line naming
    the file and the missing columns otherwise)."""
    import pandas as pd

    from scalelens.errors import ScalelensError

    frame = pd.read_csv(path)
    missing = set(RANKINGS_REQUIRED) - set(frame.columns)
    if missing:
        raise ScalelensError(f"{path}: no column {', '.join(sorted(missing))} (is it a "
                             f"head-rankings csv from stage rank?)")
    return frame


def read_head_scores(path) -> tuple[np.ndarray, np.ndarray]:
    """(flat_index, syn_red_score) from a head-rankings csv, one row per head."""
    frame = read_rankings(path)
    return (frame["flat_index"].to_numpy(np.int64),
            frame["syn_red_score"].to_numpy(np.float64))


def read_head_grid(path) -> tuple[int, int]:
    """(n_layers, n_heads per layer) of the model a head-rankings csv was made for."""
    frame = read_rankings(path)
    return int(frame["layer"].max()) + 1, int(frame["head"].max()) + 1
