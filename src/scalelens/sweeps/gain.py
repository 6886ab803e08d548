"""Residual-stream gain at the last token and the H25 verdict (seed 004).

Which hidden state is which (transformers, output_hidden_states=True, n_layers blocks):

* hidden_states[0] is the embedding output (the input of block 0);
* hidden_states[i], 1 <= i <= n_layers - 1, is the output of block i - 1;
* hidden_states[n_layers] (= h[-1]) is the FINAL NORM applied to the output of the last block;
  the raw output of the last block is not in the tuple.

So the seed's "corrected" gain G_seed = |h[-2]| / |h[-3]| is the gain of block n_layers - 2,
the second-to-last block, not of the last one. The gain of the last block needs the last
block's output before the final norm (a forward hook on the final norm's input):
G_last = |last block output| / |h[-2]|. G_with_ln = |h[-1]| / |h[-2]| is the seed's "wrong"
metric (it includes the final norm). All norms are L2 norms of the last token's vector.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scalelens.sweeps.bootstrap import (
    PercentileInterval,
    SeedLike,
    as_generator,
    bootstrap,
    percentile_bounds,
    resample_counts,
)
from scalelens.sweeps.verdicts import (
    ACROSS_FAMILY_LABEL,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    FamilyMember,
    Premise,
    Quantity,
    WithinFamily,
    combine_family_verdicts,
    family_count_premise,
    fewer_models_reason,
    pearson_r_batched,
    pearson_r_p,
    permutation_pvalue,
    to_jsonable,
    within_family_steps,
)

logger = logging.getLogger(__name__)

GAIN_EPS = 1e-10
RHO_THRESHOLD = 0.2
R_THRESHOLD = -0.3
H25_MIN_MODELS = 3
DAMPEN_RATE_THRESHOLD = 0.5

VALIDATED = "VALIDATED"
NOT_VALIDATED = "NOT_VALIDATED"

METRIC_DEFINITIONS = {
    "G_seed": "mean over prompts of |h[-2]| / (|h[-3]| + 1e-10): the seed's gain, which is the "
    "gain of the SECOND-TO-LAST block in transformers",
    "G_last": "mean over prompts of |last block output before the final norm| / (|h[-2]| + "
    "1e-10): the gain of the last block",
    "G_with_ln": "mean over prompts of |h[-1]| / (|h[-2]| + 1e-10): includes the final norm",
}


def rho_head_density(n_heads: int, d_model: int) -> tuple[int, float]:
    """d_head = d_model // n_heads and rho = n_heads / d_head (seed 004)."""
    if n_heads < 1 or d_model < n_heads:
        raise ValueError(f"need 1 <= n_heads <= d_model, got n_heads={n_heads}, d_model={d_model}")
    d_head = d_model // n_heads
    return d_head, n_heads / d_head


def _check_norms(hidden_norms: np.ndarray, block_norms: np.ndarray | None) -> tuple:
    h = np.asarray(hidden_norms, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] < 2:
        raise ValueError(f"hidden_norms must be [prompts, n_layers + 1 >= 2], got {h.shape}")
    if not np.all(np.isfinite(h)) or np.any(h < 0):
        raise ValueError("hidden_norms must be finite and >= 0 (L2 norms)")
    if block_norms is None:
        return h, None
    b = np.asarray(block_norms, dtype=np.float64)
    if b.shape != (h.shape[0], h.shape[1] - 1):
        raise ValueError(
            f"block_output_norms must be [prompts, n_layers] = {(h.shape[0], h.shape[1] - 1)} "
            f"to match hidden_norms {h.shape}, got {b.shape}"
        )
    if not np.all(np.isfinite(b)) or np.any(b < 0):
        raise ValueError("block_output_norms must be finite and >= 0 (L2 norms)")
    return h, b


def seed_layer_gains(hidden_norms: np.ndarray) -> np.ndarray:
    """Seed's gains between consecutive hidden states: [prompts, n_hidden - 1]."""
    h, _ = _check_norms(hidden_norms, None)
    return h[:, 1:] / (h[:, :-1] + GAIN_EPS)


def g_seed_per_prompt(hidden_norms: np.ndarray) -> np.ndarray:
    """Seed's G = layer_gains[-2] = |h[-2]| / |h[-3]| (layer_gains[-1] if only one gain exists)."""
    gains = seed_layer_gains(hidden_norms)
    return gains[:, -2] if gains.shape[1] >= 2 else gains[:, -1]


def g_with_ln_per_prompt(hidden_norms: np.ndarray) -> np.ndarray:
    """Seed's 'with LN' gain = layer_gains[-1] = |h[-1]| / |h[-2]|."""
    return seed_layer_gains(hidden_norms)[:, -1]


def g_last_per_prompt(hidden_norms: np.ndarray, block_output_norms: np.ndarray) -> np.ndarray:
    """True last-block gain: |last block output (pre final norm)| / |h[-2]|."""
    h, b = _check_norms(hidden_norms, block_output_norms)
    return b[:, -1] / (h[:, -2] + GAIN_EPS)


def block_gain_curve(hidden_norms: np.ndarray, block_output_norms: np.ndarray) -> np.ndarray:
    """Gain of every block [prompts, n_layers]: |block i output| / |block i input|.

    Block 0's input is the embedding output h[0]; block i's input is block i-1's output.
    """
    h, b = _check_norms(hidden_norms, block_output_norms)
    previous = np.concatenate([h[:, :1], b[:, :-1]], axis=1)
    return b / (previous + GAIN_EPS)


@dataclass(frozen=True)
class HiddenStateLayout:
    """Evidence (from norms) of what transformers' hidden_states hold relative to block outputs."""

    intermediate_match_block_outputs: bool
    max_rel_diff_intermediate: float
    last_hidden_is_raw_last_block: bool
    rel_diff_last: float

    def to_dict(self) -> dict:
        return to_jsonable(self.__dict__)


def hidden_state_layout(
    hidden_norms: np.ndarray, block_output_norms: np.ndarray, rtol: float = 1e-3
) -> HiddenStateLayout:
    """Check h[1..n-1] equal block outputs 0..n-2 and whether h[-1] is the raw last block output."""
    h, b = _check_norms(hidden_norms, block_output_norms)
    denom = np.maximum(np.abs(b), GAIN_EPS)
    inter = np.abs(h[:, 1:-1] - b[:, :-1]) / denom[:, :-1] if b.shape[1] > 1 else np.zeros(1)
    last = np.abs(h[:, -1] - b[:, -1]) / denom[:, -1]
    max_inter = float(inter.max()) if inter.size else 0.0
    return HiddenStateLayout(
        intermediate_match_block_outputs=bool(max_inter <= rtol),
        max_rel_diff_intermediate=max_inter,
        last_hidden_is_raw_last_block=bool(last.max() <= rtol),
        rel_diff_last=float(last.max()),
    )


@dataclass(frozen=True, eq=False)
class ResidualGainResult:
    """Gains of one model: point = mean over prompts, 95% bootstrap interval over prompts."""

    model: str
    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    rho: float
    g_seed: PercentileInterval
    g_with_ln: PercentileInterval
    g_last: PercentileInterval
    g_seed_std: float
    g_with_ln_std: float
    g_last_std: float
    g_seed_per_prompt: np.ndarray
    g_with_ln_per_prompt: np.ndarray
    g_last_per_prompt: np.ndarray
    seed_layer_gains: np.ndarray
    block_gain_curve: np.ndarray
    block_gain_curve_low: np.ndarray
    block_gain_curve_high: np.ndarray
    layout: HiddenStateLayout
    notes: tuple[str, ...]

    @property
    def is_dampening_seed(self) -> bool:
        return bool(self.g_seed.point < 1.0)

    @property
    def is_dampening_last(self) -> bool:
        return bool(self.g_last.point < 1.0)

    def to_dict(self) -> dict:
        """JSON view; per-prompt gains are included (25 numbers each) for the verdict stage."""
        return to_jsonable({
            "model": self.model, "n_layers": self.n_layers, "n_heads": self.n_heads,
            "d_model": self.d_model, "d_head": self.d_head, "rho": self.rho,
            "g_seed": self.g_seed.to_dict(), "g_seed_std": self.g_seed_std,
            "g_with_ln": self.g_with_ln.to_dict(), "g_with_ln_std": self.g_with_ln_std,
            "g_last": self.g_last.to_dict(), "g_last_std": self.g_last_std,
            "is_dampening_seed": self.is_dampening_seed,
            "is_dampening_last": self.is_dampening_last,
            "g_seed_per_prompt": self.g_seed_per_prompt,
            "g_with_ln_per_prompt": self.g_with_ln_per_prompt,
            "g_last_per_prompt": self.g_last_per_prompt,
            "seed_layer_gains": self.seed_layer_gains,
            "block_gain_curve": self.block_gain_curve,
            "block_gain_curve_low": self.block_gain_curve_low,
            "block_gain_curve_high": self.block_gain_curve_high,
            "hidden_state_layout": self.layout.to_dict(),
            "definitions": METRIC_DEFINITIONS,
            "notes": self.notes,
        })


def residual_gain_study(
    hidden_norms: np.ndarray,
    block_output_norms: np.ndarray,
    n_heads: int,
    d_model: int,
    model: str = "",
    n_boot: int = 1000,
    seed: SeedLike = 0,
    level: float = 0.95,
) -> ResidualGainResult:
    """All gains of one model from last-token norms.

    hidden_norms [prompts, n_layers + 1]: |hidden_states[i][0, -1]| for every i.
    block_output_norms [prompts, n_layers]: |output of block i at the last token|, the last one
    captured before the final norm.
    """
    h, b = _check_norms(hidden_norms, block_output_norms)
    n_prompts, n_layers = b.shape
    d_head, rho = rho_head_density(n_heads, d_model)
    g_seed = g_seed_per_prompt(h)
    g_ln = g_with_ln_per_prompt(h)
    g_last = g_last_per_prompt(h, b)
    curve = block_gain_curve(h, b)
    table = np.column_stack([g_seed, g_ln, g_last, curve])
    boot = bootstrap(lambda w: (w @ table) / w.sum(axis=1, keepdims=True), n_prompts, n_boot,
                     seed, level=level)
    layout = hidden_state_layout(h, b)
    notes = []
    if n_layers < 2:
        notes.append("only one block: the seed falls back to layer_gains[-1] (with final norm)")
    if not layout.intermediate_match_block_outputs:
        notes.append(
            f"hidden_states[1:-1] differ from the hooked block outputs (max rel diff "
            f"{layout.max_rel_diff_intermediate:.2e}): check the capture hook point")
    if layout.last_hidden_is_raw_last_block:
        notes.append("h[-1] equals the raw last block output: this model's hidden_states do not "
                     "apply the final norm, so G_with_ln == G_last")
    return ResidualGainResult(
        model=model, n_layers=n_layers, n_heads=int(n_heads), d_model=int(d_model),
        d_head=d_head, rho=rho,
        g_seed=boot.interval(0), g_with_ln=boot.interval(1), g_last=boot.interval(2),
        g_seed_std=float(np.std(g_seed)), g_with_ln_std=float(np.std(g_ln)),
        g_last_std=float(np.std(g_last)),
        g_seed_per_prompt=g_seed, g_with_ln_per_prompt=g_ln, g_last_per_prompt=g_last,
        seed_layer_gains=seed_layer_gains(h).mean(axis=0),
        block_gain_curve=curve.mean(axis=0),
        block_gain_curve_low=boot.low[3:], block_gain_curve_high=boot.high[3:],
        layout=layout, notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------
# H25 verdict
# --------------------------------------------------------------------------------------------

H25_RULE = (
    "Seed 004 (H25 Verdict cell), in this order: high_rho_dampen_rate = (models with rho >= 0.2 "
    "and G < 1.0) / max(number of models with rho >= 0.2, 1); if high_rho_dampen_rate > 0.5 or "
    "(n_models >= 3 and Pearson r(rho, G) < -0.3): VALIDATED; elif n_models < 3: INCONCLUSIVE; "
    "else NOT_VALIDATED. G is the per-model mean over prompts."
)

H25_SEED_ODDITIES = (
    ("VALIDATED is tested first, so it can trigger from the dampening rate alone with fewer "
     "than 3 models (even one high-rho model); the n < 3 INCONCLUSIVE branch is reached only "
     "when it does not. This project additionally returns INCONCLUSIVE for fewer than 2 models "
     "(seed_rule_verdict keeps the seed's answer)."),
    "With no model at rho >= 0.2 the seed's rate is 0 / max(0, 1) = 0.",
    ("low_rho_expand_rate is computed but does not enter the rule: low-rho models that dampen "
     "do not count against H25."),
    "The p-value does not enter the rule: r < -0.3 counts at any p.",
    "G == 1.0 counts as expansion (dampening is G < 1.0).",
    "A NaN r (all G or all rho equal) makes the r condition false.",
)


@dataclass(frozen=True)
class GainModelInput:
    """What the H25 verdict needs per model: rho, the per-prompt gains of one metric, family."""

    model: str
    rho: float
    gain_per_prompt: np.ndarray
    family: str = ""
    size_b: float | None = None
    family_inferred: bool = False


@dataclass(frozen=True)
class H25ModelEntry:
    """One model in the H25 table."""

    model: str
    rho: float
    group: str
    gain: PercentileInterval
    is_dampening: bool
    dampening_status: str
    family: str = ""
    size_b: float | None = None


@dataclass(frozen=True)
class H25Verdict:
    """H25 decision on one gain metric, with its numbers and interval-robustness."""

    metric: str
    metric_definition: str
    rule: str
    rho_threshold: float
    r_threshold: float
    models: tuple[H25ModelEntry, ...]
    n_models: int
    pearson_r: float
    pearson_p: float
    pearson_r_interval: PercentileInterval | None
    permutation: dict | None
    n_high_rho: int
    n_high_rho_dampening: int
    high_rho_dampen_rate: float
    n_low_rho: int
    n_low_rho_dampening: int
    low_rho_dampen_rate: float
    low_rho_expand_rate: float
    verdict: str
    seed_rule_verdict: str
    reason: str
    undecided_models: tuple[str, ...]
    possible_verdicts: tuple[str, ...]
    intervals_could_change_verdict: bool
    bootstrap_verdict_fractions: dict
    bootstrap_scheme: str
    seed_rule_oddities: tuple[str, ...]

    def to_dict(self) -> dict:
        return to_jsonable(self.__dict__)

    def descriptive_dict(self) -> dict:
        """The numbers without the rule's verdict (for the across-family view)."""
        keys = ("metric", "rho_threshold", "models", "n_models", "pearson_r", "pearson_p",
                "pearson_r_interval", "permutation", "n_high_rho", "n_high_rho_dampening",
                "high_rho_dampen_rate", "n_low_rho", "n_low_rho_dampening",
                "low_rho_dampen_rate", "low_rho_expand_rate", "undecided_models",
                "bootstrap_scheme")
        return to_jsonable({"label": ACROSS_FAMILY_LABEL,
                            "families": sorted({e.family for e in self.models}),
                            **{k: getattr(self, k) for k in keys}})


def _h25_rule(high_rate: float, n_models: int, r: float) -> str:
    if high_rate > DAMPEN_RATE_THRESHOLD or (n_models >= H25_MIN_MODELS and r < R_THRESHOLD):
        return VALIDATED
    if n_models < H25_MIN_MODELS:
        return INCONCLUSIVE
    return NOT_VALIDATED


def _dampening_status(interval: PercentileInterval) -> str:
    low = min(interval.low, interval.point)
    high = max(interval.high, interval.point)
    if high < 1.0:
        return "dampening"
    if low >= 1.0:
        return "expansion"
    return "undecided"


def _rate(flags: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Seed's rate: count of flags within mask / max(mask count, 1); flags may be [b, models]."""
    return (flags & mask).sum(axis=-1) / max(int(mask.sum()), 1)


def _gain_replicates(models: Sequence[GainModelInput], n_boot: int, seed: SeedLike) -> tuple:
    """Bootstrap per-model mean gains [n_boot, models]; same prompt draws for all if possible."""
    sizes = {m.gain_per_prompt.size for m in models}
    if len(sizes) == 1:
        counts = resample_counts(sizes.pop(), n_boot, seed).astype(np.float64)
        table = np.column_stack([m.gain_per_prompt for m in models])
        reps = counts @ table / counts.sum(axis=1, keepdims=True)
        return reps, "paired: the same resampled prompts for every model"
    rng = as_generator(seed)
    cols = []
    for m in models:
        c = resample_counts(m.gain_per_prompt.size, n_boot, rng).astype(np.float64)
        cols.append(c @ m.gain_per_prompt / c.sum(axis=1))
    return np.column_stack(cols), "independent per model (prompt counts differ)"


def gain_inputs_from_dict(doc: dict) -> tuple[GainModelInput, GainModelInput]:
    """(G_seed input, G_last input) from the per-model json (ResidualGainResult.to_dict() and
    the family and size the stage records beside it)."""
    size = doc.get("size_b")
    common = {"family": str(doc.get("family", "")), "size_b": None if size is None else
              float(size), "family_inferred": bool(doc.get("family_inferred", False))}
    return (
        GainModelInput(str(doc["model"]), float(doc["rho"]),
                       np.asarray(doc["g_seed_per_prompt"], dtype=np.float64), **common),
        GainModelInput(str(doc["model"]), float(doc["rho"]),
                       np.asarray(doc["g_last_per_prompt"], dtype=np.float64), **common),
    )


def h25_verdict(
    models: Sequence[GainModelInput],
    metric: str = "G_seed",
    n_boot: int = 1000,
    n_perm: int = 10000,
    seed: SeedLike = 0,
    level: float = 0.95,
    rho_threshold: float = RHO_THRESHOLD,
) -> H25Verdict:
    """The seed's H25 rule on per-model mean gains, with intervals, r, and a permutation p.

    rho_threshold splits high- from low-rho models (the seed's 0.2).
    """
    clean = []
    for m in models:
        g = np.asarray(m.gain_per_prompt, dtype=np.float64).ravel()
        if g.size == 0 or not np.all(np.isfinite(g)):
            raise ValueError(f"model {m.model!r}: gain_per_prompt must be non-empty and finite")
        clean.append(GainModelInput(m.model, float(m.rho), g, m.family, m.size_b,
                                    m.family_inferred))
    n = len(clean)
    rho = np.array([m.rho for m in clean])
    gains = np.array([m.gain_per_prompt.mean() for m in clean])
    if n:
        reps, scheme = _gain_replicates(clean, n_boot, seed)
        low, high, n_valid = percentile_bounds(reps, level)
    else:
        reps, scheme = np.zeros((n_boot, 0)), "none (no models)"
        low = high = n_valid = np.zeros(0)
    intervals = [PercentileInterval(float(gains[i]), float(low[i]), float(high[i]), level,
                                    n_boot, int(n_valid[i])) for i in range(n)]
    high_mask = rho >= rho_threshold
    damp = gains < 1.0
    entries = tuple(H25ModelEntry(
        model=m.model, rho=m.rho, group="high_rho" if high_mask[i] else "low_rho",
        gain=intervals[i], is_dampening=bool(damp[i]),
        dampening_status=_dampening_status(intervals[i]), family=m.family, size_b=m.size_b)
        for i, m in enumerate(clean))
    high_rate = float(_rate(damp, high_mask))
    low_mask = ~high_mask
    low_damp_rate = float(_rate(damp, low_mask))
    low_expand_rate = float(_rate(~damp, low_mask))
    r, p = pearson_r_p(rho, gains) if n >= H25_MIN_MODELS else (math.nan, math.nan)
    r_interval = None
    perm = None
    rep_r = np.full(n_boot, math.nan)
    if n >= H25_MIN_MODELS:
        rep_r = pearson_r_batched(rho[None, :], reps)
        lo, hi, nv = percentile_bounds(rep_r[:, None], level)
        r_interval = PercentileInterval(float(r), float(lo[0]), float(hi[0]), level, n_boot,
                                        int(nv[0]))
        perm = permutation_pvalue(rho, gains, n_perm, seed).to_dict()
    seed_verdict = _h25_rule(high_rate, n, r)
    # Robustness: the rule re-evaluated at the extremes the intervals allow.
    undecided = tuple(e.model for e in entries if e.dampening_status == "undecided")
    sure_damp = sum(e.dampening_status == "dampening" for e in entries if e.group == "high_rho")
    unsure = sum(e.dampening_status == "undecided" for e in entries if e.group == "high_rho")
    n_high = int(high_mask.sum())
    rates = {sure_damp / max(n_high, 1), (sure_damp + unsure) / max(n_high, 1), high_rate}
    r_values = {r}
    if r_interval is not None:
        r_values |= {r_interval.low, r_interval.high}
    possible = sorted({_h25_rule(a, n, b) for a in rates for b in r_values})
    rep_high_rate = _rate(reps < 1.0, high_mask) if n else np.zeros(n_boot)
    rep_verdicts = [_h25_rule(a, n, b) for a, b in zip(rep_high_rate, rep_r)]
    fractions = {v: rep_verdicts.count(v) / n_boot for v in (VALIDATED, NOT_VALIDATED,
                                                                INCONCLUSIVE)}
    guard = fewer_models_reason(n)
    verdict = INCONCLUSIVE if guard else seed_verdict
    if guard:
        reason = guard
    elif seed_verdict == VALIDATED and high_rate > DAMPEN_RATE_THRESHOLD:
        reason = f"high-rho dampening rate {high_rate:.2f} > 0.5"
    elif seed_verdict == VALIDATED:
        reason = f"r(rho, G) = {r:.3f} < -0.3 with {n} models"
    elif seed_verdict == INCONCLUSIVE:
        reason = (f"{n} models < 3 and high-rho dampening rate {high_rate:.2f} <= 0.5")
    else:
        reason = (f"high-rho dampening rate {high_rate:.2f} <= 0.5 and r(rho, G) = "
                  f"{r:.3f} >= -0.3 (or undefined)")
    return H25Verdict(
        metric=metric, metric_definition=METRIC_DEFINITIONS.get(metric, metric), rule=H25_RULE,
        rho_threshold=rho_threshold, r_threshold=R_THRESHOLD, models=entries, n_models=n,
        pearson_r=r, pearson_p=p, pearson_r_interval=r_interval, permutation=perm,
        n_high_rho=n_high, n_high_rho_dampening=int((damp & high_mask).sum()),
        high_rho_dampen_rate=high_rate, n_low_rho=int(low_mask.sum()),
        n_low_rho_dampening=int((damp & low_mask).sum()), low_rho_dampen_rate=low_damp_rate,
        low_rho_expand_rate=low_expand_rate, verdict=verdict, seed_rule_verdict=seed_verdict,
        reason=reason, undecided_models=undecided,
        possible_verdicts=(INCONCLUSIVE,) if guard else tuple(possible),
        intervals_could_change_verdict=(not guard) and len(possible) > 1,
        bootstrap_verdict_fractions=fractions, bootstrap_scheme=scheme,
        seed_rule_oddities=H25_SEED_ODDITIES,
    )


H25_MIN_FAMILY_MODELS = 3
H25_PREMISE_RULE = (
    "H25 (seed 004) is the dimensional-crowding hypothesis tested across the sizes of one "
    "family (the Pythia suite): how the residual gain G moves with head density rho as one "
    "family scales. Across families, rho and size are confounded with architecture and "
    "training. Premise: at least 3 models of one family in the ladder, so that the rule's "
    "r(rho, G) < -0.3 branch has its 3 points. The seed's rule is applied within each family "
    "that meets it (one verdict: theirs if they agree, else INCONCLUSIVE); the numbers over all "
    "models are descriptive only."
)


def h25_premise(members: Sequence[FamilyMember]) -> Premise:
    """Met by every family with >= 3 models in the ladder."""
    return family_count_premise(members, H25_PREMISE_RULE, H25_MIN_FAMILY_MODELS,
                                count_sizes=False)


@dataclass(frozen=True)
class H25Decision:
    """H25 on one gain metric: the rule within each family that meets the premise, and the
    numbers over all models (descriptive only)."""

    metric: str
    metric_definition: str
    rule: str
    verdict: str
    reason: str
    decided_on: tuple[str, ...]
    by_family: dict[str, H25Verdict]
    across_family: H25Verdict

    @property
    def intervals_could_change_verdict(self) -> bool:
        return any(v.intervals_could_change_verdict for v in self.by_family.values())

    @property
    def seed_rule_verdicts(self) -> dict[str, str]:
        return {f: v.seed_rule_verdict for f, v in self.by_family.items()}

    def to_dict(self) -> dict:
        return to_jsonable({
            "metric": self.metric, "metric_definition": self.metric_definition,
            "rule": self.rule, "verdict": self.verdict, "reason": self.reason,
            "decided_on": self.decided_on,
            "intervals_could_change_verdict": self.intervals_could_change_verdict,
            "by_family": {f: v.to_dict() for f, v in self.by_family.items()},
            "across_family": self.across_family.descriptive_dict(),
        })


def h25_decision(
    models: Sequence[GainModelInput],
    premise: Premise,
    metric: str = "G_seed",
    n_boot: int = 1000,
    n_perm: int = 10000,
    seed: SeedLike = 0,
    level: float = 0.95,
    rho_threshold: float = RHO_THRESHOLD,
) -> H25Decision:
    """The seed's rule within each family of premise.decided_on; NOT_APPLICABLE without one."""
    kwargs = {"n_boot": n_boot, "n_perm": n_perm, "seed": seed, "level": level,
              "rho_threshold": rho_threshold}
    across = h25_verdict(models, metric, **kwargs)
    by_family = {f: h25_verdict([m for m in models if m.family == f], metric, **kwargs)
                 for f in premise.decided_on}
    if not premise.met:
        verdict, reason = NOT_APPLICABLE, premise.reason
    else:
        verdict, reason = combine_family_verdicts(
            {f: (v.verdict, v.reason) for f, v in by_family.items()})
    return H25Decision(metric, METRIC_DEFINITIONS.get(metric, metric), H25_RULE, verdict,
                       reason, premise.decided_on, by_family, across)


@dataclass(frozen=True)
class H25Report:
    """H25 on G_seed and on G_last: the premise, each metric's decision, within-family steps."""

    premise: Premise
    g_seed: H25Decision
    g_last: H25Decision
    within_family: WithinFamily

    def to_dict(self) -> dict:
        return {"premise": self.premise.to_dict(), "g_seed": self.g_seed.to_dict(),
                "g_last": self.g_last.to_dict(), "verdict_g_seed": self.g_seed.verdict,
                "verdict_g_last": self.g_last.verdict,
                "within_family": self.within_family.to_dict()}


def _gain_quantities(decision: H25Decision, name: str) -> dict[str, dict[str, Quantity]]:
    return {e.model: {name: Quantity(e.gain.point, e.gain.low, e.gain.high)}
            for e in decision.across_family.models}


def h25_report(
    seed_inputs: Sequence[GainModelInput],
    last_inputs: Sequence[GainModelInput],
    n_boot: int = 1000,
    n_perm: int = 10000,
    seed: SeedLike = 0,
    level: float = 0.95,
    rho_threshold: float = RHO_THRESHOLD,
) -> H25Report:
    """The premise on the ladder, then H25 on G_seed and on G_last, and the within-family steps
    (rho, G_seed and G_last with their intervals before and after each step)."""
    members = [FamilyMember(m.model, m.family, m.size_b, m.family_inferred) for m in seed_inputs]
    premise = h25_premise(members)
    kwargs = {"n_boot": n_boot, "n_perm": n_perm, "seed": seed, "level": level,
              "rho_threshold": rho_threshold}
    g_seed = h25_decision(seed_inputs, premise, "G_seed", **kwargs)
    g_last = h25_decision(last_inputs, premise, "G_last", **kwargs)
    quantities = {m.model: {"rho": Quantity(m.rho)} for m in seed_inputs}
    for decision, name in ((g_seed, "G_seed"), (g_last, "G_last")):
        for model, q in _gain_quantities(decision, name).items():
            quantities[model].update(q)
    return H25Report(premise, g_seed, g_last, within_family_steps(members, quantities))
