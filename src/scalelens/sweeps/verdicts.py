"""Helpers shared by the sweep verdicts: JSON views, Pearson r (plain, batched, permutation p),
model families, premises and within-family steps.

A verdict json must be readable by a person: plain floats (NaN written as null), lists, and
strings; no numpy scalars.

A cross-scale verdict is issued only where its premise holds (`Premise`, checked on the ladder
before the rule); otherwise it is NOT_APPLICABLE with the reason and no tier. Every model is
grouped by its family (`model_family`: registry, hub id, local folder or config), and every
verdict reports the steps between sizes of one family (`within_family_steps`) beside the
across-family numbers, which are descriptive only.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from scalelens.errors import ScalelensError
from scalelens.io import jsonable
from scalelens.paths import model_slug
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
    # scipy.stats costs about 1 s at import: only the stages that call this pay it
    from scipy import stats

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


# --------------------------------------------------------------------------------------------
# Model families, premises, within-family steps
#
# These live here, beside the other helpers every verdict shares, rather than in a module of
# their own: a new module would enter every sweep stage's import closure, which the generated
# dvc.yaml lists as code deps.
# --------------------------------------------------------------------------------------------

NOT_APPLICABLE = "NOT_APPLICABLE"

ACROSS_FAMILY_LABEL = (
    "descriptive only: across families, size is confounded with architecture, tokenizer and "
    "training data, so no verdict and no tier is drawn from these numbers"
)

WITHIN_FAMILY_DEFINITION = (
    "steps between consecutive sizes of one family (the ladder's models of that family ordered "
    "by parameter count): each quantity before and after the step with its 95% interval where "
    "one exists, the change (after - before), and whether the two intervals overlap (null "
    "where a value has no interval)"
)

# transformers model types that the registry files under another family name. Used only when a
# family is inferred from a config: Phi-3 (phi3) is in the registry's family "phi" with Phi-1.5
# and Phi-2 (phi); Gemma 3 1B (gemma3_text) is in family "gemma3" with the multimodal 4B-27B.
MODEL_TYPE_FAMILY = {"phi3": "phi", "gemma3_text": "gemma3"}

_HF_CACHE_REPO = re.compile(r"^models--([^/]+?)--(.+)$")


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """The family of one model and how it was read (registry, hub id, folder, config)."""

    family: str
    source: str
    inferred: bool
    model_type: str | None = None
    hub_id: str | None = None
    registry_key: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _registry_by_hub_id(hub_id: str, registry: Mapping) -> object | None:
    wanted = hub_id.strip().lower()
    for spec in registry.values():
        if spec.hub_id.lower() == wanted:
            return spec
    return None


def _hub_id_of_folder(folder: Path) -> tuple[str | None, str]:
    """A hub id the folder names: the hub cache layout in its path, else its config's record."""
    for part in reversed(folder.resolve().parts):
        m = _HF_CACHE_REPO.match(part)
        if m:
            return f"{m.group(1)}/{m.group(2)}", f"the hub cache folder {part}"
    config = folder / "config.json"
    if config.is_file():
        try:
            name = json.loads(config.read_text(encoding="utf-8")).get("_name_or_path")
        except (OSError, ValueError, AttributeError):
            name = None
        if isinstance(name, str) and name.count("/") == 1 and not Path(name).exists():
            return name, "_name_or_path in the folder's config.json"
    return None, ""


def _family_from_model_type(model_type: str | None, what: str) -> ModelFamily:
    if not model_type:
        return ModelFamily("unknown", f"{what}; no config model_type to infer a family from",
                           True)
    family = MODEL_TYPE_FAMILY.get(model_type, model_type)
    alias = f" (filed as family {family!r} in the registry)" if family != model_type else ""
    return ModelFamily(
        family,
        f"{what}; inferred from the config's model_type {model_type!r}{alias}, which names an "
        "architecture that several families can share",
        True, model_type=model_type)


def model_family(key: str, model_type: str | None = None,
                 registry: Mapping | None = None) -> ModelFamily:
    """The family of a model key; `model_type` is the loaded config's (for non-registry keys).

    Registry key: the registry's family. Hub id `org/name`: the family of the registry entry
    with that hub id. Local folder: the registry entry of the hub id its path (hub cache
    layout) or its config.json (`_name_or_path`) names. Otherwise, and for `tiny:<arch>`: the
    config's model_type. Everything but a registry key or a registry hub id is marked inferred.
    """
    if registry is None:
        from scalelens.models.registry import REGISTRY as registry  # noqa: N811
    spec = registry.get(key)
    if spec is not None:
        return ModelFamily(spec.family, "registry key", False, spec.architecture, spec.hub_id,
                           spec.key)
    if key.startswith("tiny:"):
        return _family_from_model_type(model_type, f"tiny random model {key}")
    folder = Path(key)
    if folder.is_dir():
        hub_id, where = _hub_id_of_folder(folder)
        spec = _registry_by_hub_id(hub_id, registry) if hub_id else None
        if spec is not None:
            return ModelFamily(spec.family, f"local folder; hub id {hub_id} read from {where}, "
                               f"registry entry {spec.key}", True, model_type or spec.architecture,
                               hub_id, spec.key)
        what = "local folder" + (f" (hub id {hub_id} from {where} is not in the registry)"
                                 if hub_id else "")
        return _family_from_model_type(model_type, what)
    if "/" in key:
        spec = _registry_by_hub_id(key, registry)
        if spec is not None:
            return ModelFamily(spec.family, f"registry entry {spec.key} with this hub id", False,
                               model_type or spec.architecture, key, spec.key)
        fam = _family_from_model_type(model_type, "hub id not in the registry")
        return dataclasses.replace(fam, hub_id=key)
    return _family_from_model_type(model_type, f"key {key!r} not in the registry")


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """What a per-model json records so the verdicts can group models: family and size."""

    model: str
    family: ModelFamily
    n_params: float
    n_params_source: str

    def to_dict(self) -> dict:
        return {"family": self.family.family, "family_source": self.family.source,
                "family_inferred": self.family.inferred, "model_type": self.family.model_type,
                "hub_id": self.family.hub_id, "registry_key": self.family.registry_key,
                "n_params": self.n_params, "n_params_source": self.n_params_source,
                "size_b": self.n_params / 1e9}


def identify_model(key: str, model_type: str | None, counted_params: int,
                   registry: Mapping | None = None) -> ModelIdentity:
    """Family and size of a loaded model: the registry's nominal size where it has an entry."""
    if registry is None:
        from scalelens.models.registry import REGISTRY as registry  # noqa: N811
    family = model_family(key, model_type, registry)
    if family.registry_key is not None:
        source = ("registry (nominal size)" if family.registry_key == key
                  else f"registry entry {family.registry_key} (nominal size)")
        return ModelIdentity(key, family, float(registry[family.registry_key].n_params), source)
    return ModelIdentity(key, family, float(counted_params),
                         "counted from the loaded weights (no registry entry)")


def identify_loaded_model(lm) -> ModelIdentity:
    """identify_model for a scalelens.models.LoadedModel (its key, config and weights)."""
    counted = sum(int(p.numel()) for p in lm.model.parameters())
    return identify_model(lm.key, getattr(lm.model.config, "model_type", None), counted)


@dataclasses.dataclass(frozen=True)
class FamilyMember:
    """A model of the ladder as the verdicts group it."""

    model: str
    family: str
    size_b: float | None = None
    family_inferred: bool = False


class MissingFamilyError(ScalelensError):
    """A per-model json written before families were recorded."""


def family_member_from_doc(model: str, doc: Mapping, stage: str) -> FamilyMember:
    """The family and size a per-model stage recorded (ModelIdentity.to_dict keys)."""
    if "family" not in doc:
        raise MissingFamilyError(
            f"{model}: its {stage} result records no model family (written before families "
            f"were recorded); rerun it: dvc repro -f {stage}@{model_slug(model)}")
    size = doc.get("size_b")
    return FamilyMember(model, str(doc["family"]), None if size is None else float(size),
                        bool(doc.get("family_inferred", False)))


def family_groups(members: Sequence[FamilyMember]) -> dict[str, tuple[FamilyMember, ...]]:
    """Members by family (families in ladder order), each family ordered by size then name."""
    groups: dict[str, list[FamilyMember]] = {}
    for m in members:
        groups.setdefault(m.family, []).append(m)
    return {f: tuple(sorted(g, key=lambda m: (m.size_b is None, m.size_b or 0.0, m.model)))
            for f, g in groups.items()}


@dataclasses.dataclass(frozen=True)
class Premise:
    """What must hold for a verdict to be issued, checked on the ladder before the rule."""

    rule: str
    checked: Mapping[str, object]
    met: bool
    reason: str
    decided_on: tuple[str, ...]

    def to_dict(self) -> dict:
        return to_jsonable(dataclasses.asdict(self))


def family_count_premise(members: Sequence[FamilyMember], rule: str, minimum: int,
                         count_sizes: bool) -> Premise:
    """Met by every family with >= minimum models (or distinct sizes); those are decided_on.

    With count_sizes a model without a recorded size does not count as a size.
    """
    groups = family_groups(members)
    unit = "sizes" if count_sizes else "models"
    counts = {f: len({m.size_b for m in g if m.size_b is not None}) if count_sizes else len(g)
              for f, g in groups.items()}
    qualifying = tuple(f for f, c in counts.items() if c >= minimum)
    checked = {
        "needed_per_family": minimum, "counted": unit, f"n_{unit}_per_family": counts,
        "models_per_family": {f: [m.model for m in g] for f, g in groups.items()},
        "sizes_b_per_family": {f: [m.size_b for m in g] for f, g in groups.items()},
        "inferred_families": sorted({m.family for m in members if m.family_inferred}),
        "qualifying_families": list(qualifying),
    }
    listing = ", ".join(f"{f} {c}" for f, c in counts.items()) or "no models"
    if qualifying:
        met_by = ", ".join(f"{f} ({counts[f]} {unit})" for f in qualifying)
        where = "this family" if len(qualifying) == 1 else "each of these families"
        reason = f"met by {met_by}; the rule is applied within {where}"
    else:
        reason = (f"no family has {minimum} or more {unit} in the ladder ({unit} per family: "
                  f"{listing})")
    return Premise(rule, checked, bool(qualifying), reason, qualifying)


def combine_family_verdicts(by_family: Mapping[str, tuple[str, str]]) -> tuple[str, str]:
    """One (verdict, reason) from each decided family's (verdict, reason).

    One family: its verdict. Several that agree: their verdict. Several that disagree:
    INCONCLUSIVE, naming each family's verdict.
    """
    if not by_family:
        raise ValueError("no family to combine: check the premise first")
    if len(by_family) == 1:
        family, (verdict, reason) = next(iter(by_family.items()))
        return verdict, f"decided within family {family}: {reason}"
    verdicts = {v for v, _ in by_family.values()}
    if len(verdicts) == 1:
        verdict = verdicts.pop()
        return verdict, (f"every family that meets the premise gives {verdict}: "
                         + "; ".join(f"{f}: {r}" for f, (_, r) in by_family.items()))
    return INCONCLUSIVE, ("the families that meet the premise disagree: "
                          + "; ".join(f"{f}: {v} ({r})" for f, (v, r) in by_family.items()))


@dataclasses.dataclass(frozen=True)
class Quantity:
    """A value with its 95% interval (NaN bounds where it has none)."""

    point: float
    low: float = math.nan
    high: float = math.nan

    @classmethod
    def of(cls, point, low=None, high=None) -> Quantity:
        def num(x) -> float:
            return math.nan if x is None else float(x)

        return cls(num(point), num(low), num(high))

    def to_dict(self) -> dict:
        return to_jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class StepChange:
    """One quantity before and after a within-family step."""

    before: Quantity
    after: Quantity

    @property
    def delta(self) -> float:
        return self.after.point - self.before.point

    @property
    def intervals_overlap(self) -> bool | None:
        bounds = (self.before.low, self.before.high, self.after.low, self.after.high)
        if not all(math.isfinite(b) for b in bounds):
            return None
        return bool(self.before.low <= self.after.high and self.after.low <= self.before.high)

    def to_dict(self) -> dict:
        return {"before": self.before.to_dict(), "after": self.after.to_dict(),
                "delta": to_jsonable(self.delta), "intervals_overlap": self.intervals_overlap}


@dataclasses.dataclass(frozen=True)
class FamilyStep:
    """From one size of a family to the next."""

    family: str
    before: str
    after: str
    size_before_b: float | None
    size_after_b: float | None
    changes: Mapping[str, StepChange]

    def to_dict(self) -> dict:
        return to_jsonable({"family": self.family, "before": self.before, "after": self.after,
                            "size_before_b": self.size_before_b, "size_after_b": self.size_after_b,
                            "changes": {k: c.to_dict() for k, c in self.changes.items()}})


@dataclasses.dataclass(frozen=True)
class WithinFamily:
    """Every within-family step of a ladder, with the families and their members by size."""

    families: Mapping[str, tuple[str, ...]]
    steps: tuple[FamilyStep, ...]
    definition: str = WITHIN_FAMILY_DEFINITION

    def to_dict(self) -> dict:
        return to_jsonable({"definition": self.definition, "families": self.families,
                            "n_steps": len(self.steps),
                            "steps": [s.to_dict() for s in self.steps]})


def within_family_steps(members: Sequence[FamilyMember],
                        quantities: Mapping[str, Mapping[str, Quantity]]) -> WithinFamily:
    """Steps between consecutive sizes of each family; quantities[model][name] per model."""
    groups = family_groups(members)
    steps = []
    for family, group in groups.items():
        for a, b in itertools.pairwise(group):
            names = [n for n in quantities.get(a.model, {}) if n in quantities.get(b.model, {})]
            steps.append(FamilyStep(
                family, a.model, b.model, a.size_b, b.size_b,
                {n: StepChange(quantities[a.model][n], quantities[b.model][n]) for n in names}))
    return WithinFamily({f: tuple(m.model for m in g) for f, g in groups.items()}, tuple(steps))
