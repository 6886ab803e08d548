"""Weight-noise perturbation of head sets scored on a benchmark (figure 4b).

Conditions (k = max(1, round(fraction * n_heads_total)) heads each):
- baseline: no noise;
- synergistic: the k heads with the highest syn-red score (most synergistic);
- redundant: the k heads with the lowest score (most redundant);
- random: k heads drawn uniformly without replacement, one condition per seed.
Heads with an undefined (NaN) score are ranked last for both cores, as in the ablation orders.

Every perturbed condition uses the same noise seed: a head gets the same noise draw in every
condition that includes it (see `interventions.gaussian_head_noise`), so conditions differ only
in which heads are disturbed.

Summary: drop = baseline accuracy - condition accuracy; NLL rise = condition gold NLL - baseline.
Random conditions are summarised by mean and std (ddof=1) over seeds. Verdicts: the synergistic
core's accuracy drop (resp. NLL rise) is the largest when it is strictly above both the redundant
core's and the random mean's (ties are not "largest").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from scalelens.ablation import syn_red_orders
from scalelens.evaluation import BenchmarkItems, BenchmarkScore, score_benchmark
from scalelens.interventions import gaussian_head_noise
from scalelens.models.loading import LoadedModel

log = logging.getLogger(__name__)

BASELINE, SYNERGISTIC, REDUNDANT, RANDOM = "baseline", "synergistic", "redundant", "random"
NO_SEED = -1


@dataclass(frozen=True)
class Condition:
    """A set of heads to disturb (empty for the baseline)."""

    name: str
    seed: int  # head-draw seed of a random condition, NO_SEED otherwise
    heads: np.ndarray  # int64 flat head indices

    @property
    def label(self) -> str:
        return self.name if self.seed == NO_SEED else f"{self.name}_seed{self.seed}"


@dataclass(frozen=True)
class PerturbationSummary:
    """Per-condition scores relative to the baseline, and the verdicts."""

    baseline_accuracy: float
    baseline_nll_nats: float
    accuracy: dict[str, float]  # condition label -> accuracy
    gold_nll_nats: dict[str, float]
    drop_synergistic: float
    drop_redundant: float
    drop_random_mean: float
    drop_random_std: float
    nll_rise_synergistic: float
    nll_rise_redundant: float
    nll_rise_random_mean: float
    nll_rise_random_std: float
    syn_drop_largest: bool
    syn_nll_rise_largest: bool


def core_size(n_heads_total: int, fraction: float) -> int:
    """k = max(1, round(fraction * n)) heads per condition."""
    if not 0 < fraction <= 1:
        raise ValueError(f"perturb fraction must be in (0, 1] (e.g. 0.25), got {fraction}")
    return max(1, int(round(fraction * n_heads_total)))


def build_conditions(flat_index: np.ndarray, score: np.ndarray, fraction: float,
                     random_seeds: Sequence[int]) -> tuple[Condition, ...]:
    """baseline, synergistic core, redundant core, then one random set per seed."""
    syn, red = syn_red_orders(flat_index, score)
    n = len(syn)
    k = core_size(n, fraction)
    rand = [np.sort(np.random.default_rng(int(s)).choice(n, size=k, replace=False))
            for s in random_seeds]
    return (Condition(BASELINE, NO_SEED, np.zeros(0, dtype=np.int64)),
            Condition(SYNERGISTIC, NO_SEED, np.sort(syn[:k])),
            Condition(REDUNDANT, NO_SEED, np.sort(red[:k])),
            *(Condition(RANDOM, int(s), r.astype(np.int64)) for s, r in zip(random_seeds, rand)))


def run_perturbation(lm: LoadedModel, items: BenchmarkItems, conditions: Sequence[Condition],
                     sigma_rel: float, noise_seed: int, max_new_tokens: int,
                     batch_size: int = 16, progress: bool = True) -> list[BenchmarkScore]:
    """Score the benchmark once per condition with that condition's heads under weight noise."""
    scores = []
    for cond in tqdm(conditions, desc=f"perturb {lm.key}", unit="condition",
                     disable=not progress):
        with gaussian_head_noise(lm, cond.heads, sigma_rel, noise_seed):
            score = score_benchmark(lm, items, max_new_tokens, batch_size)
        log.info("%s %s: accuracy %.3f, gold NLL %.3f nats (%.1f s)", lm.key, cond.label,
                 score.accuracy, score.gold_nll_nats, score.seconds)
        scores.append(score)
    return scores


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def summarise_perturbation(conditions: Sequence[Condition], accuracy: Sequence[float],
                           gold_nll_nats: Sequence[float]) -> PerturbationSummary:
    """Drops and NLL rises against the baseline, random mean/std, and the two verdicts."""
    names = [c.name for c in conditions]
    for need in (BASELINE, SYNERGISTIC, REDUNDANT):
        if names.count(need) != 1:
            raise ValueError(f"expected exactly one {need} condition, got {names.count(need)}")
    acc = {c.label: float(a) for c, a in zip(conditions, accuracy)}
    nll = {c.label: float(x) for c, x in zip(conditions, gold_nll_nats)}
    a0, n0 = acc[BASELINE], nll[BASELINE]
    rand = [c.label for c in conditions if c.name == RANDOM]
    d_rand, d_rand_sd = _mean_std([a0 - acc[r] for r in rand])
    r_rand, r_rand_sd = _mean_std([nll[r] - n0 for r in rand])
    d_syn, d_red = a0 - acc[SYNERGISTIC], a0 - acc[REDUNDANT]
    r_syn, r_red = nll[SYNERGISTIC] - n0, nll[REDUNDANT] - n0
    others_d = [d_red] + ([d_rand] if rand else [])
    others_r = [r_red] + ([r_rand] if rand else [])
    return PerturbationSummary(
        baseline_accuracy=a0, baseline_nll_nats=n0, accuracy=acc, gold_nll_nats=nll,
        drop_synergistic=d_syn, drop_redundant=d_red, drop_random_mean=d_rand,
        drop_random_std=d_rand_sd, nll_rise_synergistic=r_syn, nll_rise_redundant=r_red,
        nll_rise_random_mean=r_rand, nll_rise_random_std=r_rand_sd,
        syn_drop_largest=bool(all(d_syn > d for d in others_d)),
        syn_nll_rise_largest=bool(all(r_syn > r for r in others_r)),
    )
