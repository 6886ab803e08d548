"""Stage `motif_scale`: the motif study across the graph sets, under every null model (seed 000).

Reads every graph set's census.json (stage motif_census): the ladder's attribution graphs and
the imported sets, motifs.baseline compared beside them but never a scale point. Sizes and
families are the sets' facts (census.json). Per null model: profiles, the FFL backbone, trends
and adjacent-size transitions over all models (descriptive: across families size is
confounded), the within-family steps and the seed's "does it change with scale" read under the
premise of at least 2 sizes of one family (scalelens.motifs.study).

Outs under results/motifs/scale/: scale_analysis.json (keyed by null under `by_null`, with the
sets' facts, premise and reads), profiles.npz, trends.csv and transitions.csv (a null_model and
a scope column), baseline.csv, and the figures (scalelens.plots.motifs.FIGURE_NAMES). MLflow
tags: ffl_backbone.<null>, scale_read.ffl.<null>, scale_read.profile.<null>, n_caveats.<null>,
premise_met, families, synthetic. Everything says `synthetic` when any set read is synthetic.
"""

import json

import pandas as pd

from scalelens.io import save_csv, save_json, save_npz
from scalelens.motifs.set_census import SetCensus
from scalelens.motifs.study import run_motif_study
from scalelens.params import Params, as_flat_dict
from scalelens.paths import MotifPaths
from scalelens.plots.motifs import FIGURE_NAMES, plot_all
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import stage_run

OUT = MotifPaths.scale_dir


def read_census(ctx: StageContext, graph_set: str) -> SetCensus:
    """A set's census.json; a one-line error naming motif_census@<set> when it is missing."""
    path = ctx.input(MotifPaths.census_json(graph_set), "motif_census", graph_set)
    with open(path, encoding="utf-8") as f:
        return SetCensus.from_json_dict(json.load(f))


def graph_set_names(p: Params) -> list[str]:
    return list(MotifPaths.graph_sets(p.models, p.motifs.graphs_dir, p.motifs.graph_sets))


def main(ctx: StageContext) -> None:
    m = ctx.params.motifs
    files = (MotifPaths.SCALE_METRICS, *MotifPaths.SCALE_FILES)
    outs = {name: ctx.out(OUT / name) for name in files}
    figures = {name: ctx.out(OUT / f"{name}.png") for name in FIGURE_NAMES}
    censuses = {s: read_census(ctx, s) for s in graph_set_names(ctx.params)}
    study = run_motif_study(censuses, m.null_model, m.baseline or None,
                            z_threshold=m.z_threshold, min_effect_size=m.min_effect_size,
                            alpha=m.alpha)
    save_json(outs[MotifPaths.SCALE_METRICS], study.to_dict())
    save_npz(outs["profiles.npz"], **study.arrays())
    save_csv(outs["trends.csv"], pd.DataFrame(study.trend_rows()))
    save_csv(outs["transitions.csv"], pd.DataFrame(study.transition_rows()))
    save_csv(outs["baseline.csv"], pd.DataFrame(study.baseline_rows()))
    written = plot_all(study, figures)

    tags = {"params_sha256": ctx.params_sha256, "synthetic": study.synthetic,
            "synthetic_sets": ",".join(study.synthetic_sets) or "none",
            "null_models": ",".join(study.null_models), "models": ",".join(study.models),
            "baseline": study.baseline or "none",
            "families": ",".join(f"{s}:{f}" for s, f in study.families.items()),
            "premise_met": study.premise.met,
            "decided_on": ",".join(study.premise.decided_on) or "none"}
    metrics = {}
    for null, read in study.by_null.items():
        tags[f"ffl_backbone.{null}"] = read.analysis.ffl.verdict
        tags[f"n_transitions.{null}"] = len(read.analysis.transitions)
        for q, v in read.questions.items():
            tags[f"scale_read.{q}.{null}"] = v.verdict
        tags[f"n_caveats.{null}"] = len(read.questions["ffl"].caveats)
        for s in read.analysis.ffl.per_model:
            metrics[f"ffl_mean_z.{null}.{s.model}"] = s.mean_z
            metrics[f"ffl_pct_enriched.{null}.{s.model}"] = s.pct_enriched
    for name, facts in study.sets.items():
        for k in ("faithfulness", "faithfulness_random", "influence_kept"):
            metrics[f"{k}.{name}"] = facts.quality.get(k)
    with stage_run("motif_scale", None, {"motifs": as_flat_dict(m)}, tags) as run:
        run.log_metrics(metrics)
        for path in written.values():
            run.log_artifact(path, artifact_path="figures")
        run.log_artifact(outs[MotifPaths.SCALE_METRICS])


if __name__ == "__main__":
    run_stage("motif_scale", main, per_model=False)
