"""Stage `rank`: syn-red ranking of every head and its layer profile, per model.

Ins: results/phiid/<model>_pairwise_phiid.npz (stage phiid) and results/activations/<model>.json
(layers x heads). Outs: results/phiid/<model>_head_rankings.csv (one row per head),
results/phiid/<model>_layer_profile.json (mean score per layer against normalised depth),
the metrics json results/phiid/<model>_rank_metrics.json and figure 2b
results/phiid/<model>_fig2b_syn_red_grid.png. Verdict tag: middle_more_synergistic (the middle
third of layers has a higher mean syn-red score than both the first and the last third).
"""

import json

import numpy as np

from scalelens.errors import ScalelensError
from scalelens.io import save_csv, save_json
from scalelens.params import as_flat_dict
from scalelens.phiid import load_result
from scalelens.plots.phiid import plot_syn_red_grid
from scalelens.ranking import LayerProfile, layer_profile, rank_heads, rankings_frame
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import stage_run


def profile_dict(profile: LayerProfile, model: str, unit: str) -> dict:
    """The layer profile as json: per-layer arrays plus the peak and thirds summary."""
    return {
        "model": model, "unit_of_phiid": unit, "score": "mean normalised syn-red score per layer",
        "n_layers": len(profile.layers), "layers": profile.layers, "depth": profile.depth,
        "mean_score": profile.mean_score, "n_heads_scored": profile.n_heads_scored,
        **profile_metrics(profile),
    }


def profile_metrics(profile: LayerProfile) -> dict:
    """Peak and thirds of the layer profile (the stage's metrics)."""
    first, middle, last = profile.layers_per_third
    return {
        "peak_layer": profile.peak_layer, "peak_depth": profile.peak_depth,
        "first_third_mean": profile.first_third_mean,
        "middle_third_mean": profile.middle_third_mean,
        "last_third_mean": profile.last_third_mean,
        "outer_thirds_max": max(profile.first_third_mean, profile.last_third_mean),
        "middle_margin": profile.middle_margin,
        "middle_more_synergistic": profile.middle_more_synergistic,
        "layers_first_third": first, "layers_middle_third": middle, "layers_last_third": last,
    }


def main(ctx: StageContext) -> None:
    p = ctx.params
    mp = ctx.paths
    facts = json.loads(ctx.input(mp.activations_json, "extract").read_text(encoding="utf-8"))
    result = load_result(ctx.input(mp.phiid_npz, "phiid"))
    csv_path = ctx.out(mp.rankings_csv)
    profile_path = ctx.out(mp.layer_profile_json)
    metrics_path = ctx.out(mp.rank_metrics)
    fig_path = ctx.out(mp.rank_fig)

    try:
        ranking = rank_heads(result.sts, result.rtr, facts["n_layers"], facts["n_heads"])
        profile = layer_profile(ranking)
    except ValueError as e:  # shape mismatch, < 3 layers, or no head with a defined score
        raise ScalelensError(f"{ctx.model}: cannot rank heads: {e}") from None
    save_csv(csv_path, rankings_frame(ranking, result.unit))
    save_json(profile_path, profile_dict(profile, ctx.model, result.unit))
    metrics = {**profile_metrics(profile),
               "n_heads_ranked": int(np.isfinite(ranking.syn_red_score).sum()),
               "n_heads": len(ranking.layer)}
    save_json(metrics_path, metrics)
    verdict = "middle third more synergistic" if profile.middle_more_synergistic else (
        "middle third NOT more synergistic")
    plot_syn_red_grid(ranking, fig_path, title=(
        f"{ctx.model}: syn-red score per head ({result.settings.estimator}-"
        f"{result.settings.redundancy})\n"
        f"profile peak at depth {profile.peak_depth:.2f}; {verdict}"))

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed, "unit": result.unit,
            "estimator": result.settings.estimator, "redundancy": result.settings.redundancy,
            "input_hash": result.input_hash,
            "prompt_md5." + p.extract.prompt_set: facts["prompt_md5"],
            "middle_more_synergistic": profile.middle_more_synergistic}
    with stage_run("rank", ctx.model, {"phiid": as_flat_dict(p.phiid)}, tags) as run:
        run.log_metrics(metrics)
        for path in (csv_path, profile_path, fig_path):
            run.log_artifact(path)


if __name__ == "__main__":
    run_stage("rank", main)
