"""Stage `uniformity_verdict`: does the UA-correlation peak depth shift with size within a family?

Seed 003. Ins: results/sweeps/uniformity/<model>.json for every model in params.yaml (stage
uniformity). Outs: results/verdicts/uniformity_verdict.json (the premise and whether the ladder
meets it; the seed's rule applied within each family that meets it: per model max r and its
depth, min r, final-layer r, sign changes, the std of the peak depth with its bootstrap interval,
STABLE / SHIFTS and whether the intervals could change it; the std over all models, labelled
descriptive only; the within-family steps of the peak depth) and the figure
results/figures/sweeps/uniformity.png (r by absolute layer and by % of depth, colour by family,
and the peak depth against size with each family's sizes joined). MLflow tags:
verdict.peak_stability, premise_met.peak_stability.

Without 2 sizes of one family in the ladder the verdict is NOT_APPLICABLE; every per-model number
and the figure still come out.
"""

from __future__ import annotations

import math

from scalelens.errors import ScalelensError
from scalelens.io import save_json
from scalelens.params import as_flat_dict
from scalelens.paths import LadderPaths, model_paths
from scalelens.plots.sweeps import plot_uniformity
from scalelens.stage import StageContext, read_upstream_json, run_stage
from scalelens.sweeps import uniformity as U
from scalelens.sweeps.verdicts import family_member_from_doc
from scalelens.tracking import stage_run


def per_model_result(model: str) -> dict:
    """A model's json from stage uniformity; a clear error when it has not been run."""
    return read_upstream_json(model_paths(model).sweep_json("uniformity"), "uniformity", model)


def figure_title(report: U.PeakStabilityReport) -> str:
    """The verdict, its reason, and what the bootstrap says about each decided family."""
    title = f"Uniformity asymmetry by depth: peak {report.verdict} ({report.reason})"
    for family, v in report.by_family.items():
        if v.n_boot_used:
            share = v.bootstrap_verdict_fractions.get(U.STABLE, float("nan"))
            change = "could" if v.intervals_could_change_verdict else "could not"
            title += (f"\n{family}: bootstrap std of peak depth {v.std_interval_low:.1f} - "
                      f"{v.std_interval_high:.1f} %, STABLE in {share:.0%} of replicates; "
                      f"the intervals {change} change the verdict")
    across = report.across_family
    if math.isfinite(across.std_peak_pct):
        title += (f"\nall {len(across.models)} models (across families, descriptive only): "
                  f"std of peak depth {across.std_peak_pct:.1f} %")
    return title


def main(ctx: StageContext) -> None:
    p, u = ctx.params, ctx.params.uniformity
    json_path = ctx.out(LadderPaths.verdict_json("uniformity"))
    fig_path = ctx.out(LadderPaths.verdict_fig("uniformity"))
    docs = {m: per_model_result(m) for m in p.models}
    md5s = {d["dataset_md5"] for d in docs.values()}
    if len(md5s) > 1:
        raise ScalelensError("the per-model uniformity results come from different datasets "
                             f"(md5 {', '.join(sorted(md5s))}): rerun `dvc repro uniformity`")
    members = {m: family_member_from_doc(m, d, "uniformity") for m, d in docs.items()}
    studies = [U.uniformity_study_from_dict(d) for d in docs.values()]
    report = U.peak_stability_report([U.model_peak_from_dict(d) for d in docs.values()],
                                     threshold_pct=u.peak_std_threshold_pct)
    doc = {
        "study": "Uniformity asymmetry by layer: does the peak depth shift with scale? (seed 003)",
        **report.to_dict(),
        "per_model": {m: {"family": d["family"], "family_source": d["family_source"],
                          "family_inferred": d["family_inferred"], "size_b": d["size_b"],
                          "n_params_source": d["n_params_source"], "layers": d["layers"],
                          "depth_pct": d["depth_pct"], "r": d["r"], "p": d["p"],
                          "r_low": d["r_low"], "r_high": d["r_high"],
                          "peak_pct_low": d["peak_pct_low"], "peak_pct_high": d["peak_pct_high"],
                          "bos_rule": d["bos_rule"]} for m, d in docs.items()},
        "dataset": u.dataset, "dataset_md5": md5s.pop() if md5s else None,
        "inputs": {m: model_paths(m).sweep_json("uniformity") for m in p.models},
    }
    save_json(json_path, doc)
    plot_uniformity(studies, fig_path, report, title=figure_title(report))

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed, "boot_seed": u.boot_seed,
            "models": ",".join(p.models), "verdict.peak_stability": report.verdict,
            "premise_met.peak_stability": report.premise.met,
            "decided_on.peak_stability": ",".join(report.decided_on) or "none",
            "families": ",".join(f"{m}:{x.family}" for m, x in members.items()),
            "seed_rule_verdict.peak_stability": ",".join(
                f"{f}:{v}" for f, v in report.seed_rule_verdicts.items())
                or "none (premise not met)",
            "intervals_could_change_verdict.peak_stability":
                report.intervals_could_change_verdict,
            "dataset_md5": doc["dataset_md5"]}
    metrics = {f"peak_depth_pct.{s.model}": s.peak.max_pos_pct for s in studies}
    metrics["across_family.std_peak_depth_pct"] = report.across_family.std_peak_pct
    for family, v in report.by_family.items():
        metrics[f"{family}.std_peak_depth_pct"] = v.std_peak_pct
    with stage_run("uniformity_verdict", None, {"models": ",".join(p.models),
                                                "uniformity": as_flat_dict(u)}, tags) as run:
        run.log_metrics(metrics)
        run.log_artifact(fig_path)
        run.log_artifact(json_path)


if __name__ == "__main__":
    run_stage("uniformity_verdict", main, per_model=False)
