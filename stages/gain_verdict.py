"""Stage `gain_verdict`: the H25 verdict across the models list, on G_seed and on G_last (seed 004).

Ins: results/sweeps/gain/<model>.json for every model in params.yaml (stage gain). Outs:
results/verdicts/gain_verdict.json (the premise and whether the ladder meets it; per metric: the
seed's rule applied within each family that meets the premise, with every model's family, rho, G
and 95% interval and dampening status, Pearson r(rho, G) with p and a bootstrap interval, a
permutation p, dampening rates for rho >= gain.rho_threshold and below, the verdict and whether the
intervals could change it; the same numbers over all models, labelled descriptive only; the
within-family steps of rho, G_seed and G_last) and the three-panel figure
results/figures/sweeps/gain.png. MLflow tags: verdict.H25.G_seed, verdict.H25.G_last,
premise_met.H25.

H25 asks how G moves with rho across the sizes of one family: without 3 models of one family in
the ladder the verdict is NOT_APPLICABLE, and every per-model number and the figure still come out.
"""

from __future__ import annotations

from scalelens.io import save_json
from scalelens.params import as_flat_dict
from scalelens.paths import LadderPaths, model_paths
from scalelens.plots.sweeps import plot_gain
from scalelens.stage import StageContext, read_upstream_json, run_stage
from scalelens.sweeps import gain
from scalelens.sweeps.verdicts import family_member_from_doc
from scalelens.tracking import stage_run


def per_model_result(model: str) -> dict:
    """A model's json from stage gain; a clear error when it has not been run."""
    return read_upstream_json(model_paths(model).sweep_json("gain"), "gain", model)


def figure_title(report: gain.H25Report) -> str:
    """Both verdicts with their reason, and how many models dampen."""
    met = "met" if report.premise.met else "not met"
    lines = [f"H25 residual gain (seed 004 rule) - premise {met}: {report.premise.reason}"]
    for key, v in (("G_seed", report.g_seed), ("G_last", report.g_last)):
        models = v.across_family.models
        n_damp = sum(e.is_dampening for e in models)
        reason = "" if v.verdict == gain.NOT_APPLICABLE else f" - {v.reason}"
        lines.append(f"{key}: {v.verdict}{reason}; {n_damp}/{len(models)} models dampen")
    return "\n".join(lines)


def _by_family(verdicts: dict[str, str]) -> str:
    return ",".join(f"{f}:{v}" for f, v in verdicts.items()) or "none (premise not met)"


def main(ctx: StageContext) -> None:
    p, g = ctx.params, ctx.params.gain
    json_path = ctx.out(LadderPaths.verdict_json("gain"))
    fig_path = ctx.out(LadderPaths.verdict_fig("gain"))
    docs = {m: per_model_result(m) for m in p.models}
    members = {m: family_member_from_doc(m, d, "gain") for m, d in docs.items()}
    inputs = [gain.gain_inputs_from_dict(d) for d in docs.values()]
    report = gain.h25_report([seed for seed, _ in inputs], [last for _, last in inputs],
                             n_boot=g.n_boot, n_perm=g.n_perm, seed=g.boot_seed,
                             rho_threshold=g.rho_threshold)
    doc = {
        "study": "Residual-stream gain, hypothesis H25 (seed 004)",
        **report.to_dict(),
        "note": ("G_seed reproduces the seed's numbers but is the gain of the second-to-last block "
                 "(hidden_states[-1] carries the final norm); G_last is the last block's gain."),
        "per_model": {m: {"family": d["family"], "family_source": d["family_source"],
                          "family_inferred": d["family_inferred"], "size_b": d["size_b"],
                          "n_params_source": d["n_params_source"], "g_with_ln": d["g_with_ln"],
                          "d_head": d["d_head"], "head_dim": d["head_dim"],
                          "hidden_state_layout": d["hidden_state_layout"],
                          "prompt_md5": d["prompt_md5"]}
                      for m, d in docs.items()},
        "inputs": {m: model_paths(m).sweep_json("gain") for m in p.models},
    }
    save_json(json_path, doc)
    plot_gain(report, fig_path, title=figure_title(report))

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed, "boot_seed": g.boot_seed,
            "models": ",".join(p.models), "verdict.H25.G_seed": report.g_seed.verdict,
            "verdict.H25.G_last": report.g_last.verdict,
            "premise_met.H25": report.premise.met,
            "decided_on.H25": ",".join(report.premise.decided_on) or "none",
            "families": ",".join(f"{m}:{x.family}" for m, x in members.items()),
            "seed_rule_verdict.H25.G_seed": _by_family(report.g_seed.seed_rule_verdicts),
            "seed_rule_verdict.H25.G_last": _by_family(report.g_last.seed_rule_verdicts),
            "intervals_could_change_verdict.H25.G_seed":
                report.g_seed.intervals_could_change_verdict,
            "intervals_could_change_verdict.H25.G_last":
                report.g_last.intervals_could_change_verdict,
            **{f"prompt_md5.{g.prompt_set}": d["prompt_md5"] for d in docs.values()}}
    metrics = {}
    for key, v in (("G_seed", report.g_seed), ("G_last", report.g_last)):
        metrics[f"across_family.high_rho_dampen_rate.{key}"] = \
            v.across_family.high_rho_dampen_rate
        metrics[f"across_family.pearson_r.{key}"] = v.across_family.pearson_r
        for family, fv in v.by_family.items():
            metrics[f"{family}.pearson_r.{key}"] = fv.pearson_r
        metrics.update({f"{key}.{e.model}": e.gain.point for e in v.across_family.models})
    with stage_run("gain_verdict", None, {"models": ",".join(p.models),
                                          "gain": as_flat_dict(g)}, tags) as run:
        run.log_metrics(metrics)
        run.log_artifact(fig_path)
        run.log_artifact(json_path)


if __name__ == "__main__":
    run_stage("gain_verdict", main, per_model=False)
