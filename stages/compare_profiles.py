"""Stage `compare_profiles`: the syn-red layer profile of every model on normalised depth (fig. 2c).

Ins: results/phiid/<model>_head_rankings.csv for every model in params.yaml (stage rank); each
profile is recomputed from the csv's normalised scores (scalelens.ranking), so it is the rank
stage's profile. Outs: results/compare_profiles/fig2c_layer_profiles.png and the metrics json
results/compare_profiles/layer_profiles.json (per model: family, peak depth, thirds means,
verdict); the figure colours each model by its family.
"""

from scalelens.errors import ScalelensError
from scalelens.io import save_json
from scalelens.params import as_flat_dict
from scalelens.paths import LadderPaths, model_paths, model_slug, require_input
from scalelens.plots.phiid import plot_layer_profiles
from scalelens.ranking import LayerProfile, layer_profile_from_scores, read_rankings
from scalelens.stage import StageContext, run_stage
from scalelens.sweeps.verdicts import model_family
from scalelens.tracking import stage_run


def profile_from_csv(model: str) -> tuple[LayerProfile, dict]:
    """A model's layer profile from its rankings csv, and the csv's shape facts."""
    path = require_input(model_paths(model).rankings_csv, "rank", model)
    frame = read_rankings(path)
    n_layers, n_heads = int(frame["layer"].max()) + 1, int(frame["head"].max()) + 1
    flat = frame["layer"] * n_heads + frame["head"]
    if len(frame) != n_layers * n_heads or not (flat.to_numpy() == range(len(frame))).all():
        raise ScalelensError(f"{path}: rows are not every (layer, head) in flat order; rerun "
                             f"`dvc repro rank@{model_slug(model)}`")
    try:
        profile = layer_profile_from_scores(
            frame["syn_red_score_normalised"].to_numpy(dtype=float), n_layers, n_heads)
    except ValueError as e:
        raise ScalelensError(f"{model}: no layer profile: {e}") from None
    return profile, {"n_layers": n_layers, "n_heads_per_layer": n_heads,
                     "unit_of_phiid": str(frame["unit"].iloc[0])}


def model_summary(profile: LayerProfile, facts: dict) -> dict:
    return {**facts, "family": model_family(facts["model"]).family,
            "peak_layer": profile.peak_layer, "peak_depth": profile.peak_depth,
            "first_third_mean": profile.first_third_mean,
            "middle_third_mean": profile.middle_third_mean,
            "last_third_mean": profile.last_third_mean, "middle_margin": profile.middle_margin,
            "middle_more_synergistic": profile.middle_more_synergistic}


def main(ctx: StageContext) -> None:
    p = ctx.params
    fig_path = ctx.out(LadderPaths.compare_profiles_fig)
    json_path = ctx.out(LadderPaths.compare_profiles_json)
    profiles, summaries = {}, {}
    for model in p.models:
        profiles[model], facts = profile_from_csv(model)
        summaries[model] = model_summary(profiles[model], {"model": model, **facts})
    n_middle = sum(s["middle_more_synergistic"] for s in summaries.values())
    summary = {
        "models": summaries, "n_models": len(summaries),
        "n_middle_more_synergistic": n_middle,
        "all_middle_more_synergistic": n_middle == len(summaries),
    }
    save_json(json_path, summary)
    plot_layer_profiles(profiles, fig_path, title=(
        f"Syn-red layer profile ({p.phiid.estimator}-{p.phiid.redundancy}, tau={p.phiid.tau}): "
        f"middle third more synergistic in {n_middle} of {len(summaries)} models"),
        families={m: s["family"] for m, s in summaries.items()})

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed,
            "models": ",".join(p.models), "n_middle_more_synergistic": n_middle,
            **{f"middle_more_synergistic.{m}": s["middle_more_synergistic"]
               for m, s in summaries.items()}}
    with stage_run("compare_profiles", None, {"models": p.models, "phiid": as_flat_dict(p.phiid)},
                   tags) as run:
        metrics = {"n_middle_more_synergistic": n_middle}
        for m, s in summaries.items():
            metrics.update({f"peak_depth.{m}": s["peak_depth"],
                            f"middle_margin.{m}": s["middle_margin"]})
        run.log_metrics(metrics)
        run.log_artifact(fig_path)
        run.log_artifact(json_path)


if __name__ == "__main__":
    run_stage("compare_profiles", main, per_model=False)
