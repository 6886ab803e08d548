"""Cumulative head ablation (figure 4a): KL of the ablated next-token distribution from intact.

Heads are zero-ablated cumulatively in an order: syn-first (syn-red score descending, most
synergistic first), red-first (ascending) and random permutations (one per seed). After every
`step_size` heads (and at the very end) the KL divergence KL(P_intact || P_ablated), in nats, of the
next-token distribution at each prompt's last real position is computed; each curve point is the
mean (and std, ddof=0) over prompts. n_removed = 0 is the intact model, KL = 0 without a pass.

Summary per model (`summarise_curves`):
- AUC of each curve: trapezoid of mean KL over fraction removed (0..1), in nats.
- random band = mean +- std (ddof=1) over the random seeds' curves, point by point.
- ratio = AUC(syn-first) / mean AUC(random) (> 1: removing synergistic heads first hurts more).
- verdict `syn_first_above_random_band`: AUC(syn-first) > AUC of the band's upper edge
  (mean + std curve). The share of interior points where syn-first lies above the upper edge is
  reported alongside (`fraction_points_above_band`), but the verdict is the AUC rule: it weighs
  the whole curve, while a pointwise majority flips on a few points of nearly equal KL.

Heads whose score is NaN (undefined PhiID) go last in both syn-first and red-first orders.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from scalelens.errors import ScalelensError
from scalelens.paths import model_slug

if TYPE_CHECKING:  # the sweep runs a model; the summaries (ablate_compare) need no torch
    import torch

    from scalelens.models.loading import LoadedModel

log = logging.getLogger(__name__)

SYN_FIRST = "syn_first"
RED_FIRST = "red_first"
RANDOM = "random"
NO_SEED = -1  # the seed column of the deterministic orders


@dataclass(frozen=True)
class AblationOrder:
    """One removal order: flat head indices, first removed first."""

    name: str  # syn_first | red_first | random
    seed: int  # NO_SEED for syn_first / red_first
    heads: np.ndarray  # int64 [n_heads_total], a permutation of 0..n-1


@dataclass(frozen=True)
class AblationSweep:
    """Per-prompt KL (nats) for every order and removal count, and the sweep's cost."""

    orders: tuple[AblationOrder, ...]
    n_removed: np.ndarray  # int64 [n_steps], starts at 0, ends at n_heads_total
    kl_nats: np.ndarray  # float64 [n_orders, n_steps, n_prompts]
    n_heads_total: int
    n_forward_passes: int  # model calls (batches), intact pass included
    n_sequences: int  # prompts run through the model, summed over calls
    seconds: float

    @property
    def fraction(self) -> np.ndarray:
        return self.n_removed / self.n_heads_total

    @property
    def passes_per_s(self) -> float:
        return self.n_forward_passes / self.seconds if self.seconds > 0 else float("nan")

    @property
    def sequences_per_s(self) -> float:
        return self.n_sequences / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class AblationSummary:
    """Areas under the curves (nats x fraction) and the verdict against the random band."""

    auc_syn_first: float
    auc_red_first: float
    auc_random_mean: float
    auc_random_std: float  # ddof=1 over seeds
    auc_random_by_seed: np.ndarray
    auc_band_upper: float  # AUC of the mean + std random curve
    auc_band_lower: float
    ratio_syn_random: float  # auc_syn_first / auc_random_mean
    ratio_red_random: float
    fraction_points_above_band: float  # interior points where syn-first > band upper edge
    syn_first_above_random_band: bool  # the verdict: auc_syn_first > auc_band_upper

    def headline(self) -> dict[str, float | bool]:
        """The numbers a stage reports per model (metrics json, MLflow, the cross-model table)."""
        return {name: getattr(self, name) for name in HEADLINE_FIELDS}


HEADLINE_FIELDS = ("auc_syn_first", "auc_red_first", "auc_random_mean", "auc_random_std",
                   "auc_band_upper", "ratio_syn_random", "ratio_red_random",
                   "fraction_points_above_band", "syn_first_above_random_band")


SEED_STEP_SIZE = 8  # seed 001: heads removed between KL points
SEED_N_PROMPTS = 60  # seed 001: prompts the KL is averaged over


def resolution_vs_seed(step_size: int, n_prompts: int) -> dict:
    """How this run's resolution compares with seed 001's (a step of 8 heads, 60 prompts)."""
    coarser = []
    if step_size > SEED_STEP_SIZE:
        coarser.append(f"a step of {step_size} heads (seed: {SEED_STEP_SIZE})")
    if n_prompts < SEED_N_PROMPTS:
        coarser.append(f"{n_prompts} prompts (seed: {SEED_N_PROMPTS})")
    return {"seed_step_size": SEED_STEP_SIZE, "seed_n_prompts": SEED_N_PROMPTS,
            "coarser_than_seed": bool(coarser),
            "resolution_note": ("coarser than seed 001: " + " and ".join(coarser)
                                + "; the seed's resolution: ablation.step_size 8, "
                                  "ablation.n_prompts 60") if coarser
            else "at or finer than seed 001's resolution (a step of 8 heads, 60 prompts)"}


def require_rankings_fit(flat_index: np.ndarray, model: str, n_heads_total: int) -> None:
    """A head-rankings csv must list every head of the model it is applied to."""
    if len(flat_index) != n_heads_total:
        raise ScalelensError(f"rankings list {len(flat_index)} heads but {model} has "
                             f"{n_heads_total}: rerun `dvc repro rank@{model_slug(model)}`")


def syn_red_orders(flat_index: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(syn-first, red-first) flat-head orders by score; ties by flat index, NaN scores last."""
    flat_index = np.asarray(flat_index, dtype=np.int64)
    score = np.asarray(score, dtype=np.float64)
    if flat_index.shape != score.shape or flat_index.ndim != 1:
        raise ValueError(f"flat_index {flat_index.shape} and score {score.shape} must be equal 1-D")
    if not np.array_equal(np.sort(flat_index), np.arange(flat_index.size)):
        raise ValueError("flat_index must be a permutation of 0..n-1 (one row per head)")
    undefined = np.isnan(score)
    filled = np.where(undefined, 0.0, score)
    # lexsort: last key is primary
    syn = flat_index[np.lexsort((flat_index, -filled, undefined))]
    red = flat_index[np.lexsort((flat_index, filled, undefined))]
    return syn, red


def random_orders(n_heads: int, seeds: Sequence[int]) -> list[np.ndarray]:
    """One uniform random permutation of 0..n_heads-1 per seed."""
    return [np.random.default_rng(int(s)).permutation(n_heads).astype(np.int64) for s in seeds]


def build_orders(flat_index: np.ndarray, score: np.ndarray,
                 random_seeds: Sequence[int]) -> tuple[AblationOrder, ...]:
    """syn-first, red-first, then one random order per seed."""
    syn, red = syn_red_orders(flat_index, score)
    rand = random_orders(len(syn), random_seeds)
    return (AblationOrder(SYN_FIRST, NO_SEED, syn), AblationOrder(RED_FIRST, NO_SEED, red),
            *(AblationOrder(RANDOM, int(s), r) for s, r in zip(random_seeds, rand)))


def removal_counts(n_heads: int, step_size: int) -> np.ndarray:
    """0, step, 2*step, ..., always ending at n_heads."""
    if step_size < 1:
        raise ValueError(f"ablation step_size must be >= 1 head, got {step_size}")
    counts = np.arange(0, n_heads, step_size, dtype=np.int64)
    return np.append(counts, n_heads)


def kl_from_logits(logits_ref: torch.Tensor, logits: torch.Tensor) -> np.ndarray:
    """KL(softmax(ref) || softmax(logits)) in nats per row, computed in float64."""
    import torch

    lp_ref = torch.log_softmax(logits_ref.double(), dim=-1)
    lp = torch.log_softmax(logits.double(), dim=-1)
    kl = (lp_ref.exp() * (lp_ref - lp)).sum(-1)
    return kl.clamp(min=0.0).cpu().numpy()


def select_prompts(categories: Sequence[str], n_prompts: int) -> np.ndarray:
    """Indices of n_prompts prompts taken round-robin over categories (0 = all), in set order."""
    n = len(categories)
    if n_prompts < 0:
        raise ValueError(f"n_prompts must be >= 0 (0 = all), got {n_prompts}")
    if n_prompts == 0 or n_prompts >= n:
        return np.arange(n)
    by_cat: dict[str, list[int]] = {}
    for i, c in enumerate(categories):
        by_cat.setdefault(c, []).append(i)
    picked: list[int] = []
    rank = 0
    while len(picked) < n_prompts:
        for idx in by_cat.values():
            if rank < len(idx) and len(picked) < n_prompts:
                picked.append(idx[rank])
        rank += 1
    return np.sort(np.array(picked, dtype=np.int64))


def run_ablation_sweep(lm: LoadedModel, texts: Sequence[str], orders: Sequence[AblationOrder],
                       step_size: int, batch_size: int = 16,
                       progress: bool = True) -> AblationSweep:
    """Cumulatively zero-ablate heads in each order; KL per prompt at every removal count."""
    from tqdm.auto import tqdm

    from scalelens.batching import encode_left_padded, last_position_logits, length_sorted_batches
    from scalelens.interventions import ablate_heads

    n_total = lm.geometry.n_heads_total
    for o in orders:
        if len(o.heads) != n_total:
            raise ValueError(f"order {o.name}/{o.seed} has {len(o.heads)} heads, the model "
                             f"{n_total}: were the rankings made for another model?")
    counts = removal_counts(n_total, step_size)
    lengths = [len(ids) for ids in lm.tokenizer(list(texts))["input_ids"]]
    batches = [(idx, encode_left_padded(lm, [texts[i] for i in idx]))
               for idx in length_sorted_batches(lengths, batch_size)]
    kl = np.zeros((len(orders), len(counts), len(texts)), dtype=np.float64)
    n_passes = n_seqs = 0
    t0 = time.perf_counter()
    intact = []
    for _, batch in batches:
        intact.append(last_position_logits(lm, batch))
        n_passes, n_seqs = n_passes + 1, n_seqs + batch["input_ids"].shape[0]
    total = len(orders) * (len(counts) - 1) * len(batches)
    bar = tqdm(total=total, desc=f"ablate {lm.key}", unit="pass", disable=not progress)
    for oi, order in enumerate(orders):
        for si, k in enumerate(counts):
            if k == 0:
                continue  # the intact model: KL = 0
            with ablate_heads(lm, order.heads[:k]):
                for (idx, batch), ref in zip(batches, intact):
                    kl[oi, si, idx] = kl_from_logits(ref, last_position_logits(lm, batch))
                    n_passes, n_seqs = n_passes + 1, n_seqs + len(idx)
                    bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    log.info("%s: %d forward passes (%d sequences) in %.1f s = %.2f passes/s", lm.key, n_passes,
             n_seqs, seconds, n_passes / max(seconds, 1e-9))
    return AblationSweep(tuple(orders), counts, kl, n_total, n_passes, n_seqs, seconds)


def curve_table(sweep: AblationSweep) -> dict[str, np.ndarray]:
    """Rows (order, seed, n_removed, fraction, kl_mean_nats, kl_std_nats), ready for a csv."""
    n_steps = len(sweep.n_removed)
    return {
        "order": np.repeat([o.name for o in sweep.orders], n_steps),
        "seed": np.repeat([o.seed for o in sweep.orders], n_steps),
        "n_removed": np.tile(sweep.n_removed, len(sweep.orders)),
        "fraction": np.tile(sweep.fraction, len(sweep.orders)),
        "kl_mean_nats": sweep.kl_nats.mean(axis=2).ravel(),
        "kl_std_nats": sweep.kl_nats.std(axis=2).ravel(),
    }


def auc(fraction: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area of values over fraction (the last axis)."""
    return float(np.trapezoid(values, fraction, axis=-1))


def random_band(kl_mean_random: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std ddof=1) over random seeds of [n_seeds, n_steps] mean-KL curves."""
    if kl_mean_random.shape[0] < 2:
        raise ValueError(f"the random band needs >= 2 random orders, got "
                         f"{kl_mean_random.shape[0]}; list more ablation.random_seeds")
    return kl_mean_random.mean(axis=0), kl_mean_random.std(axis=0, ddof=1)


def summarise_curves(fraction: np.ndarray, kl_mean: np.ndarray, names: Sequence[str]
                     ) -> AblationSummary:
    """AUCs, ratios and the band verdict from mean-KL curves [n_orders, n_steps] named per row."""
    names = np.asarray(names)
    for need in (SYN_FIRST, RED_FIRST):
        if (names == need).sum() != 1:
            raise ValueError(f"expected exactly one {need} curve, got {(names == need).sum()}")
    syn = kl_mean[names == SYN_FIRST][0]
    red = kl_mean[names == RED_FIRST][0]
    rand = kl_mean[names == RANDOM]
    mean, std = random_band(rand)
    upper, lower = mean + std, mean - std
    auc_rand = np.array([auc(fraction, r) for r in rand])
    interior = slice(1, -1) if len(fraction) > 2 else slice(None)
    above = syn[interior] > upper[interior]
    a_syn, a_up = auc(fraction, syn), auc(fraction, upper)
    a_mean = float(auc_rand.mean())
    return AblationSummary(
        auc_syn_first=a_syn, auc_red_first=auc(fraction, red), auc_random_mean=a_mean,
        auc_random_std=float(auc_rand.std(ddof=1)), auc_random_by_seed=auc_rand,
        auc_band_upper=a_up, auc_band_lower=auc(fraction, lower),
        ratio_syn_random=a_syn / a_mean if a_mean > 0 else float("nan"),
        ratio_red_random=auc(fraction, red) / a_mean if a_mean > 0 else float("nan"),
        fraction_points_above_band=float(above.mean()) if above.size else float("nan"),
        syn_first_above_random_band=bool(a_syn > a_up),
    )


def summarise_sweep(sweep: AblationSweep) -> AblationSummary:
    return summarise_curves(sweep.fraction, sweep.kl_nats.mean(axis=2),
                            [o.name for o in sweep.orders])
