"""Stage `uniformity_verdict`: is the UA-correlation peak at one depth across models (seed 003)?

Ins: results/sweeps/uniformity/<model>.json for every model in params.yaml (stage uniformity).
Outs: results/verdicts/uniformity_verdict.json (per model: max r and its depth, min r and its
depth, final-layer r, sign changes with their depth; the std of the peak depth across models with
its bootstrap interval; the verdict STABLE / SHIFTS and whether the intervals could change it) and
the figure results/figures/sweeps/uniformity.png (r by absolute layer and by % of depth).
MLflow tag: verdict.peak_stability.
"""

from __future__ import annotations

from scalelens.errors import ScalelensError
from scalelens.io import save_json
from scalelens.params import as_flat_dict
from scalelens.paths import LadderPaths, model_paths
from scalelens.plots.sweeps import plot_uniformity
from scalelens.stage import StageContext, read_upstream_json, run_stage
from scalelens.sweeps import uniformity as U
from scalelens.tracking import stage_run


def per_model_result(model: str) -> dict:
    """A model's json from stage uniformity; a clear error when it has not been run."""
    return read_upstream_json(model_paths(model).sweep_json("uniformity"), "uniformity", model)


def figure_title(v: U.PeakStabilityVerdict) -> str:
    """The verdict, its reason, and what the bootstrap says about it."""
    title = f"Uniformity asymmetry by depth: peak {v.verdict} ({v.reason})"
    if v.n_boot_used:
        share = v.bootstrap_verdict_fractions.get(U.STABLE, float("nan"))
        change = "could" if v.intervals_could_change_verdict else "could not"
        title += (f"\nbootstrap: std of peak depth {v.std_interval_low:.1f} - "
                  f"{v.std_interval_high:.1f} %, STABLE in {share:.0%} of replicates; "
                  f"the intervals {change} change the verdict")
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
    studies = [U.uniformity_study_from_dict(d) for d in docs.values()]
    verdict = U.peak_stability_verdict([U.model_peak(s) for s in studies],
                                       threshold_pct=u.peak_std_threshold_pct)
    doc = {
        "study": "Uniformity asymmetry by layer: does the peak depth shift with scale? (seed 003)",
        **verdict.to_dict(),
        "per_model": {m: {"layers": d["layers"], "depth_pct": d["depth_pct"], "r": d["r"],
                          "p": d["p"], "r_low": d["r_low"], "r_high": d["r_high"],
                          "peak_pct_low": d["peak_pct_low"], "peak_pct_high": d["peak_pct_high"],
                          "bos_rule": d["bos_rule"]} for m, d in docs.items()},
        "dataset": u.dataset, "dataset_md5": md5s.pop() if md5s else None,
        "inputs": {m: model_paths(m).sweep_json("uniformity") for m in p.models},
    }
    save_json(json_path, doc)
    plot_uniformity(studies, fig_path, verdict, title=figure_title(verdict))

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed, "boot_seed": u.boot_seed,
            "models": ",".join(p.models), "verdict.peak_stability": verdict.verdict,
            "seed_rule_verdict.peak_stability": verdict.seed_rule_verdict,
            "intervals_could_change_verdict.peak_stability":
                verdict.intervals_could_change_verdict,
            "dataset_md5": doc["dataset_md5"]}
    metrics = {f"peak_depth_pct.{s.model}": s.peak.max_pos_pct for s in studies}
    metrics["std_peak_depth_pct"] = verdict.std_peak_pct
    with stage_run("uniformity_verdict", None, {"models": ",".join(p.models),
                                                "uniformity": as_flat_dict(u)}, tags) as run:
        run.log_metrics(metrics)
        run.log_artifact(fig_path)
        run.log_artifact(json_path)


if __name__ == "__main__":
    run_stage("uniformity_verdict", main, per_model=False)
