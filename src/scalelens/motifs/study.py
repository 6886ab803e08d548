"""The motif study across scales, under every null model, read with the sweeps' premise logic.

Per null model, ``run_scale_analysis`` over the scale sets (every censused set but the
baseline, ordered by size): profiles, FFL backbone, trends, adjacent-size transitions, cosine
similarity, baseline table. Then the seed's question, "does the structural grammar of
computation change as models get bigger?", read as the sweeps read theirs
(``scalelens.sweeps.verdicts``):

- Across families, size is confounded with architecture, tokenizer, training data and, here,
  with the attribution graphs themselves (graph size, attribution budget per model): the trends
  and adjacent-size transitions over all models are reported as descriptive only
  (``ACROSS_FAMILY_LABEL``).
- Premise (``MOTIF_PREMISE_RULE``): at least 2 sizes (distinct parameter counts) of one family
  among the scale sets. Without it every question is NOT_APPLICABLE with the reason.
- Within each family that meets it, the seed's phase-transition rule between consecutive sizes
  (Cohen's d on per-graph Z, a transition when |d| >= min_effect_size): question ``ffl``
  (030T) is CHANGES_WITH_SCALE when some step is a transition for 030T, else
  NO_CHANGE_DETECTED; question ``profile`` the same over the 13 connected classes. Families that
  meet the premise and disagree give INCONCLUSIVE (``combine_family_verdicts``).
- Within-family steps (``within_family_steps``): per step, the mean Z of the key motifs with a
  95% t interval over the graphs, and the graphs' quality (faithfulness, its random baseline,
  influence kept, edges) before and after, so a change of Z can be read beside a change of the
  graphs; ``step_caveats`` names the steps whose graphs change size or are barely faithful.

SYNTHETIC: the study is synthetic when any set it reads (baseline included) is; every view says
so (``synthetic`` and ``synthetic_sets``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from scalelens.motifs.census import (
    CONNECTED_LABELS,
    KEY_MOTIFS,
    MOTIF_FFL,
    TRIAD_LABELS,
    label_index,
)
from scalelens.motifs.scale import (
    AdjacentEffect,
    ScaleAnalysis,
    ScaleTrend,
    adjacent_effects,
    json_safe,
    run_scale_analysis,
    scale_trends,
)
from scalelens.motifs.set_census import NULL_DESCRIPTIONS, SetCensus
from scalelens.motifs.sets import GraphSetError, GraphSetFacts
from scalelens.sweeps.verdicts import (
    ACROSS_FAMILY_LABEL,
    NOT_APPLICABLE,
    FamilyMember,
    Premise,
    Quantity,
    WithinFamily,
    combine_family_verdicts,
    family_count_premise,
    family_groups,
    within_family_steps,
)

STUDY = "Motif census of attribution graphs across model scales (seed 000)"
CHANGES = "CHANGES_WITH_SCALE"
NO_CHANGE = "NO_CHANGE_DETECTED"
MIN_FAMILY_SIZES = 2
QUESTIONS: dict[str, tuple[str, ...]] = {"ffl": (MOTIF_FFL,), "profile": CONNECTED_LABELS}
QUESTION_TEXT = {
    "ffl": "does the FFL (030T) Z-score change between consecutive sizes of one family?",
    "profile": "does the Z-score of any connected triad class change between consecutive sizes "
               "of one family?",
}
MOTIF_PREMISE_RULE = (
    "Seed 000 asks whether the motif profile of attribution graphs changes as models get bigger, "
    "across the sizes of one family (Gemma 3, 270M-27B). Across families, size is confounded "
    "with architecture, tokenizer and training data, and with the graphs themselves (their size "
    "and attribution budget differ per model). Premise: at least 2 sizes (distinct parameter "
    "counts) of one family among the scale sets. The seed's phase-transition rule (|Cohen's d| "
    ">= min_effect_size on per-graph Z between consecutive sizes) is applied within each family "
    "that meets it; trends and transitions over all models are descriptive only."
)
#: Graph quality entering the within-family steps (facts.quality keys).
STEP_QUALITY = ("faithfulness", "faithfulness_random", "influence_kept", "n_edges")
#: A set whose mean faithfulness beats its random baseline by less than this gets a caveat.
FAITHFULNESS_MARGIN = 0.1


def step_caveats(within: WithinFamily, decided: Sequence[str]) -> tuple[str, ...]:
    """What, in the decided families' steps, a change (or no change) of Z may be read as:

    - the graphs' size changes: the 95% intervals of the census edge counts do not overlap (Z
      grows with graph size, so a change of Z may be one of the graphs, not of the model);
    - a set's graphs are not faithful: mean faithfulness - mean random baseline <
      FAITHFULNESS_MARGIN (the graphs explain the output little better than random units).
    """
    out = []
    for step in within.steps:
        if step.family not in decided:
            continue
        edges = step.changes.get("census_edges")
        if edges is not None and edges.intervals_overlap is False:
            out.append(f"graph size changes in {step.before} -> {step.after}: "
                       f"{edges.before.point:.0f} -> {edges.after.point:.0f} edges per graph "
                       "(Z grows with graph size)")
        for name, side in ((step.before, "before"), (step.after, "after")):
            faith = step.changes.get("quality.faithfulness")
            rand = step.changes.get("quality.faithfulness_random")
            if faith is None or rand is None:
                continue
            f, r = getattr(faith, side).point, getattr(rand, side).point
            if math.isfinite(f) and math.isfinite(r) and f - r < FAITHFULNESS_MARGIN:
                out.append(f"{name}'s graphs are barely faithful: faithfulness {f:.3f} vs "
                           f"{r:.3f} for random units (margin < {FAITHFULNESS_MARGIN:g})")
    return tuple(dict.fromkeys(out))


def mean_interval(values: Sequence[float], level: float = 0.95) -> Quantity:
    """Mean with its t interval (mean +- t_{(1+level)/2, n-1} sd / sqrt(n)); no interval for
    fewer than 2 values."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return Quantity.of(math.nan)
    mean = float(x.mean())
    if x.size < 2:
        return Quantity.of(mean)
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Quantity.of(mean, mean - half, mean + half)


@dataclass(frozen=True)
class ScaleQuestion:
    """One question of the seed under one null: the verdict, why, and each decided family's."""

    question: str
    labels: tuple[str, ...]
    verdict: str
    reason: str
    by_family: Mapping[str, tuple[str, str]]
    caveats: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"question": QUESTION_TEXT[self.question], "labels": list(self.labels),
                "verdict": self.verdict, "reason": self.reason, "caveats": list(self.caveats),
                "by_family": {f: {"verdict": v, "reason": r}
                              for f, (v, r) in self.by_family.items()}}


def _step_text(e: AdjacentEffect) -> str:
    return (f"{e.label} {e.from_model} -> {e.to_model}: mean Z {e.before_mean:+.2f} -> "
            f"{e.after_mean:+.2f}, d = {e.cohens_d:+.2f}")


def family_read(effects: Sequence[AdjacentEffect], labels: Sequence[str],
                min_effect_size: float) -> tuple[str, str]:
    """(verdict, reason) of one family from its consecutive-size effects restricted to labels."""
    steps = [e for e in effects if e.label in labels and e.from_params != e.to_params]
    if not steps:
        return NOT_APPLICABLE, "no step between two distinct sizes"
    hits = sorted((e for e in steps if e.is_transition), key=lambda e: -abs(e.cohens_d))
    if hits:
        shown = "; ".join(_step_text(e) for e in hits[:4])
        more = f"; and {len(hits) - 4} more" if len(hits) > 4 else ""
        return CHANGES, (f"{len(hits)} of {len(steps)} (step, class) pairs have |d| >= "
                         f"{min_effect_size:g}: {shown}{more}")
    finite = [e for e in steps if math.isfinite(e.cohens_d)]
    largest = max(finite, key=lambda e: abs(e.cohens_d)) if finite else None
    tail = f"; largest: {_step_text(largest)}" if largest else ""
    return NO_CHANGE, (f"no (step, class) pair of {len(steps)} has |d| >= "
                       f"{min_effect_size:g}{tail}")


@dataclass(frozen=True, eq=False)
class NullScaleRead:
    """Everything under one null model: the analysis, the within-family steps and the reads."""

    null_model: str
    analysis: ScaleAnalysis
    families: Mapping[str, str]  # scale set -> family
    within_family: WithinFamily
    within_effects: Mapping[str, tuple[AdjacentEffect, ...]]  # family -> consecutive-size steps
    family_trends: Mapping[str, tuple[ScaleTrend, ...]]  # families with >= 2 sizes
    questions: Mapping[str, ScaleQuestion]
    graph_edges: Mapping[str, np.ndarray]  # scale set -> edges of each graph (profile order)

    def to_dict(self) -> dict:
        a = self.analysis.to_json_dict()
        trends, transitions = a.pop("trends"), a.pop("transitions")
        a.pop("settings")
        return json_safe({
            **a, "description": NULL_DESCRIPTIONS[self.null_model],
            "families": dict(self.families),
            "scale_read": {q: v.to_dict() for q, v in self.questions.items()},
            "across_family": {"label": ACROSS_FAMILY_LABEL, "trends": trends,
                              "transitions": transitions,
                              "n_adjacent_effects": len(self.analysis.effects)},
            "within_family": {
                **self.within_family.to_dict(),
                "transitions": [{"family": f, **dataclasses.asdict(e)}
                                for f, es in self.within_effects.items() for e in es
                                if e.is_transition],
                "trends": {f: [dataclasses.asdict(t) for t in ts]
                           for f, ts in self.family_trends.items()},
            },
        })


@dataclass(frozen=True, eq=False)
class MotifScaleStudy:
    """The scale stage's result: the sets' facts, the premise and one read per null model."""

    sets: Mapping[str, GraphSetFacts]  # every set read, the baseline included
    models: tuple[str, ...]  # the scale sets, by size
    baseline: str | None
    null_models: tuple[str, ...]
    premise: Premise
    by_null: Mapping[str, NullScaleRead]
    settings: Mapping[str, object]

    @property
    def synthetic_sets(self) -> tuple[str, ...]:
        return tuple(name for name, f in self.sets.items() if f.synthetic)

    @property
    def synthetic(self) -> bool:
        return bool(self.synthetic_sets)

    @property
    def families(self) -> dict[str, str]:
        return {m: self.sets[m].family for m in self.models}

    def to_dict(self) -> dict:
        """scale_analysis.json: a summary per null first, then everything keyed by null."""
        return json_safe({
            "study": STUDY, "synthetic": self.synthetic,
            "synthetic_sets": list(self.synthetic_sets),
            "null_models": list(self.null_models), "models": list(self.models),
            "baseline": self.baseline, "families": self.families,
            "graph_sets": {n: f.to_dict() for n, f in self.sets.items()},
            "premise": self.premise.to_dict(),
            "ffl_backbone": {n: r.analysis.ffl.verdict for n, r in self.by_null.items()},
            "scale_read": {n: {q: v.verdict for q, v in r.questions.items()}
                           for n, r in self.by_null.items()},
            "by_null": {n: r.to_dict() for n, r in self.by_null.items()},
            "settings": dict(self.settings),
        })

    def trend_rows(self) -> list[dict]:
        """trends.csv: per null and class, the across-family trend (descriptive) and each
        family's own trend (families with >= 2 sizes)."""
        rows = []
        for null, read in self.by_null.items():
            scopes = [("across_family", "", self.models, read.analysis.trends)]
            scopes += [("within_family", f, tuple(m for m in self.models
                                                  if read.families[m] == f), ts)
                       for f, ts in read.family_trends.items()]
            for scope, family, models, trends in scopes:
                for t in trends:
                    rows.append({"null_model": null, "scope": scope, "family": family,
                                 "models": " ".join(models), **dataclasses.asdict(t),
                                 "synthetic": self.synthetic})
        return rows

    def transition_rows(self) -> list[dict]:
        """transitions.csv: every adjacent-size step over all models (across_family) and every
        consecutive-size step within a family (within_family), per null and connected class."""
        rows = []
        for null, read in self.by_null.items():
            fam = read.families
            steps = [("across_family", "", e) for e in read.analysis.effects]
            steps += [("within_family", f, e) for f, es in read.within_effects.items()
                      for e in es]
            for scope, family, e in steps:
                rows.append({"null_model": null, "scope": scope, "family": family,
                             "from_family": fam[e.from_model], "to_family": fam[e.to_model],
                             **dataclasses.asdict(e), "synthetic": self.synthetic})
        return rows

    def baseline_rows(self) -> list[dict]:
        """baseline.csv: per null and connected class, the baseline's mean Z beside each
        model's; one row per null saying there is none when no baseline is declared."""
        rows = []
        for null, read in self.by_null.items():
            if read.analysis.baseline is None:
                rows.append({"null_model": null, "label": "", "note": "no baseline: "
                             "motifs.baseline is empty", "synthetic": self.synthetic})
                continue
            rows += [{"null_model": null, **row, "synthetic": self.synthetic}
                     for row in read.analysis.baseline.rows()]
        return rows

    def arrays(self) -> dict[str, np.ndarray]:
        """profiles.npz: '<null>__<array>' for every ScaleAnalysis array and
        '<null>__n_edges__<set>' (edges per graph), the models, their families, the null models
        and the synthetic mark."""
        out = {f"{null}__{k}": v for null, read in self.by_null.items()
               for k, v in read.analysis.arrays().items()}
        out.update({f"{null}__n_edges__{m}": e for null, read in self.by_null.items()
                    for m, e in read.graph_edges.items()})
        out.update(models=np.array(self.models), families=np.array(
            [self.sets[m].family for m in self.models]), null_models=np.array(self.null_models),
            synthetic=np.array(self.synthetic), labels=np.array(TRIAD_LABELS))
        return out


def _within(read_profiles, members, n_params, min_effect_size, alpha):
    """Consecutive-size effects per family (>= 2 models) and trends (>= 2 sizes)."""
    effects, trends = {}, {}
    for family, group in family_groups(members).items():
        if len(group) < 2:
            continue
        names = [m.model for m in group]
        steps = []
        for a, b in zip(names[:-1], names[1:]):
            steps += adjacent_effects({a: read_profiles[a], b: read_profiles[b]}, n_params,
                                      CONNECTED_LABELS, min_effect_size)
        effects[family] = tuple(steps)
        if len({n_params[m] for m in names}) >= MIN_FAMILY_SIZES:
            trends[family] = scale_trends({m: read_profiles[m] for m in names}, n_params,
                                          TRIAD_LABELS, "model", alpha)
    return effects, trends


def _step_quantities(censuses: Mapping[str, SetCensus], null: str,
                     models: Sequence[str]) -> dict[str, dict[str, Quantity]]:
    out = {}
    for m in models:
        results = censuses[m].results(null)
        q = {f"mean_z.{lab}": mean_interval([r.z[label_index(lab)] for r in results])
             for lab in KEY_MOTIFS}
        quality = censuses[m].facts.quality
        q.update({f"quality.{k}": Quantity.of(quality.get(k)) for k in STEP_QUALITY})
        q["census_edges"] = mean_interval([r.n_edges for r in results])
        out[m] = q
    return out


def run_motif_study(censuses: Mapping[str, SetCensus], null_models: Sequence[str],
                    baseline: str | None = None, *, z_threshold: float = 2.0,
                    min_effect_size: float = 1.0, alpha: float = 0.05) -> MotifScaleStudy:
    """Per null: the scale analysis, the within-family steps and the seed's questions read under
    the premise (module docstring)."""
    if baseline and baseline not in censuses:
        raise GraphSetError(f"baseline {baseline!r} is not a censused graph set")
    scale_sets = [s for s in censuses if s != baseline]
    if not scale_sets:
        raise GraphSetError("no graph set besides the baseline: nothing to put on a scale axis")
    unsized = [s for s in scale_sets if censuses[s].facts.n_params is None]
    if unsized:
        why = censuses[unsized[0]].facts.n_params_source
        raise GraphSetError(f"graph set(s) {unsized} have no model size ({why}); only the "
                            "baseline (motifs.baseline) may go without one")
    n_params = {s: float(censuses[s].facts.n_params) for s in scale_sets}
    members = [FamilyMember(s, censuses[s].facts.family, censuses[s].facts.size_b,
                            censuses[s].facts.family_inferred) for s in scale_sets]
    premise = family_count_premise(members, MOTIF_PREMISE_RULE, MIN_FAMILY_SIZES,
                                   count_sizes=True)
    by_null = {}
    for null in null_models:
        analysis = run_scale_analysis(
            {s: censuses[s].results(null) for s in scale_sets}, n_params,
            baseline_results=censuses[baseline].results(null) if baseline else None,
            baseline_name=baseline or "baseline", z_threshold=z_threshold,
            min_effect_size=min_effect_size, alpha=alpha)
        effects, trends = _within(analysis.profiles, members, n_params, min_effect_size, alpha)
        within = within_family_steps(members, _step_quantities(censuses, null, analysis.models))
        caveats = step_caveats(within, premise.decided_on)
        questions = {}
        for q, labels in QUESTIONS.items():
            by_family = {f: family_read(effects.get(f, ()), labels, min_effect_size)
                         for f in premise.decided_on}
            if not premise.met:
                verdict, reason = NOT_APPLICABLE, premise.reason
            else:
                verdict, reason = combine_family_verdicts(by_family)
            questions[q] = ScaleQuestion(q, tuple(labels), verdict, reason, by_family, caveats)
        by_null[null] = NullScaleRead(
            null, analysis, {m: censuses[m].facts.family for m in analysis.models}, within,
            effects, trends, questions,
            {m: np.array([r.n_edges for r in censuses[m].results(null)], dtype=np.int64)
             for m in analysis.models})
    first = by_null[null_models[0]].analysis
    return MotifScaleStudy(
        sets={s: censuses[s].facts for s in censuses}, models=first.models,
        baseline=baseline or None, null_models=tuple(null_models), premise=premise,
        by_null=by_null,
        settings={"z_threshold": z_threshold, "min_effect_size": min_effect_size,
                  "alpha": alpha, "trend_unit": first.settings["trend_unit"],
                  "census": {s: c.settings.to_dict() for s, c in censuses.items()}})
