"""Uniformity asymmetry (UA) by layer and the peak-stability verdict (seed 003).

For each selected layer: mean-pooled statement embeddings; per category
UA = uniformity(A) - uniformity(B), uniformity = mean pairwise cosine similarity; output
preference = NLL(B) - NLL(A) (mean token NLL from the same forward pass), averaged per category;
Pearson r across categories between UA and mean preference. Per model the peak (max r) depth;
across models the std of peak depth decides STABLE (< 10 % of depth) or SHIFTS.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalelens.errors import ScalelensError
from scalelens.sweeps.bootstrap import SeedLike, bootstrap, percentile_bounds
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
    to_jsonable,
    within_family_steps,
)

logger = logging.getLogger(__name__)

COSINE_EPS = 1e-10
DEFAULT_LAYER_STEP = 4
MIN_PAIRS_PER_CATEGORY = 3
MIN_CATEGORIES = 3
PEAK_STD_THRESHOLD_PCT = 10.0
STABLE = "STABLE"
SHIFTS = "SHIFTS"


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


class DatasetSchemaError(ScalelensError, ValueError):
    """The statement-pair file does not follow the schema; the message names what is wrong."""


SCHEMA_TEXT = ('{category_name: {"description": str, "expected_effect": str, '
               '"pairs": [[statement_a, statement_b], ...]}, ...}')


@dataclass(frozen=True)
class StatementCategory:
    """One category of statement pairs (A and B differ in the way the description says)."""

    name: str
    description: str
    expected_effect: str
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class StatementPairDataset:
    """Validated statement pairs, categories in file order."""

    categories: tuple[StatementCategory, ...]

    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categories)

    @property
    def n_pairs(self) -> int:
        return sum(len(c.pairs) for c in self.categories)

    def statements_a(self) -> tuple[str, ...]:
        """Statement A of every pair, categories concatenated in order."""
        return tuple(a for c in self.categories for a, _ in c.pairs)

    def statements_b(self) -> tuple[str, ...]:
        """Statement B of every pair, aligned with statements_a()."""
        return tuple(b for c in self.categories for _, b in c.pairs)

    def category_index(self) -> np.ndarray:
        """Category number of every pair, aligned with statements_a()."""
        return np.concatenate([np.full(len(c.pairs), i) for i, c in enumerate(self.categories)])


def validate_statement_pairs(
    raw: object,
    min_pairs: int = MIN_PAIRS_PER_CATEGORY,
    min_categories: int = MIN_CATEGORIES,
    source: str = "dataset",
) -> StatementPairDataset:
    """Validate parsed JSON against the schema; errors name the category and pair at fault."""
    if not isinstance(raw, Mapping):
        raise DatasetSchemaError(
            f"{source}: top level must be an object {SCHEMA_TEXT}, got {type(raw).__name__}")
    if len(raw) < min_categories:
        raise DatasetSchemaError(
            f"{source}: {len(raw)} categories; Pearson r across categories needs at least "
            f"{min_categories}: add categories")
    categories = []
    for name, body in raw.items():
        where = f"{source}: category {name!r}"
        if not isinstance(name, str) or not name.strip():
            raise DatasetSchemaError(f"{where}: category names must be non-empty strings")
        if not isinstance(body, Mapping):
            raise DatasetSchemaError(f"{where}: must be an object with description, "
                                     f"expected_effect, pairs; got {type(body).__name__}")
        for key in ("description", "expected_effect"):
            if not isinstance(body.get(key), str):
                raise DatasetSchemaError(f"{where}: '{key}' must be a string, got "
                                         f"{body.get(key)!r}")
        pairs = body.get("pairs")
        if not isinstance(pairs, list):
            raise DatasetSchemaError(f"{where}: 'pairs' must be a list of [statement_a, "
                                     f"statement_b], got {type(pairs).__name__}")
        if len(pairs) < min_pairs:
            raise DatasetSchemaError(f"{where}: {len(pairs)} pairs; each category needs at "
                                     f"least {min_pairs} (uniformity is a mean over pairs)")
        checked = []
        for i, pair in enumerate(pairs):
            ok = (isinstance(pair, (list, tuple)) and len(pair) == 2
                  and all(isinstance(s, str) and s.strip() for s in pair))
            if not ok:
                raise DatasetSchemaError(f"{where}, pair {i}: expected [statement_a, statement_b]"
                                         f" with two non-empty strings, got {pair!r}")
            checked.append((pair[0], pair[1]))
        categories.append(StatementCategory(name, body["description"], body["expected_effect"],
                                            tuple(checked)))
    return StatementPairDataset(tuple(categories))


def load_statement_pairs(path: str | Path, **kwargs) -> StatementPairDataset:
    """Read and validate a statement-pair JSON file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DatasetSchemaError(f"statement-pair file not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise DatasetSchemaError(f"{path}: not valid JSON ({exc})") from exc
    return validate_statement_pairs(raw, source=str(path), **kwargs)


# --------------------------------------------------------------------------------------------
# Per-statement helpers (used by the capture side, tested here)
# --------------------------------------------------------------------------------------------


def select_layers(n_layers: int, layer_step: int = DEFAULT_LAYER_STEP) -> tuple[int, ...]:
    """Hidden-state indices 0, step, 2*step, ... plus n_layers (the seed's layer sampling)."""
    if n_layers < 1 or layer_step < 1:
        raise ValueError(f"need n_layers >= 1 and layer_step >= 1, got {n_layers}, {layer_step}")
    layers = list(range(0, n_layers + 1, layer_step))
    if n_layers not in layers:
        layers.append(n_layers)
    return tuple(layers)


@dataclass(frozen=True)
class BosRule:
    """Whether mean pooling skips position 0, and the rule applied, for the record."""

    skip_first: bool
    rule: str


SEED_RULE = "skipped position 0 always (seed 003's rule, uniformity.skip_first: always)"


def bos_rule(first_input_id: int, bos_token_id: int | None, mode: str = "bos") -> BosRule:
    """Skip position 0 only if the tokenizer put its BOS token there (mode "bos", the default),
    or always (mode "always": seed 003, which assumed every tokenizer prepends BOS)."""
    if mode == "always":
        return BosRule(True, SEED_RULE)
    if mode != "bos":
        raise ValueError(f"skip_first must be 'bos' or 'always', got {mode!r}")
    if bos_token_id is None:
        return BosRule(False, "kept position 0: the tokenizer has no BOS token")
    if int(first_input_id) == int(bos_token_id):
        return BosRule(True, f"skipped position 0: it is the BOS token (id {bos_token_id})")
    return BosRule(False, f"kept position 0: first token id {first_input_id} is not the BOS "
                          f"token id {bos_token_id} (the tokenizer does not prepend BOS)")


def mean_pooled_embeddings(hidden_states: np.ndarray, skip_first: bool) -> np.ndarray:
    """Mean over tokens of [layers, tokens, d] -> [layers, d], optionally without position 0."""
    h = np.asarray(hidden_states, dtype=np.float64)
    if h.ndim != 3:
        raise ValueError(f"hidden_states must be [layers, tokens, d], got shape {h.shape}")
    start = 1 if skip_first else 0
    if h.shape[1] <= start:
        raise ValueError(f"statement has {h.shape[1]} token(s); nothing left to pool after "
                         f"skipping BOS")
    return h[:, start:, :].mean(axis=1)


def next_token_nll_nats(logits: np.ndarray, input_ids: np.ndarray) -> float:
    """Mean NLL (nats) of tokens 1..T-1 given their prefix: the loss of labels=input_ids."""
    z = np.asarray(logits, dtype=np.float64)
    ids = np.asarray(input_ids).astype(np.int64)
    if z.ndim != 2 or ids.shape != (z.shape[0],) or z.shape[0] < 2:
        raise ValueError(f"need logits [T >= 2, vocab] and input_ids [T], got {z.shape}, "
                         f"{ids.shape}")
    pred = z[:-1]
    m = pred.max(axis=1, keepdims=True)
    log_norm = (m[:, 0] + np.log(np.exp(pred - m).sum(axis=1)))
    return float(np.mean(log_norm - pred[np.arange(len(pred)), ids[1:]]))


# --------------------------------------------------------------------------------------------
# Uniformity and UA
# --------------------------------------------------------------------------------------------


def cosine_kernel(embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarities [..., n, n] of rows, normalised by (norm + 1e-10) as in the seed."""
    e = np.asarray(embeddings, dtype=np.float64)
    unit = e / (np.linalg.norm(e, axis=-1, keepdims=True) + COSINE_EPS)
    return unit @ np.swapaxes(unit, -1, -2)


def uniformity(embeddings: np.ndarray) -> float:
    """Mean pairwise cosine similarity over the upper triangle of [n, d] embeddings (seed)."""
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] < 2:
        raise ValueError(f"uniformity needs [n >= 2, d] embeddings, got shape {e.shape}")
    k = cosine_kernel(e)
    return float(k[np.triu_indices(e.shape[0], k=1)].mean())


def _weighted_uniformity(kernel: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Uniformity of resampled items: kernel [L, n, n], counts w [b, n] -> [b, L].

    Pairs of copies of the same original item are left out (their cosine is 1 by definition),
    so at w = 1 this is exactly the upper-triangle mean.
    """
    k0 = kernel * (1.0 - np.eye(kernel.shape[-1]))
    pair_sum = np.einsum("bi,lij,bj->bl", w, k0, w)
    n = w.sum(axis=1)
    n_pairs = n * n - (w * w).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pair_sum / np.where(n_pairs > 0, n_pairs, np.nan)[:, None]


@dataclass(frozen=True)
class SignChange:
    """A sign change of r between two consecutive selected layers (seed's definition)."""

    layer_before: int
    layer_after: int
    midpoint_pct: float


@dataclass(frozen=True)
class PeakSummary:
    """Seed's per-model summary of the r-by-layer curve (depth in % of n_layers)."""

    max_pos_r: float
    max_pos_layer: int
    max_pos_pct: float
    max_neg_r: float
    max_neg_layer: int
    max_neg_pct: float
    final_layer: int
    final_r: float
    sign_changes: tuple[SignChange, ...]

    def to_dict(self) -> dict:
        return to_jsonable(self.__dict__)


def peak_summary(layers: Sequence[int], r: Sequence[float], n_layers: int) -> PeakSummary:
    """Max r (first layer attaining it), min r, r at the last selected layer, sign changes.

    'max positive r' is the maximum of r, as in the seed (it can be negative); NaN layers are
    ignored. A sign change is r_i * r_{i+1} < 0 at consecutive selected layers.
    """
    layers = np.asarray(layers, dtype=np.int64)
    r = np.asarray(r, dtype=np.float64)
    if layers.shape != r.shape or layers.size == 0:
        raise ValueError(f"layers {layers.shape} and r {r.shape} must be equal, non-empty")
    if not np.any(np.isfinite(r)):
        raise ValueError("r is NaN at every layer: no peak to summarise")
    i_max = int(np.nanargmax(r))
    i_min = int(np.nanargmin(r))
    final = int(np.argmax(layers))
    changes = tuple(
        SignChange(int(layers[i]), int(layers[i + 1]),
                   float((layers[i] + layers[i + 1]) / 2 / n_layers * 100))
        for i in range(len(r) - 1) if r[i] * r[i + 1] < 0)
    return PeakSummary(
        max_pos_r=float(r[i_max]), max_pos_layer=int(layers[i_max]),
        max_pos_pct=float(layers[i_max] / n_layers * 100),
        max_neg_r=float(r[i_min]), max_neg_layer=int(layers[i_min]),
        max_neg_pct=float(layers[i_min] / n_layers * 100),
        final_layer=int(layers[final]), final_r=float(r[final]), sign_changes=changes)


def _peak_pct_of_curves(r_curves: np.ndarray, layers: np.ndarray, n_layers: int) -> np.ndarray:
    """Depth % of the first maximum of each r curve [b, L]; NaN if a curve is all NaN."""
    finite = np.isfinite(r_curves)
    filled = np.where(finite, r_curves, -np.inf)
    idx = np.argmax(filled, axis=1)
    pct = layers[idx] / n_layers * 100.0
    return np.where(finite.any(axis=1), pct, np.nan)


@dataclass(frozen=True, eq=False)
class UniformityStudy:
    """UA-vs-preference correlation by layer for one model, with bootstrap intervals over pairs."""

    model: str
    n_layers: int
    layers: tuple[int, ...]
    depth_pct: np.ndarray
    r: np.ndarray
    p: np.ndarray
    r_low: np.ndarray
    r_high: np.ndarray
    r_replicates: np.ndarray
    category_names: tuple[str, ...]
    category_ua: np.ndarray
    category_preference: np.ndarray
    peak: PeakSummary
    peak_pct_replicates: np.ndarray
    peak_pct_low: float
    peak_pct_high: float
    bos_rule: str
    n_pairs: int
    n_boot: int
    level: float

    def to_dict(self) -> dict:
        """JSON view (replicates of the peak depth included for the verdict stage)."""
        return to_jsonable({
            "model": self.model, "n_layers": self.n_layers, "layers": self.layers,
            "depth_pct": self.depth_pct, "r": self.r, "p": self.p, "r_low": self.r_low,
            "r_high": self.r_high, "level": self.level, "n_boot": self.n_boot,
            "category_names": self.category_names, "category_ua": self.category_ua,
            "category_preference": self.category_preference, "peak": self.peak.to_dict(),
            "peak_pct_low": self.peak_pct_low, "peak_pct_high": self.peak_pct_high,
            "peak_pct_replicates": self.peak_pct_replicates, "bos_rule": self.bos_rule,
            "n_pairs": self.n_pairs,
            "definitions": {
                "uniformity": "mean pairwise cosine similarity (upper triangle, norm + 1e-10)",
                "ua": "uniformity(A) - uniformity(B) per category",
                "preference": "NLL(B) - NLL(A), mean token NLL in nats; averaged per category",
                "r": "Pearson r across categories of UA vs mean preference, per layer",
                "interval": "percentile bootstrap over pairs within categories (copies of one "
                            "pair are not paired with each other in uniformity)",
                "depth_pct": "hidden-state index / n_layers * 100 (0 = embeddings)",
            },
        })


def uniformity_asymmetry_study(
    embeddings_a: np.ndarray,
    embeddings_b: np.ndarray,
    nll_a: np.ndarray,
    nll_b: np.ndarray,
    category_index: np.ndarray,
    layers: Sequence[int],
    n_layers: int,
    model: str = "",
    category_names: Sequence[str] | None = None,
    bos_rule_applied: str = "",
    n_boot: int = 1000,
    seed: SeedLike = 0,
    level: float = 0.95,
) -> UniformityStudy:
    """Per-layer r(UA, preference) across categories with a bootstrap over pairs.

    embeddings_a/_b [n_selected_layers, n_pairs, d]: mean-pooled statement embeddings at the
    hidden-state indices `layers`; nll_a/_b [n_pairs]: mean token NLL of each statement;
    category_index [n_pairs]: category number of each pair (0..C-1).
    """
    ea = np.asarray(embeddings_a, dtype=np.float64)
    eb = np.asarray(embeddings_b, dtype=np.float64)
    cat = np.asarray(category_index).astype(np.int64)
    layers_arr = np.asarray(layers, dtype=np.int64)
    n_pairs = cat.size
    if ea.ndim != 3 or ea.shape != eb.shape or ea.shape[:2] != (layers_arr.size, n_pairs):
        raise ValueError(f"embeddings must be [layers={layers_arr.size}, pairs={n_pairs}, d], "
                         f"got A {ea.shape}, B {eb.shape}")
    pref = np.asarray(nll_b, dtype=np.float64) - np.asarray(nll_a, dtype=np.float64)
    if pref.shape != (n_pairs,) or not np.all(np.isfinite(pref)):
        raise ValueError(f"nll_a/nll_b must be finite [pairs={n_pairs}]")
    n_cat = int(cat.max()) + 1 if n_pairs else 0
    sizes = np.bincount(cat, minlength=n_cat)
    if n_cat < MIN_CATEGORIES or np.any(sizes < MIN_PAIRS_PER_CATEGORY):
        raise ValueError(f"need >= {MIN_CATEGORIES} categories with >= {MIN_PAIRS_PER_CATEGORY} "
                         f"pairs each, got sizes {sizes.tolist()}")
    names = tuple(category_names) if category_names is not None else tuple(
        f"category_{i}" for i in range(n_cat))
    if len(names) != n_cat:
        raise ValueError(f"{len(names)} category names for {n_cat} categories")
    members = [np.flatnonzero(cat == c) for c in range(n_cat)]
    kernels_a = [cosine_kernel(ea[:, m, :]) for m in members]
    kernels_b = [cosine_kernel(eb[:, m, :]) for m in members]

    def ua_and_pref(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ua = np.stack([_weighted_uniformity(ka, w[:, m]) - _weighted_uniformity(kb, w[:, m])
                       for m, ka, kb in zip(members, kernels_a, kernels_b)], axis=-1)
        mean_pref = np.stack([(w[:, m] @ pref[m]) / w[:, m].sum(axis=1) for m in members],
                             axis=-1)
        return ua, mean_pref  # [b, L, C], [b, C]

    def r_by_layer(w: np.ndarray) -> np.ndarray:
        ua, mean_pref = ua_and_pref(w)
        return pearson_r_batched(ua, mean_pref[:, None, :])

    ua_point, pref_point = ua_and_pref(np.ones((1, n_pairs)))
    ua_point, pref_point = ua_point[0], pref_point[0]
    rp = [pearson_r_p(ua_point[i], pref_point) for i in range(layers_arr.size)]
    boot = bootstrap(r_by_layer, n_pairs, n_boot, seed, strata=cat, level=level)
    r = np.array([x[0] for x in rp])
    peak_reps = _peak_pct_of_curves(boot.replicates, layers_arr, n_layers)
    lo, hi, _ = percentile_bounds(peak_reps[:, None], level)
    return UniformityStudy(
        model=model, n_layers=int(n_layers), layers=tuple(int(x) for x in layers_arr),
        depth_pct=layers_arr / n_layers * 100.0, r=r, p=np.array([x[1] for x in rp]),
        r_low=boot.low, r_high=boot.high, r_replicates=boot.replicates, category_names=names,
        category_ua=ua_point,
        category_preference=pref_point, peak=peak_summary(layers_arr, r, n_layers),
        peak_pct_replicates=peak_reps, peak_pct_low=float(lo[0]), peak_pct_high=float(hi[0]),
        bos_rule=bos_rule_applied, n_pairs=n_pairs, n_boot=boot.n_boot, level=level)


# --------------------------------------------------------------------------------------------
# Cross-model verdict
# --------------------------------------------------------------------------------------------

PEAK_RULE = (
    "Seed 003 (section 5): per model the peak is the layer of max r (first occurrence), at "
    "depth layer / n_layers * 100; std (numpy, ddof=0) of the peak depths across models; "
    "STABLE if std < 10 (% of depth), else SHIFTS. Fewer than 2 models: INCONCLUSIVE."
)


@dataclass(frozen=True, eq=False)
class ModelPeak:
    """What the peak verdict needs per model: its summary, bootstrap peak-depth replicates, the
    intervals of the peak depth and of r at the peak layer, and its family and size."""

    model: str
    n_layers: int
    summary: PeakSummary
    peak_pct_replicates: np.ndarray
    family: str = ""
    size_b: float | None = None
    family_inferred: bool = False
    peak_pct_low: float = math.nan
    peak_pct_high: float = math.nan
    peak_r_low: float = math.nan
    peak_r_high: float = math.nan


def _at_peak(layers: Sequence[int], values: Sequence, peak_layer: int) -> float:
    value = values[list(layers).index(peak_layer)]
    return math.nan if value is None else float(value)


def model_peak(study: UniformityStudy, family: str = "", size_b: float | None = None,
               family_inferred: bool = False) -> ModelPeak:
    """The verdict input of one per-model study (family and size as the stage recorded them)."""
    layer = study.peak.max_pos_layer
    return ModelPeak(study.model, study.n_layers, study.peak, study.peak_pct_replicates, family,
                     size_b, family_inferred, study.peak_pct_low, study.peak_pct_high,
                     _at_peak(study.layers, study.r_low, layer),
                     _at_peak(study.layers, study.r_high, layer))


def model_peak_from_dict(doc: Mapping) -> ModelPeak:
    """Rebuild the verdict input from the per-model json (UniformityStudy.to_dict() and the
    family and size the stage records beside it)."""
    peak = dict(doc["peak"])
    peak["sign_changes"] = tuple(SignChange(**c) for c in peak.get("sign_changes", ()))
    reps = np.array([math.nan if x is None else x for x in doc["peak_pct_replicates"]],
                    dtype=np.float64)
    summary = PeakSummary(**peak)
    layers = doc.get("layers", [])

    def num(x) -> float:
        return math.nan if x is None else float(x)

    r_lo = r_hi = math.nan
    if "r_low" in doc and summary.max_pos_layer in layers:
        r_lo = _at_peak(layers, doc["r_low"], summary.max_pos_layer)
        r_hi = _at_peak(layers, doc["r_high"], summary.max_pos_layer)
    size = doc.get("size_b")
    return ModelPeak(str(doc["model"]), int(doc["n_layers"]), summary, reps,
                     str(doc.get("family", "")), None if size is None else float(size),
                     bool(doc.get("family_inferred", False)), num(doc.get("peak_pct_low")),
                     num(doc.get("peak_pct_high")), r_lo, r_hi)


def _float_array(values) -> np.ndarray:
    """JSON list (null = NaN, possibly nested) as a float array."""
    arr = np.array(values, dtype=object)
    return np.where(arr == None, np.nan, arr).astype(np.float64)  # noqa: E711


def uniformity_study_from_dict(doc: Mapping) -> UniformityStudy:
    """Rebuild a per-model study from UniformityStudy.to_dict() (for the cross-model figure).

    The r replicates are not in the json; r_replicates comes back with zero rows.
    """
    peak = model_peak_from_dict(doc)
    layers = tuple(int(x) for x in doc["layers"])
    return UniformityStudy(
        model=str(doc["model"]), n_layers=int(doc["n_layers"]), layers=layers,
        depth_pct=_float_array(doc["depth_pct"]), r=_float_array(doc["r"]),
        p=_float_array(doc["p"]), r_low=_float_array(doc["r_low"]),
        r_high=_float_array(doc["r_high"]), r_replicates=np.zeros((0, len(layers))),
        category_names=tuple(doc["category_names"]),
        category_ua=_float_array(doc["category_ua"]),
        category_preference=_float_array(doc["category_preference"]), peak=peak.summary,
        peak_pct_replicates=peak.peak_pct_replicates,
        peak_pct_low=math.nan if doc["peak_pct_low"] is None else float(doc["peak_pct_low"]),
        peak_pct_high=math.nan if doc["peak_pct_high"] is None else float(doc["peak_pct_high"]),
        bos_rule=str(doc["bos_rule"]), n_pairs=int(doc["n_pairs"]), n_boot=int(doc["n_boot"]),
        level=float(doc["level"]))


@dataclass(frozen=True)
class PeakStabilityVerdict:
    """Peak-depth stability across models, with the replicate distribution of the std."""

    rule: str
    threshold_pct: float
    models: tuple[dict, ...]
    peak_pcts: tuple[float, ...]
    mean_peak_pct: float
    std_peak_pct: float
    std_interval_low: float
    std_interval_high: float
    level: float
    n_boot_used: int
    verdict: str
    seed_rule_verdict: str
    reason: str
    possible_verdicts: tuple[str, ...]
    intervals_could_change_verdict: bool
    bootstrap_verdict_fractions: dict
    notes: tuple[str, ...]

    def to_dict(self) -> dict:
        return to_jsonable(self.__dict__)

    def descriptive_dict(self) -> dict:
        """The numbers without the rule's verdict (for the across-family view)."""
        keys = ("threshold_pct", "models", "peak_pcts", "mean_peak_pct", "std_peak_pct",
                "std_interval_low", "std_interval_high", "level", "n_boot_used")
        return to_jsonable({"label": ACROSS_FAMILY_LABEL,
                            "families": sorted({m.get("family", "") for m in self.models}),
                            **{k: getattr(self, k) for k in keys}})


def peak_stability_verdict(
    peaks: Sequence[ModelPeak],
    threshold_pct: float = PEAK_STD_THRESHOLD_PCT,
    level: float = 0.95,
) -> PeakStabilityVerdict:
    """STABLE if std of peak depth % < threshold, else SHIFTS; < 2 models: INCONCLUSIVE.

    Replicate b of every model is combined into one std (the per-model stages use the same seed
    and dataset, so replicate b resamples the same pairs in every model).
    """
    pcts = np.array([p.summary.max_pos_pct for p in peaks], dtype=np.float64)
    n = len(peaks)
    std = float(np.std(pcts)) if n else math.nan
    mean = float(np.mean(pcts)) if n else math.nan
    seed_verdict = (STABLE if std < threshold_pct else SHIFTS) if n else INCONCLUSIVE
    rows = tuple({"model": p.model, "family": p.family, "size_b": p.size_b,
                  "n_layers": p.n_layers, "peak_pct_low": p.peak_pct_low,
                  "peak_pct_high": p.peak_pct_high, **p.summary.to_dict()} for p in peaks)
    notes = ["The seed's rule would say STABLE for a single model (std of one value is 0)."]
    lo = hi = math.nan
    fractions = {STABLE: math.nan, SHIFTS: math.nan}
    n_used = 0
    if n >= 2:
        n_rep = min(p.peak_pct_replicates.size for p in peaks)
        if len({p.peak_pct_replicates.size for p in peaks}) > 1:
            notes.append(f"models have different replicate counts; the first {n_rep} are used")
        reps = np.stack([p.peak_pct_replicates[:n_rep] for p in peaks], axis=1)
        ok = np.all(np.isfinite(reps), axis=1)
        std_reps = np.std(reps[ok], axis=1)
        n_used = int(ok.sum())
        if n_used:
            b_lo, b_hi, _ = percentile_bounds(std_reps[:, None], level)
            lo, hi = float(b_lo[0]), float(b_hi[0])
            stable = float(np.mean(std_reps < threshold_pct))
            fractions = {STABLE: stable, SHIFTS: 1.0 - stable}
    guard = fewer_models_reason(n)
    verdict = INCONCLUSIVE if guard else seed_verdict
    if guard:
        reason = guard
        possible = (INCONCLUSIVE,)
    else:
        cmp = "<" if verdict == STABLE else ">="
        reason = f"std of peak depth {std:.2f} % {cmp} {threshold_pct} % over {n} models"
        possible_set = {seed_verdict}
        for bound in (lo, hi):
            if math.isfinite(bound):
                possible_set.add(STABLE if bound < threshold_pct else SHIFTS)
        possible = tuple(sorted(possible_set))
    return PeakStabilityVerdict(
        rule=PEAK_RULE, threshold_pct=threshold_pct, models=rows, peak_pcts=tuple(pcts.tolist()),
        mean_peak_pct=mean, std_peak_pct=std, std_interval_low=lo, std_interval_high=hi,
        level=level, n_boot_used=n_used, verdict=verdict, seed_rule_verdict=seed_verdict,
        reason=reason, possible_verdicts=possible,
        intervals_could_change_verdict=len(possible) > 1, bootstrap_verdict_fractions=fractions,
        notes=tuple(notes))


PEAK_MIN_FAMILY_SIZES = 2
PEAK_PREMISE_RULE = (
    "Peak stability (seed 003) asks whether the depth of the UA-preference correlation peak "
    "shifts with model size, across the sizes of one family (the Pythia suite). Across "
    "families, size is confounded with architecture, tokenizer and training. Premise: at least "
    "2 sizes (distinct parameter counts) of one family in the ladder. The seed's rule is "
    "applied to the models of each family that meets it (one verdict: theirs if they agree, "
    "else INCONCLUSIVE); the std over all models is descriptive only."
)


def peak_premise(members: Sequence[FamilyMember]) -> Premise:
    """Met by every family with >= 2 distinct sizes in the ladder."""
    return family_count_premise(members, PEAK_PREMISE_RULE, PEAK_MIN_FAMILY_SIZES,
                                count_sizes=True)


@dataclass(frozen=True)
class PeakStabilityReport:
    """The premise, the rule within each family that meets it, the across-family numbers
    (descriptive only) and the within-family steps of the peak depth."""

    premise: Premise
    rule: str
    threshold_pct: float
    verdict: str
    reason: str
    decided_on: tuple[str, ...]
    by_family: dict[str, PeakStabilityVerdict]
    across_family: PeakStabilityVerdict
    within_family: WithinFamily

    @property
    def intervals_could_change_verdict(self) -> bool:
        return any(v.intervals_could_change_verdict for v in self.by_family.values())

    @property
    def seed_rule_verdicts(self) -> dict[str, str]:
        return {f: v.seed_rule_verdict for f, v in self.by_family.items()}

    def to_dict(self) -> dict:
        return to_jsonable({
            "premise": self.premise.to_dict(), "rule": self.rule,
            "threshold_pct": self.threshold_pct, "verdict": self.verdict, "reason": self.reason,
            "decided_on": self.decided_on,
            "intervals_could_change_verdict": self.intervals_could_change_verdict,
            "by_family": {f: v.to_dict() for f, v in self.by_family.items()},
            "across_family": self.across_family.descriptive_dict(),
            "within_family": self.within_family.to_dict(),
        })


def peak_stability_report(
    peaks: Sequence[ModelPeak],
    threshold_pct: float = PEAK_STD_THRESHOLD_PCT,
    level: float = 0.95,
) -> PeakStabilityReport:
    """The premise on the ladder, the seed's rule within each family that meets it, the std
    over all models (descriptive), and the peak depth before and after each within-family step.
    """
    members = [FamilyMember(p.model, p.family, p.size_b, p.family_inferred) for p in peaks]
    premise = peak_premise(members)
    across = peak_stability_verdict(peaks, threshold_pct, level)
    by_family = {f: peak_stability_verdict([p for p in peaks if p.family == f], threshold_pct,
                                           level) for f in premise.decided_on}
    if not premise.met:
        verdict, reason = NOT_APPLICABLE, premise.reason
    else:
        verdict, reason = combine_family_verdicts(
            {f: (v.verdict, v.reason) for f, v in by_family.items()})
    quantities = {p.model: {
        "peak_depth_pct": Quantity(p.summary.max_pos_pct, p.peak_pct_low, p.peak_pct_high),
        "peak_r": Quantity(p.summary.max_pos_r, p.peak_r_low, p.peak_r_high),
        "peak_layer": Quantity(p.summary.max_pos_layer),
        "n_layers": Quantity(p.n_layers)} for p in peaks}
    return PeakStabilityReport(premise, PEAK_RULE, threshold_pct, verdict, reason,
                               premise.decided_on, by_family, across,
                               within_family_steps(members, quantities))
