"""Stage `si_verdict`: the B11 heritage-vs-size verdict across the models list (seed 002).

Ins: results/sweeps/si/<model>.json for every model in params.yaml (stage si) and the reference
values `si.references`. Outs: results/verdicts/si_verdict.json (the seed's rule, every model's
SI_seed with its 95% interval and band status, the verdict, tier, and whether the intervals could
change the verdict) and the two-panel figure results/figures/sweeps/si_ladder.png (bars with the
target band; size against SI with trend). MLflow tags: verdict.B11, tier.B11.

The rule is the seed's, applied to the SI_seed point estimates of the measured models and the
reference values together; fewer than 2 models in all gives INCONCLUSIVE with the reason.
"""

from __future__ import annotations

import json

from scalelens.io import save_json
from scalelens.paths import LadderPaths, model_paths
from scalelens.plots.sweeps import plot_si_ladder
from scalelens.stage import StageContext, read_upstream_json, run_stage
from scalelens.sweeps import si
from scalelens.tracking import stage_run


def per_model_result(model: str) -> dict:
    """A model's json from stage si; a clear error when it has not been run."""
    return read_upstream_json(model_paths(model).sweep_json("si"), "si", model)


def main(ctx: StageContext) -> None:
    p, s = ctx.params, ctx.params.si
    json_path = ctx.out(LadderPaths.verdict_json("si"))
    fig_path = ctx.out(LadderPaths.verdict_fig("si_ladder"))
    docs = {m: per_model_result(m) for m in p.models}
    measured = [si.measured_si_from_dict(m, d["si"], size_b=d.get("size_b"))
                for m, d in docs.items()]
    references = {name: {"si": r.si, "size_b": r.size_b} for name, r in s.references.items()}
    verdict = si.b11_verdict(measured, references, target=s.target, tolerance=s.tolerance,
                             min_models=s.min_models)
    doc = {
        "study": "Specialization Index size ladder, claim B11 (seed 002)",
        **verdict.to_dict(),
        "reference_archs": {name: r.arch for name, r in s.references.items()},
        "per_model": {m: {"dtype_variant": d["dtype"], "architecture": d["architecture"],
                          "n_params": d["n_params"], "n_params_source": d["n_params_source"],
                          "seed_summary": d["seed_summary"], "prompt_md5": d["prompt_md5"]}
                      for m, d in docs.items()},
        "inputs": {m: model_paths(m).sweep_json("si") for m in p.models},
    }
    save_json(json_path, doc)
    plot_si_ladder(verdict, fig_path)

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed, "boot_seed": s.boot_seed,
            "models": ",".join(p.models), "verdict.B11": verdict.verdict,
            "tier.B11": verdict.tier, "seed_rule_verdict.B11": verdict.seed_rule_verdict,
            "intervals_could_change_verdict.B11": verdict.intervals_could_change_verdict,
            "undecided_models.B11": ",".join(verdict.undecided_models) or "none",
            **{f"prompt_md5.{s.prompt_set}": d["prompt_md5"] for d in docs.values()}}
    params = {"models": ",".join(p.models), "si.target": s.target, "si.tolerance": s.tolerance,
              "si.min_models": s.min_models, "si.references": json.dumps(references)}
    with stage_run("si_verdict", None, params, tags) as run:
        run.log_metrics({"n_within": verdict.n_within, "n_total": verdict.n_total,
                         **{f"si_seed.{e.name}": e.si for e in verdict.models
                            if e.source == "measured"}})
        run.log_artifact(fig_path)
        run.log_artifact(json_path)


if __name__ == "__main__":
    run_stage("si_verdict", main, per_model=False)
