"""Specialization Index (SI) of attention heads and the B11 heritage-vs-size verdict (seed 002).

Per head, the normalised entropy of the attention distribution averaged over query positions,
averaged over prompts. Two SIs are computed from it:

* SI_seed: the seed's definition, kept exactly because B11 was decided on it. It correlates
  *head slots across layers*: row h of entropies.T is head h of every layer, a profile over
  layers. Relabelling the heads of one layer changes it although the model does not change.
* SI_heads: a relabelling-invariant variant. Units are the heads (layer, head); each head's
  profile is its entropy over prompts; SI = 1 - mean pairwise correlation over all head pairs.

In both, a profile that is exactly constant has no correlation; it is excluded and counted
(the seed's np.corrcoef gives NaN for it and np.nanmean skips it, which is the same thing).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from scalelens.errors import ScalelensError
from scalelens.sweeps.bootstrap import PercentileInterval, SeedLike, bootstrap
from scalelens.sweeps.verdicts import (
    ACROSS_FAMILY_LABEL,
    INCONCLUSIVE,
    MIN_MODELS_CROSS_MODEL,
    NOT_APPLICABLE,
    FamilyMember,
    Premise,
    Quantity,
    WithinFamily,
    fewer_models_reason,
    pearson_r_p,
    to_jsonable,
    within_family_steps,
)

logger = logging.getLogger(__name__)

RENORM_EPS = 1e-10
SEEDS = (42, 123, 456)
SI_SANITY_THRESHOLD = 0.05
MIN_VALID_LEN_EXCLUSIVE = 5
HEAD_IDENTITY_ATOL = 1e-4
DTYPE_ORDER = ("bf16", "fp16", "fp32")
B11_TARGET = 0.33
B11_TOLERANCE = 0.05
B11_MIN_MODELS = 4
DETERMINISTIC_SEED_NOTE = (
    "deterministic forward pass: seed std is 0 by construction; use the bootstrap interval"
)

HERITAGE_CONFIRMED = "HERITAGE_CONFIRMED"
SIZE_CONFOUND_DETECTED = "SIZE_CONFOUND_DETECTED"


# --------------------------------------------------------------------------------------------
# Entropy per head
# --------------------------------------------------------------------------------------------


def normalized_attention_entropy(
    attention: np.ndarray, valid_len: int | None = None
) -> np.ndarray:
    """Normalised entropy [layers, heads] of one prompt's attention [layers, heads, q, k].

    Seed recipe: truncate to valid_len, average the rows over query positions, renormalise
    (sum + 1e-10), drop zeros, entropy in bits over log2(number of nonzero entries); 0 when
    at most one entry is nonzero.
    """
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim != 4:
        raise ValueError(f"attention must be [layers, heads, q, k], got shape {a.shape}")
    v = int(a.shape[-1]) if valid_len is None else int(valid_len)
    if not 1 <= v <= min(a.shape[-2:]):
        raise ValueError(f"valid_len={valid_len} must lie in [1, {min(a.shape[-2:])}]")
    mean_row = a[:, :, :v, :v].mean(axis=2)
    p = mean_row / (mean_row.sum(axis=-1, keepdims=True) + RENORM_EPS)
    kept = p > 0
    count = kept.sum(axis=-1)
    kept_p = np.where(kept, p, 0.0)
    # scipy.stats.entropy (used by the seed) renormalises the kept entries to sum 1.
    total = kept_p.sum(axis=-1, keepdims=True)
    q = kept_p / np.where(total > 0, total, 1.0)
    plogp = np.where(kept, q * np.log2(np.where(kept, q, 1.0)), 0.0)
    h_bits = -plogp.sum(axis=-1)
    h_max = np.log2(np.maximum(count, 2))
    return np.where(count > 1, h_bits / h_max, 0.0)


def prompt_head_entropies(
    attentions: Sequence[np.ndarray], valid_lengths: Sequence[int] | None = None
) -> np.ndarray:
    """Stack normalised entropies of every prompt: [prompts, layers, heads]."""
    if len(attentions) == 0:
        raise ValueError("need at least one prompt's attention")
    if valid_lengths is not None and len(valid_lengths) != len(attentions):
        raise ValueError(
            f"{len(valid_lengths)} valid_lengths for {len(attentions)} attention arrays"
        )
    out = []
    for i, att in enumerate(attentions):
        v = None if valid_lengths is None else valid_lengths[i]
        ent = normalized_attention_entropy(att, v)
        if out and ent.shape != out[0].shape:
            raise ValueError(
                f"prompt {i}: attention has {ent.shape} (layers, heads), "
                f"prompt 0 had {out[0].shape}"
            )
        out.append(ent)
    return np.stack(out)


# --------------------------------------------------------------------------------------------
# Mean pairwise correlation (vectorised, optional count weights)
# --------------------------------------------------------------------------------------------


def mean_pairwise_correlation(
    profiles: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean Pearson r over all pairs of units, and the number of non-constant units.

    profiles [..., units, n]; weights [..., n] (bootstrap counts) or None. Exactly constant
    profiles are excluded; the result is NaN with fewer than 2 usable units. Uses
    sum_{i<j} r_ij = (|sum_i z_i|^2 - sum_i |z_i|^2) / 2 with unit-norm centred z_i.
    """
    x = np.asarray(profiles, dtype=np.float64)
    w = np.ones(x.shape[-1]) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w[..., None, :]
    used = w > 0
    const = np.where(used, x, np.inf).min(axis=-1) == np.where(used, x, -np.inf).max(axis=-1)
    mu = (w * x).sum(axis=-1, keepdims=True) / w.sum(axis=-1, keepdims=True)
    xc = x - mu
    ss = (w * xc * xc).sum(axis=-1)
    scale = np.where(const | (ss <= 0), 0.0, 1.0 / np.sqrt(np.where(ss > 0, ss, 1.0)))
    z = np.sqrt(w) * xc * scale[..., None]
    s = z.sum(axis=-2)
    pair_sum = 0.5 * ((s * s).sum(axis=-1) - (z * z).sum(axis=(-2, -1)))
    n_valid = (scale > 0).sum(axis=-1)
    n_pairs = n_valid * (n_valid - 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_valid >= 2, pair_sum / np.where(n_pairs > 0, n_pairs, 1.0), np.nan)
    return mean, n_valid


@dataclass(frozen=True)
class SIValue:
    """One SI value: 1 - mean pairwise correlation, over n_units with n_constant excluded."""

    si: float
    mean_corr: float
    n_units: int
    n_constant_excluded: int


def si_seed_from_entropies(head_entropies: np.ndarray) -> SIValue:
    """Seed SI: 1 - mean upper-triangle corrcoef of entropies.T.

    Rows of entropies.T are head slots (head h of every layer), profiles over layers.
    """
    e = np.asarray(head_entropies, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"head_entropies must be [layers, heads], got shape {e.shape}")
    mean, n_valid = mean_pairwise_correlation(e.T)
    return SIValue(
        si=float(1.0 - mean),
        mean_corr=float(mean),
        n_units=int(e.shape[1]),
        n_constant_excluded=int(e.shape[1] - n_valid),
    )


def si_heads_from_prompt_entropies(prompt_entropies: np.ndarray) -> SIValue:
    """Relabelling-invariant SI: units are heads, profiles over prompts [prompts, layers, heads]."""
    e = _check_prompt_entropies(prompt_entropies)
    units = e.reshape(e.shape[0], -1).T
    mean, n_valid = mean_pairwise_correlation(units)
    return SIValue(
        si=float(1.0 - mean),
        mean_corr=float(mean),
        n_units=int(units.shape[0]),
        n_constant_excluded=int(units.shape[0] - n_valid),
    )


def _check_prompt_entropies(prompt_entropies: np.ndarray) -> np.ndarray:
    e = np.asarray(prompt_entropies, dtype=np.float64)
    if e.ndim != 3:
        raise ValueError(f"prompt entropies must be [prompts, layers, heads], got shape {e.shape}")
    if not np.all(np.isfinite(e)):
        raise ValueError("prompt entropies contain NaN/inf: check the captured attention")
    return e


def _si_seed_weighted(e: np.ndarray, w: np.ndarray) -> np.ndarray:
    """SI_seed for each row of prompt weights w [b, prompts]."""
    p, n_layers, n_heads = e.shape
    mean_ent = (w @ e.reshape(p, -1)) / w.sum(axis=1, keepdims=True)
    profiles = mean_ent.reshape(-1, n_layers, n_heads).transpose(0, 2, 1)
    mean, _ = mean_pairwise_correlation(profiles)
    return 1.0 - mean


def _si_heads_weighted(e: np.ndarray, w: np.ndarray) -> np.ndarray:
    """SI_heads for each row of prompt weights w [b, prompts]."""
    units = e.reshape(e.shape[0], -1).T
    mean, _ = mean_pairwise_correlation(units[None, :, :], w)
    return 1.0 - mean


@dataclass(frozen=True, eq=False)
class SIResult:
    """Both SIs of one model (point estimate + bootstrap interval over prompts) and entropies."""

    si_seed: PercentileInterval
    mean_corr_seed: float
    n_head_slots: int
    n_constant_slots_excluded: int
    si_heads: PercentileInterval
    mean_corr_heads: float
    n_heads_total: int
    n_constant_heads_excluded: int
    n_prompts: int
    head_entropies: np.ndarray
    prompt_entropies: np.ndarray
    si_seed_replicates: np.ndarray
    si_heads_replicates: np.ndarray

    def to_dict(self) -> dict:
        """JSON view without the per-prompt and replicate arrays (store those as npz)."""
        return {
            "si_seed": self.si_seed.to_dict(),
            "mean_corr_seed": to_jsonable(self.mean_corr_seed),
            "n_head_slots": self.n_head_slots,
            "n_constant_slots_excluded": self.n_constant_slots_excluded,
            "si_heads": self.si_heads.to_dict(),
            "mean_corr_heads": to_jsonable(self.mean_corr_heads),
            "n_heads_total": self.n_heads_total,
            "n_constant_heads_excluded": self.n_constant_heads_excluded,
            "n_prompts": self.n_prompts,
            "head_entropies": to_jsonable(self.head_entropies),
            "definitions": {
                "si_seed": "1 - mean upper-triangle corrcoef over head slots h (profile: "
                "mean entropy of head h in each layer); changes if one layer's heads are "
                "relabelled",
                "si_heads": "1 - mean pairwise Pearson r over all heads (layer, head) of their "
                "entropy profiles over prompts; relabelling-invariant",
                "interval": "percentile bootstrap over prompts",
            },
        }


def specialization_index(
    prompt_entropies: np.ndarray, n_boot: int = 1000, seed: SeedLike = 0, level: float = 0.95
) -> SIResult:
    """SI_seed and SI_heads of one model with percentile bootstrap intervals over prompts."""
    e = _check_prompt_entropies(prompt_entropies)
    n_prompts, n_layers, n_heads = e.shape
    if n_layers < 2 or n_heads < 2:
        raise ValueError(
            f"SI needs >= 2 layers and >= 2 heads per layer, got {n_layers} x {n_heads}"
        )
    if n_prompts < 2:
        raise ValueError(f"SI_heads needs >= 2 prompts (profiles over prompts), got {n_prompts}")
    seed_point = si_seed_from_entropies(e.mean(axis=0))
    heads_point = si_heads_from_prompt_entropies(e)
    boot_seed = bootstrap(lambda w: _si_seed_weighted(e, w), n_prompts, n_boot, seed, level=level)
    boot_heads = bootstrap(
        lambda w: _si_heads_weighted(e, w), n_prompts, n_boot, seed, level=level
    )
    return SIResult(
        si_seed=boot_seed.interval(),
        mean_corr_seed=seed_point.mean_corr,
        n_head_slots=seed_point.n_units,
        n_constant_slots_excluded=seed_point.n_constant_excluded,
        si_heads=boot_heads.interval(),
        mean_corr_heads=heads_point.mean_corr,
        n_heads_total=heads_point.n_units,
        n_constant_heads_excluded=heads_point.n_constant_excluded,
        n_prompts=n_prompts,
        head_entropies=e.mean(axis=0),
        prompt_entropies=e,
        si_seed_replicates=boot_seed.replicates,
        si_heads_replicates=boot_heads.replicates,
    )


# --------------------------------------------------------------------------------------------
# Seeds, architecture
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedSummary:
    """Per-seed values reported as mean and std (population std, as numpy's default)."""

    seeds: tuple[int, ...]
    values: tuple[float, ...]
    mean: float
    std: float
    deterministic: bool
    note: str

    def to_dict(self) -> dict:
        return to_jsonable(self.__dict__)


def summarize_seed_values(values_by_seed: Mapping[int, float]) -> SeedSummary:
    """Mean and std of a measurement repeated per seed; flags std == 0 (deterministic pass)."""
    if not values_by_seed:
        raise ValueError("need at least one seed's value")
    seeds = tuple(int(s) for s in values_by_seed)
    values = tuple(float(values_by_seed[s]) for s in values_by_seed)
    arr = np.asarray(values)
    std = float(np.std(arr))
    deterministic = bool(np.ptp(arr) == 0)
    note = DETERMINISTIC_SEED_NOTE if deterministic else "seed-to-seed variation observed"
    return SeedSummary(seeds, values, float(np.mean(arr)), std, deterministic, note)


@dataclass(frozen=True)
class ArchitectureFacts:
    """Attention layout facts logged with SI (seed's definitions of rho_head and rho_kv)."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    hidden_size: int
    d_head: int
    attention_kind: str
    attention_label: str
    rho_head: float
    rho_kv: float

    def to_dict(self) -> dict:
        return to_jsonable(self.__dict__)


def attention_kind(n_heads: int, n_kv_heads: int | None) -> str:
    """MHA if kv heads == heads, MQA if one kv head, else GQA (seed's order of tests)."""
    kv = n_heads if n_kv_heads is None else n_kv_heads
    if kv == n_heads:
        return "MHA"
    if kv == 1:
        return "MQA"
    return "GQA"


def architecture_facts(
    n_layers: int, n_heads: int, hidden_size: int, n_kv_heads: int | None = None
) -> ArchitectureFacts:
    """rho_head = n_heads / sqrt(hidden), rho_kv = n_kv_heads / n_layers, and MHA/GQA/MQA."""
    kv = n_heads if n_kv_heads is None else int(n_kv_heads)
    for name, value in (("n_layers", n_layers), ("n_heads", n_heads), ("hidden_size", hidden_size),
                        ("n_kv_heads", kv)):
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if kv > n_heads:
        raise ValueError(f"n_kv_heads={kv} exceeds n_heads={n_heads}")
    kind = attention_kind(n_heads, kv)
    label = f"GQA ({n_heads}:{kv})" if kind == "GQA" else kind
    return ArchitectureFacts(
        n_layers=int(n_layers),
        n_heads=int(n_heads),
        n_kv_heads=kv,
        hidden_size=int(hidden_size),
        d_head=int(hidden_size) // int(n_heads),
        attention_kind=kind,
        attention_label=label,
        rho_head=n_heads / math.sqrt(hidden_size),
        rho_kv=kv / n_layers,
    )


# --------------------------------------------------------------------------------------------
# Sanity check and dtype variants
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SanityResult:
    """Outcome of the seed's pre-run sanity check on one prompt's attention."""

    ok: bool
    reason: str
    label: str
    valid_len: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    attn_abs_mean: float | None = None
    attn_std: float | None = None
    heads_identical: bool | None = None
    entropy_min: float | None = None
    entropy_max: float | None = None
    entropy_mean: float | None = None
    baseline_si: float | None = None
    mean_corr: float | None = None
    si_threshold: float = SI_SANITY_THRESHOLD
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return to_jsonable(self.__dict__)


def sanity_check_attention(
    attention: np.ndarray | None,
    label: str = "",
    valid_len: int | None = None,
    si_threshold: float = SI_SANITY_THRESHOLD,
    fail_on_identical_heads: bool = False,
) -> SanityResult:
    """The seed's checks, in its order, on one prompt's attention [layers, heads, q, k].

    Fails on: valid_len <= 5, no attention, abs mean of layer 0 <= 0, non-finite values (any
    layer; the seed looked at layer 0), SI_seed of this prompt < si_threshold. Head 0 vs head 1
    of layer 0 allclose(atol=1e-4) is a warning as in the seed unless fail_on_identical_heads.
    """
    if attention is None:
        v = valid_len
    else:
        attention = np.asarray(attention)
        v = int(attention.shape[-1]) if valid_len is None else int(valid_len)
    if v is not None and v <= MIN_VALID_LEN_EXCLUSIVE:
        return SanityResult(False, "valid_len_too_small", label, valid_len=v)
    if attention is None:
        return SanityResult(False, "no_attentions", label, valid_len=v)
    if attention.ndim != 4:
        return SanityResult(False, f"bad_shape {attention.shape}", label, valid_len=v)
    a = attention.astype(np.float64)
    n_layers, n_heads = a.shape[:2]
    layer0 = a[0]
    abs_mean = float(np.abs(layer0).mean())
    std = float(layer0.std(ddof=1)) if layer0.size > 1 else 0.0
    base = {"valid_len": v, "n_layers": n_layers, "n_heads": n_heads,
            "attn_abs_mean": abs_mean, "attn_std": std}
    if abs_mean <= 0:
        return SanityResult(False, "degenerate_attn", label, **base)
    if not np.all(np.isfinite(a)):
        return SanityResult(False, "nan_inf", label, **base)
    head1 = layer0[1] if n_heads > 1 else layer0[0]
    identical = bool(np.allclose(layer0[0], head1, atol=HEAD_IDENTITY_ATOL))
    warnings: tuple[str, ...] = ()
    if identical:
        warnings = ("layer 0: head 0 and head 1 are identical (atol 1e-4); SI may be ~0",)
        if fail_on_identical_heads:
            return SanityResult(False, "heads_identical", label, heads_identical=True,
                                warnings=warnings, **base)
    ent = normalized_attention_entropy(a, v)
    si = si_seed_from_entropies(ent)
    ok = bool(si.si >= si_threshold)
    return SanityResult(
        ok=ok,
        reason="passed" if ok else "si_below_threshold",
        label=label,
        heads_identical=identical,
        entropy_min=float(ent.min()),
        entropy_max=float(ent.max()),
        entropy_mean=float(ent.mean()),
        baseline_si=si.si,
        mean_corr=si.mean_corr,
        si_threshold=si_threshold,
        warnings=warnings,
        **base,
    )


class SanityCheckError(ScalelensError, ValueError):
    """No dtype variant passed the sanity check; .attempts holds every variant's result."""

    def __init__(self, message: str, attempts: tuple[SanityResult, ...]):
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True)
class DtypeSelection:
    """The first dtype variant that passed, and every attempt in order."""

    chosen: str
    result: SanityResult
    attempts: tuple[SanityResult, ...]

    def to_dict(self) -> dict:
        return {"chosen": self.chosen, "result": self.result.to_dict(),
                "attempts": [a.to_dict() for a in self.attempts]}


def select_dtype_variant(
    measure: Callable[[str], np.ndarray | None],
    labels: Sequence[str] = DTYPE_ORDER,
    si_threshold: float = SI_SANITY_THRESHOLD,
    fail_on_identical_heads: bool = False,
) -> DtypeSelection:
    """Try dtype variants in order (bf16, fp16, fp32); return the first passing the sanity check.

    measure(label) returns the test prompt's attention [layers, heads, q, k] (None if the model
    returned no attention); an exception it raises (load/forward failure) fails that variant.
    """
    attempts: list[SanityResult] = []
    for label in labels:
        try:
            attention = measure(label)
        # The seed records load/forward failures per variant and goes on to the next.
        except Exception as exc:  # noqa: BLE001
            logger.warning("sanity variant %s: measure failed: %s", label, exc)
            attempts.append(SanityResult(False, f"measure_failed: {type(exc).__name__}: {exc}",
                                         label))
            continue
        result = sanity_check_attention(attention, label=label, si_threshold=si_threshold,
                                        fail_on_identical_heads=fail_on_identical_heads)
        attempts.append(result)
        if result.ok:
            logger.info("sanity variant %s passed (SI=%.4f)", label, result.baseline_si)
            return DtypeSelection(chosen=label, result=result, attempts=tuple(attempts))
        logger.warning("sanity variant %s failed: %s", label, result.reason)
    summary = "; ".join(f"{a.label}: {a.reason}" for a in attempts)
    raise SanityCheckError(
        f"no dtype variant passed the SI sanity check ({summary}); check that the model supports "
        "eager attention with output_attentions=True",
        tuple(attempts),
    )


# --------------------------------------------------------------------------------------------
# B11 verdict
# --------------------------------------------------------------------------------------------

B11_RULE = (
    "Seed 002 (Cell 8): a model is within target if |SI - target| <= tolerance. Counting the "
    "measured models and the reference values together: HERITAGE_CONFIRMED (B11 -> A-Tier) if "
    "every model is within target and total >= 4; SIZE_CONFOUND_DETECTED (B11 stays B-Tier) if "
    "any model is outside; otherwise INCONCLUSIVE (B-Tier). Applied to point estimates of SI_seed "
    "of the Phi-family models and the reference values (see the premise)."
)

PHI_FAMILY = "phi"
B11_PREMISE_RULE = (
    "B11 (seed 002) is a claim about Microsoft's Phi family: it compares Phi-1.5 and Phi-2 "
    "(measured) with the Phi-3 references (the reference values, counted as Phi-family models, "
    "as in the seed). Premise: at least one measured model of the Phi family (family 'phi') in "
    "the ladder. The rule then counts the Phi-family models and the reference values only; "
    "models of other families are reported (SI, interval, band status) but not counted, since "
    "their SI says nothing about Phi heritage."
)
B11_NOT_APPLICABLE_REASON = (
    "no Phi-family model in the ladder; B11 compares Phi-1.5/Phi-2 with the Phi-3 references"
)


@dataclass(frozen=True)
class MeasuredSI:
    """A measured model's SI_seed point estimate and bootstrap interval (size in billions)."""

    name: str
    si: float
    low: float
    high: float
    size_b: float | None = None
    si_heads: float | None = None
    si_heads_low: float | None = None
    si_heads_high: float | None = None
    family: str = ""
    family_inferred: bool = False


def measured_si_from_dict(name: str, doc: Mapping, size_b: float | None = None,
                          family: str = "", family_inferred: bool = False) -> MeasuredSI:
    """B11 input from SIResult.to_dict() (the per-model json); missing numbers become NaN."""

    def num(x: object) -> float:
        return math.nan if x is None else float(x)

    seed, heads = doc["si_seed"], doc["si_heads"]
    return MeasuredSI(name, num(seed["point"]), num(seed["low"]), num(seed["high"]), size_b,
                      heads.get("point"), heads.get("low"), heads.get("high"), family,
                      family_inferred)


@dataclass(frozen=True)
class SIModelEntry:
    """One row of the B11 table; `counted` says whether the rule counts it (Phi family)."""

    name: str
    source: str
    si: float
    low: float | None
    high: float | None
    size_b: float | None
    within_target: bool
    band_status: str
    si_heads: float | None = None
    si_heads_low: float | None = None
    si_heads_high: float | None = None
    family: str = ""
    family_inferred: bool = False
    counted: bool = True


@dataclass(frozen=True)
class B11Verdict:
    """The B11 decision with its premise, numbers, intervals and within-family steps.

    n_total and n_within count the rows the rule counts (Phi family and references).
    """

    rule: str
    target: float
    tolerance: float
    band: tuple[float, float]
    min_models: int
    premise: Premise
    models: tuple[SIModelEntry, ...]
    n_total: int
    n_within: int
    verdict: str
    seed_rule_verdict: str | None
    tier: str | None
    b11_recommendation: str | None
    reason: str
    undecided_models: tuple[str, ...]
    possible_verdicts: tuple[str, ...]
    intervals_could_change_verdict: bool
    excluded_models: tuple[str, ...]
    within_family: WithinFamily
    across_family: dict
    notes: tuple[str, ...]

    def to_dict(self) -> dict:
        return to_jsonable(self.__dict__)


def _b11_rule(n_within: int, n_total: int, min_models: int) -> str:
    if n_within == n_total and n_total >= min_models:
        return HERITAGE_CONFIRMED
    if n_within < n_total:
        return SIZE_CONFOUND_DETECTED
    return INCONCLUSIVE


def _b11_tier(verdict: str) -> tuple[str | None, str | None]:
    if verdict == NOT_APPLICABLE:
        return None, None
    if verdict == HERITAGE_CONFIRMED:
        return "A-Tier", "A-Tier"
    return "B-Tier", "B-Tier (unchanged)"


def _band_status(low: float, high: float, band: tuple[float, float]) -> str:
    """inside / outside / undecided for an interval relative to the closed band."""
    if low >= band[0] and high <= band[1]:
        return "inside"
    if high < band[0] or low > band[1]:
        return "outside"
    return "undecided"


def _reference_rows(
    references: Mapping[str, float | Mapping],
) -> list[tuple[str, float, float | None, str]]:
    """(name, si, size_b, family); a reference is a Phi-family value unless it names a family."""
    rows = []
    for name, ref in references.items():
        if isinstance(ref, Mapping):
            if "si" not in ref:
                raise ValueError(f"reference {name!r} has no 'si' value: {dict(ref)}")
            rows.append((name, float(ref["si"]), None if ref.get("size_b") is None
                         else float(ref["size_b"]), str(ref.get("family") or PHI_FAMILY)))
        else:
            rows.append((name, float(ref), None, PHI_FAMILY))
    return rows


def b11_premise(measured: Sequence[MeasuredSI], references: Mapping) -> Premise:
    """Met when the ladder holds a measured Phi-family model; B11 is decided on family phi."""
    families = {m.name: m.family for m in measured}
    phi = [m.name for m in measured if m.family == PHI_FAMILY]
    checked = {
        "phi_family": PHI_FAMILY,
        "families_of_measured_models": families,
        "inferred_families": sorted({m.family for m in measured if m.family_inferred}),
        "measured_phi_family_models": phi,
        "references_counted_as_phi_family": [n for n, _, _, fam in _reference_rows(references)
                                             if fam == PHI_FAMILY],
    }
    if phi:
        reason = (f"{len(phi)} measured Phi-family model(s) in the ladder ({', '.join(phi)}); "
                  "the rule counts them and the reference values")
        return Premise(B11_PREMISE_RULE, checked, True, reason, (PHI_FAMILY,))
    return Premise(B11_PREMISE_RULE, checked, False, B11_NOT_APPLICABLE_REASON, ())


def _si_across_family(entries: Sequence[SIModelEntry]) -> dict:
    """The seed's trend over every measured model with a size (linear in B), descriptive.

    As in the seed's figure, the trend needs 3 or more models.
    """
    rows = [e for e in entries if e.source == "measured" and e.size_b is not None]
    sizes = np.array([e.size_b for e in rows], dtype=np.float64)
    sis = np.array([e.si for e in rows], dtype=np.float64)
    slope, r, p = math.nan, math.nan, math.nan
    if len(rows) >= 3 and np.ptp(sizes) > 0:
        slope = float(np.polyfit(sizes, sis, 1)[0])
        r, p = pearson_r_p(np.log10(sizes), sis)
    return {
        "label": ACROSS_FAMILY_LABEL, "n_models": len(rows),
        "families": sorted({e.family for e in rows}),
        "linear_slope_si_per_b": slope, "pearson_r_log10_size": r, "pearson_p_log10_size": p,
        "definition": "measured models only, 3 or more: least-squares slope of SI_seed "
                      "against size in billions (the seed's trend line) and Pearson r of SI_seed "
                      "against log10(size)",
    }


def b11_verdict(
    measured: Sequence[MeasuredSI],
    references: Mapping[str, float | Mapping],
    target: float = B11_TARGET,
    tolerance: float = B11_TOLERANCE,
    min_models: int = B11_MIN_MODELS,
) -> B11Verdict:
    """The premise, then the seed's B11 rule on the Phi-family SI_seed points and the references.

    Without a measured Phi-family model the verdict is NOT_APPLICABLE (no tier); every row is
    still reported. A counted model whose interval straddles an edge of
    [target - tol, target + tol] is undecided; the verdict is re-evaluated with every undecided
    model inside and outside. Models with a non-finite SI are excluded (the seed excluded
    errored models).
    """
    band = (target - tolerance, target + tolerance)
    premise = b11_premise(measured, references)
    entries: list[SIModelEntry] = []
    excluded = []
    for m in measured:
        if not math.isfinite(m.si):
            excluded.append(m.name)
            continue
        # The hull with the point: a percentile interval can miss the point in skewed cases.
        low = min(m.low, m.si) if math.isfinite(m.low) else m.si
        high = max(m.high, m.si) if math.isfinite(m.high) else m.si
        entries.append(SIModelEntry(
            name=m.name, source="measured", si=float(m.si), low=float(low), high=float(high),
            size_b=m.size_b, within_target=abs(m.si - target) <= tolerance,
            band_status=_band_status(low, high, band), si_heads=m.si_heads,
            si_heads_low=m.si_heads_low, si_heads_high=m.si_heads_high, family=m.family,
            family_inferred=m.family_inferred,
            counted=premise.met and m.family == PHI_FAMILY))
    for name, value, size_b, family in _reference_rows(references):
        entries.append(SIModelEntry(
            name=name, source="reference", si=value, low=None, high=None, size_b=size_b,
            within_target=abs(value - target) <= tolerance, band_status="reference (no interval)",
            family=family, counted=premise.met and family == PHI_FAMILY))
    counted = [e for e in entries if e.counted]
    n_total = len(counted)
    n_within = sum(e.within_target for e in counted)
    notes = [
        ("SI_seed depends on how the heads of each layer are labelled; si_heads is the "
         "relabelling-invariant variant, reported for information (the rule and the reference "
         "values are defined on SI_seed)."),
        "Reference models have no interval; their band status is taken from the point value.",
    ]
    not_counted = [e.name for e in entries if not e.counted and e.source == "measured"]
    if premise.met and not_counted:
        notes.append(f"not counted (not Phi family): {', '.join(not_counted)}")
    within = within_family_steps(
        [FamilyMember(m.name, m.family, m.size_b, m.family_inferred) for m in measured],
        {e.name: {"si_seed": Quantity.of(e.si, e.low, e.high),
                  "si_heads": Quantity.of(e.si_heads, e.si_heads_low, e.si_heads_high)}
         for e in entries if e.source == "measured"})
    common = dict(rule=B11_RULE, target=target, tolerance=tolerance, band=band,
                  min_models=min_models, premise=premise, models=tuple(entries), n_total=n_total,
                  n_within=n_within, excluded_models=tuple(excluded), within_family=within,
                  across_family=_si_across_family(entries))
    if not premise.met:
        return B11Verdict(**common, verdict=NOT_APPLICABLE, seed_rule_verdict=None, tier=None,
                          b11_recommendation=None, reason=premise.reason, undecided_models=(),
                          possible_verdicts=(NOT_APPLICABLE,),
                          intervals_could_change_verdict=False, notes=tuple(notes))
    seed_verdict = _b11_rule(n_within, n_total, min_models)
    undecided = tuple(e.name for e in counted if e.band_status == "undecided")
    fixed_within = sum(e.within_target for e in counted if e.band_status != "undecided")
    possible = sorted({_b11_rule(fixed_within + k, n_total, min_models)
                       for k in (0, len(undecided))} | {seed_verdict})
    n_measured = sum(e.source == "measured" for e in counted)
    guard = fewer_models_reason(n_total, MIN_MODELS_CROSS_MODEL)
    if n_measured == 0:
        guard = ("no measured Phi-family model produced a finite SI: nothing was tested against "
                 "the references")
    verdict = INCONCLUSIVE if guard else seed_verdict
    if guard:
        reason = guard
    elif verdict == HERITAGE_CONFIRMED:
        reason = f"all {n_total} models within {target} +/- {tolerance} (needs >= {min_models})"
    elif verdict == SIZE_CONFOUND_DETECTED:
        reason = f"{n_total - n_within}/{n_total} models outside {target} +/- {tolerance}"
    else:
        reason = (f"all {n_total} models within target but the rule needs >= {min_models} "
                  "models for HERITAGE_CONFIRMED")
    tier, recommendation = _b11_tier(verdict)
    return B11Verdict(
        **common, verdict=verdict, seed_rule_verdict=seed_verdict, tier=tier,
        b11_recommendation=recommendation, reason=reason, undecided_models=undecided,
        possible_verdicts=tuple(possible) if not guard else (INCONCLUSIVE,),
        intervals_could_change_verdict=(len(possible) > 1) and not guard, notes=tuple(notes))
