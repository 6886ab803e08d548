"""Stage `motif_scale`: profiles, trends, phase transitions, similarity, FFL backbone, baseline.

Reads every graph set's census.json; model sizes come from the registry. Outs under
results/motifs/scale/: scale_analysis.json, profiles.npz, trends.csv, transitions.csv,
baseline.csv (when a baseline is declared) and the figures.
"""

import dataclasses
import json

import pandas as pd

from scalelens.errors import ScalelensError
from scalelens.io import save_csv, save_json, save_npz
from scalelens.models.registry import get_spec
from scalelens.motifs import GraphMotifResult, run_scale_analysis
from scalelens.params import as_flat_dict
from scalelens.paths import MotifPaths, require_input
from scalelens.plots.motifs import FIGURE_NAMES, placeholder_figure, plot_all
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import stage_run

OUT = MotifPaths.scale_dir


def _results(graph_set: str) -> list[GraphMotifResult]:
    path = require_input(MotifPaths.census_json(graph_set), "motif_census", graph_set)
    with open(path, encoding="utf-8") as f:
        return [GraphMotifResult.from_json_dict(d) for d in json.load(f)]


def main(ctx: StageContext) -> None:
    m = ctx.params.motifs
    if m.baseline and m.baseline not in m.graph_sets:
        raise ScalelensError(f"motifs.baseline {m.baseline!r} is not one of motifs.graph_sets")
    models = [s for s in m.graph_sets if s != m.baseline]
    outs = {name: ctx.out(OUT / name) for name in (
        "scale_analysis.json", "profiles.npz", "trends.csv", "transitions.csv", "baseline.csv")}
    figures = {name: ctx.out(OUT / f"{name}.png") for name in FIGURE_NAMES}
    analysis = run_scale_analysis(
        {k: _results(k) for k in models}, {k: get_spec(k).n_params for k in models},
        baseline_results=_results(m.baseline) if m.baseline else None,
        baseline_name=m.baseline or "baseline", z_threshold=m.z_threshold,
        min_effect_size=m.min_effect_size, alpha=m.alpha)
    save_json(outs["scale_analysis.json"], analysis.to_json_dict())
    save_npz(outs["profiles.npz"], **analysis.arrays())
    save_csv(outs["trends.csv"], pd.DataFrame([dataclasses.asdict(t) for t in analysis.trends]))
    save_csv(outs["transitions.csv"],
             pd.DataFrame([dataclasses.asdict(e) for e in analysis.effects]))
    baseline_rows = analysis.baseline.rows() if m.baseline else []
    save_csv(outs["baseline.csv"], pd.DataFrame(baseline_rows, columns=None if baseline_rows
                                                else ["label", "note"]))
    written = plot_all(analysis, figures)
    for name in set(figures) - set(written):  # a figure that does not apply (e.g. no baseline)
        written[name] = placeholder_figure(figures[name], f"{name}: not applicable "
                                           "(motifs.baseline is empty)")
    tags = {"params_sha256": ctx.params_sha256, "ffl_backbone": analysis.ffl.verdict,
            "null_model": analysis.null_model, "n_transitions": len(analysis.transitions)}
    with stage_run("motif_scale", None, {"motifs": as_flat_dict(m)}, tags) as run:
        for s in analysis.ffl.per_model:
            run.log_metrics({f"ffl_mean_z.{s.model}": s.mean_z,
                             f"ffl_pct_enriched.{s.model}": s.pct_enriched})
        for path in written.values():
            run.log_artifact(path, artifact_path="figures")
        run.log_artifact(outs["scale_analysis.json"])


if __name__ == "__main__":
    run_stage("motif_scale", main, per_model=False)
