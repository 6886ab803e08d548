"""Per-task and per-model motif profiles (mean and std of Z and SP over graphs) and the FFL check.

Stds over graphs use ddof=1 (sample std) and are 0 for a single graph. The FFL (030T) backbone:
a model is FFL-enriched when its mean Z(030T) over all its graphs is >= the threshold (default 2);
the FFL is *universal* when every model is FFL-enriched. The share of single graphs with
Z(030T) >= threshold is reported beside it (``pct_enriched``) but does not enter the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scalelens.motifs.analysis import GraphMotifResult
from scalelens.motifs.census import MOTIF_FFL, label_index
from scalelens.motifs.zscores import Z_THRESHOLD


@dataclass(frozen=True, eq=False)
class ProfileSummary:
    """Mean and std over graphs of Z and SP, each (16,) in TRIAD_LABELS order."""

    n_graphs: int
    mean_z: np.ndarray
    std_z: np.ndarray
    mean_sp: np.ndarray
    std_sp: np.ndarray


def sample_std(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Std with ddof=1 along axis; 0 where there is a single value."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[axis] < 2:
        return np.zeros(np.delete(values.shape, axis))
    return values.std(axis=axis, ddof=1)


def summarize_profiles(z: np.ndarray, sp: np.ndarray) -> ProfileSummary:
    """ProfileSummary of per-graph Z and SP matrices (n_graphs, 16)."""
    z = np.asarray(z, dtype=np.float64)
    sp = np.asarray(sp, dtype=np.float64)
    if z.ndim != 2 or z.shape != sp.shape or z.shape[0] == 0:
        raise ValueError(
            f"z and sp must be equal (n_graphs>=1, n_classes) arrays, got {z.shape}, {sp.shape}"
        )
    return ProfileSummary(
        n_graphs=z.shape[0],
        mean_z=z.mean(axis=0),
        std_z=sample_std(z),
        mean_sp=sp.mean(axis=0),
        std_sp=sample_std(sp),
    )


@dataclass(frozen=True, eq=False)
class ModelProfile:
    """All graphs of one model: per-graph Z/SP (n_graphs, 16), overall and per-task summaries."""

    model: str
    graph_ids: tuple[str, ...]
    tasks: tuple[str, ...]  # task of each graph
    null_model: str
    z: np.ndarray
    sp: np.ndarray
    overall: ProfileSummary
    by_task: Mapping[str, ProfileSummary]

    @property
    def n_graphs(self) -> int:
        """Number of graphs in the profile."""
        return len(self.graph_ids)

    def z_of(self, label: str) -> np.ndarray:
        """Per-graph Z of one class, by MAN label."""
        return self.z[:, label_index(label)]


def build_model_profile(model: str, results: Sequence[GraphMotifResult]) -> ModelProfile:
    """ModelProfile from the per-graph results of one model (all must share one null model)."""
    if not results:
        raise ValueError(
            f"model {model!r} has no graph results; run the census on its graphs first"
        )
    nulls = sorted({r.null_model for r in results})
    if len(nulls) > 1:
        raise ValueError(
            f"model {model!r} mixes null models {nulls}; profile one null model at a time"
        )
    z = np.stack([r.z for r in results])
    sp = np.stack([r.sp for r in results])
    tasks = tuple(r.task for r in results)
    by_task = {
        task: summarize_profiles(z[mask], sp[mask])
        for task in sorted(set(tasks))
        for mask in [np.array([t == task for t in tasks])]
    }
    return ModelProfile(
        model=model,
        graph_ids=tuple(r.graph_id for r in results),
        tasks=tasks,
        null_model=nulls[0],
        z=z,
        sp=sp,
        overall=summarize_profiles(z, sp),
        by_task=by_task,
    )


@dataclass(frozen=True)
class MotifEnrichmentStats:
    """One model's Z statistics for one motif over its graphs."""

    model: str
    mean_z: float
    std_z: float
    pct_enriched: float  # % of graphs with Z >= threshold
    n_graphs: int
    enriched: bool  # mean_z >= threshold


@dataclass(frozen=True)
class BackboneCheck:
    """Is a motif (default the FFL, 030T) enriched in every model?"""

    label: str
    z_threshold: float
    per_model: tuple[MotifEnrichmentStats, ...]
    universal: bool

    @property
    def verdict(self) -> str:
        """'universal' or 'not universal' (a short tag for tracking)."""
        return "universal" if self.universal else "not universal"


def ffl_backbone(
    profiles: Mapping[str, ModelProfile],
    z_threshold: float = Z_THRESHOLD,
    label: str = MOTIF_FFL,
    order: Sequence[str] | None = None,
) -> BackboneCheck:
    """Per-model mean/std Z, % graphs enriched and the universal verdict for `label`."""
    if not profiles:
        raise ValueError("ffl_backbone needs at least one model profile")
    stats = []
    for model in order or sorted(profiles):
        zc = profiles[model].z_of(label)
        mean = float(zc.mean())
        stats.append(
            MotifEnrichmentStats(
                model=model,
                mean_z=mean,
                std_z=float(sample_std(zc[:, None])[0]),
                pct_enriched=float(100.0 * np.mean(zc >= z_threshold)),
                n_graphs=int(zc.size),
                enriched=bool(mean >= z_threshold),
            )
        )
    return BackboneCheck(
        label=label,
        z_threshold=float(z_threshold),
        per_model=tuple(stats),
        universal=all(s.enriched for s in stats),
    )
