"""Cross-scale analysis of motif profiles: trends, phase transitions, similarity, baseline.

Rules (all documented defaults, all overridable):

- Trend of a class: least squares of Z against log10(n_params) (scipy.stats.linregress) and
  Spearman's rho. ``unit="model"`` (default) fits one point per model (its mean Z), the
  conservative choice since scale varies between models, not graphs; ``unit="graph"`` fits one
  point per graph. Direction: "increasing" if p < alpha and slope > 0, "decreasing" if p < alpha
  and slope < 0, else "flat". Constant Z (e.g. a zero-variance class) gives slope 0, R^2 0,
  p 1, rho 0, Spearman p 1. With fewer than 3 points (or one distinct size) p-values are NaN
  and the direction is "flat".
- Phase transition between adjacent sizes (models sorted by n_params): Cohen's d =
  (mean_after - mean_before) / pooled sd, pooled sd = sqrt(((n1-1)s1^2 + (n2-1)s2^2)/(n1+n2-2))
  over per-graph Z. A transition is |d| >= min_effect_size. If the pooled sd is 0, d = 0 when
  the means are equal and +-inf (a transition) when they differ; with n1 + n2 < 3 d is NaN
  (never a transition).
- Similarity: cosine of the models' mean SP vectors over the connected classes; a zero vector
  has similarity 0 with every other model and 1 with itself. Clustering: scipy average linkage
  on the cosine distance 1 - similarity (clipped at 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from scalelens.motifs.analysis import GraphMotifResult
from scalelens.motifs.census import CONNECTED_LABELS, TRIAD_LABELS, label_index
from scalelens.motifs.profiles import (
    BackboneCheck,
    ModelProfile,
    build_model_profile,
    ffl_backbone,
    sample_std,
)
from scalelens.motifs.zscores import Z_THRESHOLD

TREND_DIRECTIONS: tuple[str, ...] = ("increasing", "decreasing", "flat")


def format_params(n_params: float) -> str:
    """Short size label: 2.7e8 -> '270M', 1e9 -> '1B', 4e9 -> '4B', 1.2e10 -> '12B'."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n_params >= scale:
            return f"{n_params / scale:.3g}{suffix}"
    return f"{n_params:.3g}"


def order_by_size(models: Sequence[str], n_params: Mapping[str, float]) -> tuple[str, ...]:
    """Models sorted by parameter count (ties by name); raises naming models without a count."""
    missing = sorted(m for m in models if m not in n_params)
    if missing:
        raise ValueError(
            f"no parameter count for model(s) {missing}; pass n_params={{model: count}} for each"
        )
    bad = sorted(m for m in models if not (n_params[m] > 0 and math.isfinite(n_params[m])))
    if bad:
        raise ValueError(f"parameter counts must be positive and finite; bad for {bad}")
    return tuple(sorted(models, key=lambda m: (n_params[m], m)))


@dataclass(frozen=True)
class ScaleTrend:
    """Linear and rank trend of one class's Z against log10(n_params)."""

    label: str
    slope: float  # Z per decade of parameters
    intercept: float
    r_squared: float
    p_value: float
    spearman_rho: float
    spearman_p: float
    direction: str
    n_points: int


def fit_trend(label: str, x: np.ndarray, y: np.ndarray, alpha: float = 0.05) -> ScaleTrend:
    """ScaleTrend of y against x (x = log10 params) under the module's direction rule."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = int(x.size)
    nan = float("nan")
    if n == 0 or np.unique(x).size < 2:
        return ScaleTrend(label, 0.0, float(y.mean()) if n else nan, nan, nan, nan, nan, "flat", n)
    if np.all(y == y[0]):
        return ScaleTrend(label, 0.0, float(y[0]), 0.0, 1.0, 0.0, 1.0, "flat", n)
    fit = stats.linregress(x, y)
    if n < 3:
        return ScaleTrend(
            label,
            float(fit.slope),
            float(fit.intercept),
            float(fit.rvalue**2),
            nan,
            nan,
            nan,
            "flat",
            n,
        )
    rho, rho_p = stats.spearmanr(x, y)
    p = float(fit.pvalue)
    direction = "flat"
    if p < alpha:
        direction = "increasing" if fit.slope > 0 else "decreasing"
    return ScaleTrend(
        label,
        float(fit.slope),
        float(fit.intercept),
        float(fit.rvalue**2),
        p,
        float(rho),
        float(rho_p),
        direction,
        n,
    )


def scale_trends(
    profiles: Mapping[str, ModelProfile],
    n_params: Mapping[str, float],
    labels: Sequence[str] = TRIAD_LABELS,
    unit: str = "model",
    alpha: float = 0.05,
) -> tuple[ScaleTrend, ...]:
    """One ScaleTrend per label of Z against log10(n_params) (unit 'model' or 'graph')."""
    if unit not in ("model", "graph"):
        raise ValueError(f"unit must be 'model' or 'graph', got {unit!r}")
    models = order_by_size(list(profiles), n_params)
    trends = []
    for label in labels:
        k = label_index(label)
        if unit == "model":
            x = np.log10([n_params[m] for m in models])
            y = np.array([profiles[m].overall.mean_z[k] for m in models])
        else:
            x = np.concatenate(
                [np.full(profiles[m].n_graphs, np.log10(n_params[m])) for m in models]
            )
            y = np.concatenate([profiles[m].z[:, k] for m in models])
        trends.append(fit_trend(label, x, y, alpha))
    return tuple(trends)


@dataclass(frozen=True)
class AdjacentEffect:
    """Change of one class's Z between two adjacent model sizes (Cohen's d on per-graph Z)."""

    label: str
    from_model: str
    to_model: str
    from_params: float
    to_params: float
    before_mean: float
    after_mean: float
    pooled_std: float
    cohens_d: float
    is_transition: bool


def cohens_d(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """(d, pooled sd) of after vs before; zero-sd and tiny-sample rules as in the module doc."""
    n1, n2 = len(before), len(after)
    diff = float(np.mean(after) - np.mean(before))
    if n1 + n2 < 3:
        return float("nan"), float("nan")
    s1 = float(sample_std(np.asarray(before)[:, None])[0])
    s2 = float(sample_std(np.asarray(after)[:, None])[0])
    pooled = math.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / (n1 + n2 - 2))
    if pooled == 0.0:
        return (0.0 if diff == 0.0 else math.copysign(math.inf, diff)), 0.0
    return diff / pooled, pooled


def adjacent_effects(
    profiles: Mapping[str, ModelProfile],
    n_params: Mapping[str, float],
    labels: Sequence[str] = CONNECTED_LABELS,
    min_effect_size: float = 1.0,
) -> tuple[AdjacentEffect, ...]:
    """Cohen's d for every label between every pair of adjacent sizes; flags transitions."""
    if min_effect_size <= 0:
        raise ValueError(f"min_effect_size must be > 0, got {min_effect_size}")
    models = order_by_size(list(profiles), n_params)
    out = []
    for lo, hi in zip(models[:-1], models[1:]):
        for label in labels:
            before, after = profiles[lo].z_of(label), profiles[hi].z_of(label)
            d, pooled = cohens_d(before, after)
            out.append(
                AdjacentEffect(
                    label=label,
                    from_model=lo,
                    to_model=hi,
                    from_params=float(n_params[lo]),
                    to_params=float(n_params[hi]),
                    before_mean=float(before.mean()),
                    after_mean=float(after.mean()),
                    pooled_std=pooled,
                    cohens_d=d,
                    is_transition=bool(not math.isnan(d) and abs(d) >= min_effect_size),
                )
            )
    return tuple(out)


def cosine_similarity_matrix(vectors: np.ndarray) -> np.ndarray:
    """(k, k) cosine similarity of the rows; zero rows: 0 to others, 1 to themselves."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    unit = np.divide(vectors, norms[:, None], out=np.zeros_like(vectors), where=norms[:, None] > 0)
    sim = np.clip(unit @ unit.T, -1.0, 1.0)
    np.fill_diagonal(sim, 1.0)
    return sim


@dataclass(frozen=True, eq=False)
class ModelClustering:
    """Cosine similarity of mean SP vectors and average-linkage clustering of the models."""

    models: tuple[str, ...]
    labels: tuple[str, ...]
    similarity: np.ndarray  # (k, k)
    linkage: np.ndarray  # (k-1, 4) scipy linkage matrix; (0, 4) for one model
    leaf_order: tuple[str, ...]


def cluster_models(
    profiles: Mapping[str, ModelProfile],
    order: Sequence[str] | None = None,
    labels: Sequence[str] = CONNECTED_LABELS,
) -> ModelClustering:
    """Cosine similarity of models' mean SP (over labels) and average linkage on 1 - cosine."""
    models = tuple(order or sorted(profiles))
    idx = [label_index(lab) for lab in labels]
    vectors = np.stack([profiles[m].overall.mean_sp[idx] for m in models])
    sim = cosine_similarity_matrix(vectors)
    if len(models) < 2:
        return ModelClustering(models, tuple(labels), sim, np.zeros((0, 4)), models)
    dist = np.clip(1.0 - sim, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    link = linkage(squareform(dist, checks=False), method="average")
    leaves = tuple(models[i] for i in leaves_list(link))
    return ModelClustering(models, tuple(labels), sim, link, leaves)


@dataclass(frozen=True, eq=False)
class BaselineComparison:
    """Mean Z per class of a baseline graph set beside each model's (labels x models)."""

    baseline_name: str
    labels: tuple[str, ...]
    models: tuple[str, ...]
    baseline_mean_z: np.ndarray  # (L,)
    baseline_std_z: np.ndarray  # (L,)
    baseline_n_graphs: int
    model_mean_z: np.ndarray  # (k, L)
    model_std_z: np.ndarray  # (k, L)

    def rows(self) -> list[dict]:
        """One dict per label: label, baseline mean Z, then each model's mean Z (CSV-ready)."""
        out = []
        for j, label in enumerate(self.labels):
            row = {"label": label, self.baseline_name: float(self.baseline_mean_z[j])}
            row.update({m: float(self.model_mean_z[i, j]) for i, m in enumerate(self.models)})
            out.append(row)
        return out


def compare_to_baseline(
    baseline: ModelProfile,
    profiles: Mapping[str, ModelProfile],
    order: Sequence[str] | None = None,
    labels: Sequence[str] = CONNECTED_LABELS,
) -> BaselineComparison:
    """Tabulate the baseline's mean/std Z per class beside each model's."""
    models = tuple(order or sorted(profiles))
    idx = [label_index(lab) for lab in labels]
    if any(profiles[m].null_model != baseline.null_model for m in models):
        raise ValueError(
            f"baseline {baseline.model!r} used null model {baseline.null_model!r} but some models "
            "used another; Z-scores are only comparable under the same null model"
        )
    return BaselineComparison(
        baseline_name=baseline.model,
        labels=tuple(labels),
        models=models,
        baseline_mean_z=baseline.overall.mean_z[idx],
        baseline_std_z=baseline.overall.std_z[idx],
        baseline_n_graphs=baseline.n_graphs,
        model_mean_z=np.stack([profiles[m].overall.mean_z[idx] for m in models]),
        model_std_z=np.stack([profiles[m].overall.std_z[idx] for m in models]),
    )


@dataclass(frozen=True, eq=False)
class ScaleAnalysis:
    """Everything the scale stage writes; per-model arrays are in `models` order (by size)."""

    models: tuple[str, ...]
    n_params: np.ndarray  # (k,)
    null_model: str
    profiles: Mapping[str, ModelProfile]
    tasks: tuple[str, ...]
    mean_z: np.ndarray  # (k, 16)
    std_z: np.ndarray
    mean_sp: np.ndarray
    std_sp: np.ndarray
    task_mean_z: np.ndarray  # (k, n_tasks, 16); NaN where a model has no graph of a task
    task_std_z: np.ndarray
    task_n_graphs: np.ndarray  # (k, n_tasks) int
    trends: tuple[ScaleTrend, ...]
    effects: tuple[AdjacentEffect, ...]
    ffl: BackboneCheck
    clustering: ModelClustering
    baseline: BaselineComparison | None
    settings: Mapping[str, object]

    @property
    def log10_params(self) -> np.ndarray:
        """log10 of the parameter counts, (k,)."""
        return np.log10(self.n_params)

    @property
    def transitions(self) -> tuple[AdjacentEffect, ...]:
        """Adjacent-size changes with |Cohen's d| >= min_effect_size, largest first."""
        found = [e for e in self.effects if e.is_transition]
        return tuple(sorted(found, key=lambda e: -abs(e.cohens_d)))

    def arrays(self) -> dict[str, np.ndarray]:
        """Numeric arrays for an npz file (allow_pickle=False safe: no object arrays)."""
        out = {
            "models": np.array(self.models),
            "labels": np.array(TRIAD_LABELS),
            "tasks": np.array(self.tasks, dtype=str),
            "n_params": self.n_params,
            "mean_z": self.mean_z,
            "std_z": self.std_z,
            "mean_sp": self.mean_sp,
            "std_sp": self.std_sp,
            "task_mean_z": self.task_mean_z,
            "task_std_z": self.task_std_z,
            "task_n_graphs": self.task_n_graphs,
            "similarity": self.clustering.similarity,
            "linkage": self.clustering.linkage,
        }
        for m in self.models:
            out[f"z__{m}"] = self.profiles[m].z
            out[f"sp__{m}"] = self.profiles[m].sp
        return out

    def to_json_dict(self) -> dict:
        """JSON-ready summary (non-finite floats become None)."""
        out = {
            "models": list(self.models),
            "n_params": dict(zip(self.models, self.n_params.tolist())),
            "null_model": self.null_model,
            "tasks": list(self.tasks),
            "n_graphs": {m: self.profiles[m].n_graphs for m in self.models},
            "mean_z": {m: _labelled(self.mean_z[i]) for i, m in enumerate(self.models)},
            "std_z": {m: _labelled(self.std_z[i]) for i, m in enumerate(self.models)},
            "mean_sp": {
                m: _labelled(self.mean_sp[i], CONNECTED_LABELS) for i, m in enumerate(self.models)
            },
            "trends": [t.__dict__ for t in self.trends],
            "transitions": [e.__dict__ for e in self.transitions],
            "ffl_backbone": {
                "label": self.ffl.label,
                "z_threshold": self.ffl.z_threshold,
                "universal": self.ffl.universal,
                "verdict": self.ffl.verdict,
                "per_model": [s.__dict__ for s in self.ffl.per_model],
            },
            "similarity": {
                "models": list(self.clustering.models),
                "cosine": self.clustering.similarity.tolist(),
                "linkage": self.clustering.linkage.tolist(),
                "leaf_order": list(self.clustering.leaf_order),
            },
            "baseline": None
            if self.baseline is None
            else {
                "name": self.baseline.baseline_name,
                "n_graphs": self.baseline.baseline_n_graphs,
                "rows": self.baseline.rows(),
            },
            "settings": dict(self.settings),
        }
        return json_safe(out)


def _labelled(values: np.ndarray, labels: Sequence[str] = TRIAD_LABELS) -> dict[str, float]:
    return {lab: float(values[label_index(lab)]) for lab in labels}


def json_safe(obj):
    """Copy of obj with NaN/inf floats replaced by None and numpy scalars made plain."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _task_arrays(profiles, models, tasks):
    k, t = len(models), len(tasks)
    mean = np.full((k, t, len(TRIAD_LABELS)), np.nan)
    std = np.full_like(mean, np.nan)
    counts = np.zeros((k, t), dtype=np.int64)
    for i, m in enumerate(models):
        for j, task in enumerate(tasks):
            s = profiles[m].by_task.get(task)
            if s is not None:
                mean[i, j], std[i, j], counts[i, j] = s.mean_z, s.std_z, s.n_graphs
    return mean, std, counts


def run_scale_analysis(
    results_by_model: Mapping[str, Sequence[GraphMotifResult]],
    n_params: Mapping[str, float],
    *,
    baseline_results: Sequence[GraphMotifResult] | None = None,
    baseline_name: str = "baseline",
    z_threshold: float = Z_THRESHOLD,
    min_effect_size: float = 1.0,
    alpha: float = 0.05,
    trend_unit: str = "model",
) -> ScaleAnalysis:
    """Profiles, trends, transitions, FFL backbone, similarity and baseline table for all models."""
    if not results_by_model:
        raise ValueError("run_scale_analysis needs per-graph results for at least one model")
    models = order_by_size(list(results_by_model), n_params)
    profiles = {m: build_model_profile(m, results_by_model[m]) for m in models}
    nulls = sorted({p.null_model for p in profiles.values()})
    if len(nulls) > 1:
        raise ValueError(
            f"models were censused under different null models {nulls}; rerun with one"
        )
    tasks = tuple(sorted({t for p in profiles.values() for t in p.tasks}))
    task_mean, task_std, task_n = _task_arrays(profiles, models, tasks)
    baseline = None
    if baseline_results:
        base_profile = build_model_profile(baseline_name, baseline_results)
        baseline = compare_to_baseline(base_profile, profiles, models)
    return ScaleAnalysis(
        models=models,
        n_params=np.array([float(n_params[m]) for m in models]),
        null_model=nulls[0],
        profiles=profiles,
        tasks=tasks,
        mean_z=np.stack([profiles[m].overall.mean_z for m in models]),
        std_z=np.stack([profiles[m].overall.std_z for m in models]),
        mean_sp=np.stack([profiles[m].overall.mean_sp for m in models]),
        std_sp=np.stack([profiles[m].overall.std_sp for m in models]),
        task_mean_z=task_mean,
        task_std_z=task_std,
        task_n_graphs=task_n,
        trends=scale_trends(profiles, n_params, TRIAD_LABELS, trend_unit, alpha),
        effects=adjacent_effects(profiles, n_params, CONNECTED_LABELS, min_effect_size),
        ffl=ffl_backbone(profiles, z_threshold, order=models),
        clustering=cluster_models(profiles, models),
        baseline=baseline,
        settings={
            "z_threshold": z_threshold,
            "min_effect_size": min_effect_size,
            "alpha": alpha,
            "trend_unit": trend_unit,
        },
    )
