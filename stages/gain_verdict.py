"""Stage `gain_verdict`: the H25 verdict across the models list, on G_seed and on G_last (seed 004).

Ins: results/sweeps/gain/<model>.json for every model in params.yaml (stage gain). Outs:
results/verdicts/gain_verdict.json (per metric: the seed's rule, every model's rho, G and 95%
interval and dampening status, Pearson r(rho, G) with p and a bootstrap interval when there are 3
or more models, a permutation p, dampening rates for rho >= gain.rho_threshold and below, the
verdict, and whether the intervals could change it) and the three-panel figure
results/figures/sweeps/gain.png. MLflow tags: verdict.H25.G_seed, verdict.H25.G_last.
"""

from __future__ import annotations

from scalelens.io import save_json
from scalelens.params import as_flat_dict
from scalelens.paths import LadderPaths, model_paths
from scalelens.plots.sweeps import plot_gain
from scalelens.stage import StageContext, read_upstream_json, run_stage
from scalelens.sweeps import gain
from scalelens.tracking import stage_run


def per_model_result(model: str) -> dict:
    """A model's json from stage gain; a clear error when it has not been run."""
    return read_upstream_json(model_paths(model).sweep_json("gain"), "gain", model)


def figure_title(report: gain.H25Report) -> str:
    """Both verdicts with the reason the seed's rule gave each, and how many models dampen."""
    lines = ["H25 residual gain (seed 004 rule)"]
    for key, v in (("G_seed", report.g_seed), ("G_last", report.g_last)):
        n_damp = sum(e.is_dampening for e in v.models)
        lines.append(f"{key}: {v.verdict} - {v.reason}; {n_damp}/{v.n_models} models dampen")
    return "\n".join(lines)


def main(ctx: StageContext) -> None:
    p, g = ctx.params, ctx.params.gain
    json_path = ctx.out(LadderPaths.verdict_json("gain"))
    fig_path = ctx.out(LadderPaths.verdict_fig("gain"))
    docs = {m: per_model_result(m) for m in p.models}
    inputs = [gain.gain_inputs_from_dict(d) for d in docs.values()]
    kwargs = {"n_boot": g.n_boot, "n_perm": g.n_perm, "seed": g.boot_seed,
              "rho_threshold": g.rho_threshold}
    report = gain.H25Report(
        g_seed=gain.h25_verdict([seed for seed, _ in inputs], "G_seed", **kwargs),
        g_last=gain.h25_verdict([last for _, last in inputs], "G_last", **kwargs))
    doc = {
        "study": "Residual-stream gain, hypothesis H25 (seed 004)",
        **report.to_dict(),
        "note": ("G_seed reproduces the seed's numbers but is the gain of the second-to-last block "
                 "(hidden_states[-1] carries the final norm); G_last is the last block's gain."),
        "per_model": {m: {"g_with_ln": d["g_with_ln"], "d_head": d["d_head"],
                          "head_dim": d["head_dim"], "hidden_state_layout":
                              d["hidden_state_layout"], "prompt_md5": d["prompt_md5"]}
                      for m, d in docs.items()},
        "inputs": {m: model_paths(m).sweep_json("gain") for m in p.models},
    }
    save_json(json_path, doc)
    plot_gain(report, fig_path, title=figure_title(report))

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed, "boot_seed": g.boot_seed,
            "models": ",".join(p.models), "verdict.H25.G_seed": report.g_seed.verdict,
            "verdict.H25.G_last": report.g_last.verdict,
            "seed_rule_verdict.H25.G_seed": report.g_seed.seed_rule_verdict,
            "seed_rule_verdict.H25.G_last": report.g_last.seed_rule_verdict,
            "intervals_could_change_verdict.H25.G_seed":
                report.g_seed.intervals_could_change_verdict,
            "intervals_could_change_verdict.H25.G_last":
                report.g_last.intervals_could_change_verdict,
            **{f"prompt_md5.{g.prompt_set}": d["prompt_md5"] for d in docs.values()}}
    metrics = {}
    for key, v in (("G_seed", report.g_seed), ("G_last", report.g_last)):
        metrics[f"high_rho_dampen_rate.{key}"] = v.high_rho_dampen_rate
        metrics[f"pearson_r.{key}"] = v.pearson_r
        metrics.update({f"{key}.{e.model}": e.gain.point for e in v.models})
    with stage_run("gain_verdict", None, {"models": ",".join(p.models),
                                          "gain": as_flat_dict(g)}, tags) as run:
        run.log_metrics(metrics)
        run.log_artifact(fig_path)
        run.log_artifact(json_path)


if __name__ == "__main__":
    run_stage("gain_verdict", main, per_model=False)
