"""Weight-noise perturbation of head sets scored on a benchmark (figure 4b), with replicates and
verdicts decided only where they are informative.

Conditions (k = max(1, round(fraction * n_heads_total)) heads each):
- baseline: no noise (one run: nothing varies);
- synergistic: the k heads with the highest syn-red score, one replicate per noise seed;
- redundant: the k heads with the lowest score, one replicate per noise seed;
- random: one replicate per random head seed, k heads drawn uniformly without replacement, under
  noise seed noise_seeds[i % len(noise_seeds)] for the i-th head seed (head set and noise vary).
Heads with an undefined (NaN) score are ranked last for both cores, as in the ablation orders.
A head gets the same noise draw under the same noise seed in every condition that contains it
(see `interventions.gaussian_head_noise`).

Per replicate: drop = baseline accuracy - accuracy, NLL rise = gold NLL - baseline gold NLL.
Per condition: mean and std (ddof=1; 0 for one replicate) of accuracy, gold NLL, drop, rise.

Verdicts (each SYN_LARGEST, NOT_SYN_LARGEST or UNINFORMATIVE, with a one-line reason):
- rule, on an effect (drop or NLL rise): SYN_LARGEST when the synergistic band lies wholly above
  both the redundant band and the random band, mean_syn - std_syn > mean_other + std_other for
  each; otherwise NOT_SYN_LARGEST.
- premise of both: every perturbed condition has >= 2 replicates (a spread to compare against).
- premise of the accuracy verdict: >= min_problems problems (one problem is at most 1/min_problems
  of accuracy) and floor <= baseline accuracy <= ceiling (below the floor there is almost nothing
  for noise to remove; above the ceiling the task is saturated).
- `verdict`: the accuracy verdict where it is informative, else the gold-NLL verdict
  (`verdict_by` names which; "none" when both are UNINFORMATIVE).
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
KINDS = (BASELINE, SYNERGISTIC, REDUNDANT, RANDOM)
NO_SEED = -1
SYN_LARGEST, NOT_SYN_LARGEST, UNINFORMATIVE = "SYN_LARGEST", "NOT_SYN_LARGEST", "UNINFORMATIVE"
VERDICT_RULE = ("SYN_LARGEST when mean - std (ddof=1) of the synergistic core's effect exceeds "
                "mean + std of both the redundant core's and the random sets' effect")
VARIES = {BASELINE: "nothing (no noise)", SYNERGISTIC: "noise seed", REDUNDANT: "noise seed",
          RANDOM: "head set and noise seed"}


@dataclass(frozen=True)
class Condition:
    """A set of heads to disturb under one noise seed (no heads, NO_SEED for the baseline)."""

    name: str  # baseline | synergistic | redundant | random
    head_seed: int  # head-draw seed of a random condition, NO_SEED otherwise
    noise_seed: int  # NO_SEED for the baseline
    heads: np.ndarray  # int64 flat head indices

    @property
    def label(self) -> str:
        if self.name == BASELINE:
            return BASELINE
        head = f"_seed{self.head_seed}" if self.head_seed != NO_SEED else ""
        return f"{self.name}{head}_noise{self.noise_seed}"


def core_size(n_heads_total: int, fraction: float) -> int:
    """k = max(1, round(fraction * n)) heads per condition."""
    if not 0 < fraction <= 1:
        raise ValueError(f"perturb fraction must be in (0, 1] (e.g. 0.25), got {fraction}")
    return max(1, int(round(fraction * n_heads_total)))


def build_conditions(flat_index: np.ndarray, score: np.ndarray, fraction: float,
                     random_seeds: Sequence[int], noise_seeds: Sequence[int]
                     ) -> tuple[Condition, ...]:
    """baseline; synergistic and redundant cores once per noise seed; one random set per head
    seed, the i-th under noise seed noise_seeds[i % len(noise_seeds)]."""
    if len(noise_seeds) == 0:
        raise ValueError("perturb needs at least one noise seed")
    syn, red = syn_red_orders(flat_index, score)
    n = len(syn)
    k = core_size(n, fraction)
    syn_heads, red_heads = np.sort(syn[:k]).astype(np.int64), np.sort(red[:k]).astype(np.int64)
    rand = [np.sort(np.random.default_rng(int(s)).choice(n, size=k, replace=False))
            for s in random_seeds]
    return (Condition(BASELINE, NO_SEED, NO_SEED, np.zeros(0, dtype=np.int64)),
            *(Condition(SYNERGISTIC, NO_SEED, int(z), syn_heads) for z in noise_seeds),
            *(Condition(REDUNDANT, NO_SEED, int(z), red_heads) for z in noise_seeds),
            *(Condition(RANDOM, int(s), int(noise_seeds[i % len(noise_seeds)]),
                        r.astype(np.int64)) for i, (s, r) in enumerate(zip(random_seeds, rand))))


def run_perturbation(lm: LoadedModel, items: BenchmarkItems, conditions: Sequence[Condition],
                     sigma_rel: float, max_new_tokens: int, batch_size: int = 16,
                     progress: bool = True) -> list[BenchmarkScore]:
    """Score the benchmark once per condition, its heads under its noise seed's weight noise."""
    scores = []
    for cond in tqdm(conditions, desc=f"perturb {lm.key}", unit="condition",
                     disable=not progress):
        with gaussian_head_noise(lm, cond.heads, sigma_rel, max(cond.noise_seed, 0)):
            score = score_benchmark(lm, items, max_new_tokens, batch_size)
        log.info("%s %s: accuracy %.3f, gold NLL %.3f nats (%.1f s)", lm.key, cond.label,
                 score.accuracy, score.gold_nll_nats, score.seconds)
        scores.append(score)
    return scores


def count_forward_tokens(n_conditions: int, prompt_tokens: Sequence[int],
                         answer_tokens: Sequence[int], max_new_tokens: int,
                         shared_prefix: int = 0) -> int:
    """Upper bound of the tokens the model processes in a perturb run
    (`evaluation.shared_prefill_scores`): per condition, the shared prefix once, then per problem
    its own prompt tokens, the teacher-forced answer and at most max_new_tokens - 1 greedy steps
    of one token (padding not counted)."""
    per_condition = shared_prefix + sum(int(p) - shared_prefix + int(a) + max_new_tokens - 1
                                        for p, a in zip(prompt_tokens, answer_tokens))
    return n_conditions * per_condition


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


@dataclass(frozen=True)
class ConditionStats:
    """One condition's replicates: means and spreads (std ddof=1; 0 for a single replicate)."""

    name: str
    n_replicates: int
    varies: str
    accuracy_mean: float
    accuracy_std: float
    gold_nll_mean: float
    gold_nll_std: float
    drop_mean: float  # baseline accuracy - accuracy
    drop_std: float
    nll_rise_mean: float  # gold NLL - baseline gold NLL
    nll_rise_std: float


@dataclass(frozen=True)
class Verdict:
    """Is the synergistic core's effect the largest, by the band rule, where informative?"""

    metric: str  # accuracy (effect: drop) | gold_nll (effect: NLL rise)
    verdict: str  # SYN_LARGEST | NOT_SYN_LARGEST | UNINFORMATIVE
    reason: str  # one line

    @property
    def informative(self) -> bool:
        return self.verdict != UNINFORMATIVE


@dataclass(frozen=True)
class PerturbationSummary:
    """Per-condition scores, means and spreads, and the two verdicts with their premises."""

    n_problems: int
    baseline_accuracy: float
    baseline_nll_nats: float
    accuracy: dict[str, float]  # condition label -> accuracy
    gold_nll_nats: dict[str, float]  # condition label -> mean gold NLL
    stats: dict[str, ConditionStats]  # synergistic | redundant | random
    accuracy_floor: float
    accuracy_ceiling: float
    min_problems: int
    accuracy_verdict: Verdict
    nll_verdict: Verdict

    @property
    def verdict(self) -> Verdict:
        """The accuracy verdict where informative, else the gold-NLL verdict."""
        return self.accuracy_verdict if self.accuracy_verdict.informative else self.nll_verdict

    @property
    def verdict_by(self) -> str:
        v = self.verdict
        return v.metric if v.informative else "none"

    def tags(self) -> dict[str, str]:
        """The verdicts and their reasons, as MLflow tags."""
        return {"verdict": self.verdict.verdict, "verdict_by": self.verdict_by,
                "accuracy_verdict": self.accuracy_verdict.verdict,
                "accuracy_verdict_reason": self.accuracy_verdict.reason,
                "nll_verdict": self.nll_verdict.verdict,
                "nll_verdict_reason": self.nll_verdict.reason, "verdict_rule": VERDICT_RULE}

    def to_dict(self) -> dict[str, object]:
        """Flat metrics: per label, per condition mean/std, premises and verdicts."""
        out: dict[str, object] = {
            "n_problems": self.n_problems, "baseline_accuracy": self.baseline_accuracy,
            "baseline_gold_nll_nats": self.baseline_nll_nats,
            "accuracy_floor": self.accuracy_floor, "accuracy_ceiling": self.accuracy_ceiling,
            "min_problems": self.min_problems,
            **{f"accuracy.{k}": v for k, v in self.accuracy.items()},
            **{f"gold_nll_nats.{k}": v for k, v in self.gold_nll_nats.items()}}
        for name, s in self.stats.items():
            out.update({f"{name}.n_replicates": s.n_replicates, f"{name}.varies": s.varies,
                        f"{name}.accuracy_mean": s.accuracy_mean,
                        f"{name}.accuracy_std": s.accuracy_std,
                        f"{name}.gold_nll_mean": s.gold_nll_mean,
                        f"{name}.gold_nll_std": s.gold_nll_std,
                        f"{name}.drop_mean": s.drop_mean, f"{name}.drop_std": s.drop_std,
                        f"{name}.nll_rise_mean": s.nll_rise_mean,
                        f"{name}.nll_rise_std": s.nll_rise_std})
        out.update(self.tags())
        return out


def _band_verdict(metric: str, effect: str, stats: dict[str, ConditionStats],
                  premise_failed: str | None) -> Verdict:
    """The band rule on the effect `drop` or `nll_rise` of each condition's replicates."""
    if premise_failed is not None:
        return Verdict(metric, UNINFORMATIVE, premise_failed)
    few = [n for n, s in stats.items() if s.n_replicates < 2]
    if few:
        return Verdict(metric, UNINFORMATIVE, f"{', '.join(few)}: fewer than 2 replicates, no "
                       f"spread to decide on (add noise_seeds / random_seeds)")
    m = {n: getattr(s, f"{effect}_mean") for n, s in stats.items()}
    sd = {n: getattr(s, f"{effect}_std") for n, s in stats.items()}
    low = m[SYNERGISTIC] - sd[SYNERGISTIC]
    above = [n for n in (REDUNDANT, RANDOM) if low > m[n] + sd[n]]
    what = "accuracy drop" if effect == "drop" else "gold NLL rise (nats)"
    numbers = ", ".join(f"{n} {m[n]:.4g} ± {sd[n]:.2g}" for n in (SYNERGISTIC, REDUNDANT, RANDOM))
    if len(above) == 2:
        return Verdict(metric, SYN_LARGEST, f"{what}: {numbers}; synergistic band above both")
    below = [n for n in (REDUNDANT, RANDOM) if n not in above]
    return Verdict(metric, NOT_SYN_LARGEST,
                   f"{what}: {numbers}; synergistic band not above {' and '.join(below)}")


def accuracy_premise(n_problems: int, baseline_accuracy: float, floor: float, ceiling: float,
                     min_problems: int) -> str | None:
    """Why the accuracy verdict would be decided on noise, or None when it may be decided."""
    if n_problems < min_problems:
        return (f"{n_problems} problems: one problem is {100 / n_problems:.3g}% of accuracy; "
                f"need >= {min_problems} (perturb.min_problems)")
    if baseline_accuracy < floor:
        return (f"baseline accuracy {baseline_accuracy:.3g} below the floor {floor:g}: too few "
                f"correct answers for noise to remove")
    if baseline_accuracy > ceiling:
        return (f"baseline accuracy {baseline_accuracy:.3g} above the ceiling {ceiling:g}: the "
                f"task is saturated")
    return None


def summarise_perturbation(conditions: Sequence[Condition], accuracy: Sequence[float],
                           gold_nll_nats: Sequence[float], n_problems: int,
                           floor: float = 0.2, ceiling: float = 0.95, min_problems: int = 50
                           ) -> PerturbationSummary:
    """Means and spreads per condition against the baseline, and the two verdicts."""
    names = [c.name for c in conditions]
    if names.count(BASELINE) != 1:
        raise ValueError(f"expected exactly one baseline condition, got {names.count(BASELINE)}")
    for need in (SYNERGISTIC, REDUNDANT, RANDOM):
        if need not in names:
            raise ValueError(f"expected at least one {need} condition")
    acc = {c.label: float(a) for c, a in zip(conditions, accuracy)}
    nll = {c.label: float(x) for c, x in zip(conditions, gold_nll_nats)}
    if len(acc) != len(conditions):
        raise ValueError("two conditions share a label")
    a0, n0 = acc[BASELINE], nll[BASELINE]
    stats = {}
    for kind in (SYNERGISTIC, REDUNDANT, RANDOM):
        labels = [c.label for c in conditions if c.name == kind]
        am, asd = _mean_std([acc[x] for x in labels])
        nm, nsd = _mean_std([nll[x] for x in labels])
        dm, dsd = _mean_std([a0 - acc[x] for x in labels])
        rm, rsd = _mean_std([nll[x] - n0 for x in labels])
        stats[kind] = ConditionStats(kind, len(labels), VARIES[kind], am, asd, nm, nsd, dm, dsd,
                                     rm, rsd)
    premise = accuracy_premise(n_problems, a0, floor, ceiling, min_problems)
    return PerturbationSummary(
        n_problems=n_problems, baseline_accuracy=a0, baseline_nll_nats=n0, accuracy=acc,
        gold_nll_nats=nll, stats=stats, accuracy_floor=floor, accuracy_ceiling=ceiling,
        min_problems=min_problems,
        accuracy_verdict=_band_verdict("accuracy", "drop", stats, premise),
        nll_verdict=_band_verdict("gold_nll", "nll_rise", stats, None))
