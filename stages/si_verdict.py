"""Stage `si_verdict`: the B11 heritage-vs-size verdict across the models list (seed 002).

Ins: results/sweeps/si/<model>.json for every model in params.yaml (stage si) and the reference
values `si.references`. Outs: results/verdicts/si_verdict.json (the premise and whether the ladder
meets it, the seed's rule, every model's family and SI_seed with its 95% interval and band status,
the verdict, tier, whether the intervals could change the verdict, the within-family steps and the
across-family trend) and the two-panel figure results/figures/sweeps/si_ladder.png (bars by family
with the target band; size against SI with each family's sizes joined). MLflow tags: verdict.B11,
tier.B11, premise_met.B11.

B11 is a claim about the Phi family: without a measured Phi-family model the verdict is
NOT_APPLICABLE (no tier), and SI per model, intervals and the figure still come out. Otherwise the
seed's rule is applied to the SI_seed points of the Phi-family models and the reference values;
fewer than 2 of those gives INCONCLUSIVE with the reason.
"""

from __future__ import annotations

import json

from scalelens.io import save_json
from scalelens.paths import LadderPaths, model_paths
from scalelens.plots.sweeps import plot_si_ladder
from scalelens.stage import StageContext, read_upstream_json, run_stage
from scalelens.sweeps import si
from scalelens.sweeps.verdicts import family_member_from_doc
from scalelens.tracking import stage_run


def per_model_result(model: str) -> dict:
    """A model's json from stage si; a clear error when it has not been run."""
    return read_upstream_json(model_paths(model).sweep_json("si"), "si", model)


def main(ctx: StageContext) -> None:
    p, s = ctx.params, ctx.params.si
    json_path = ctx.out(LadderPaths.verdict_json("si"))
    fig_path = ctx.out(LadderPaths.verdict_fig("si_ladder"))
    docs = {m: per_model_result(m) for m in p.models}
    members = {m: family_member_from_doc(m, d, "si") for m, d in docs.items()}
    measured = [si.measured_si_from_dict(m, d["si"], size_b=members[m].size_b,
                                         family=members[m].family,
                                         family_inferred=members[m].family_inferred)
                for m, d in docs.items()]
    references = {name: {"si": r.si, "size_b": r.size_b} for name, r in s.references.items()}
    verdict = si.b11_verdict(measured, references, target=s.target, tolerance=s.tolerance,
                             min_models=s.min_models)
    doc = {
        "study": "Specialization Index size ladder, claim B11 (seed 002)",
        **verdict.to_dict(),
        "reference_archs": {name: r.arch for name, r in s.references.items()},
        "per_model": {m: {"family": d["family"], "family_source": d["family_source"],
                          "family_inferred": d["family_inferred"],
                          "dtype_variant": d["dtype"], "architecture": d["architecture"],
                          "n_params": d["n_params"], "n_params_source": d["n_params_source"],
                          "seed_summary": d["seed_summary"], "prompt_md5": d["prompt_md5"]}
                      for m, d in docs.items()},
        "inputs": {m: model_paths(m).sweep_json("si") for m in p.models},
    }
    save_json(json_path, doc)
    plot_si_ladder(verdict, fig_path)

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed, "boot_seed": s.boot_seed,
            "models": ",".join(p.models), "verdict.B11": verdict.verdict,
            "tier.B11": verdict.tier or "none (premise not met)",
            "premise_met.B11": verdict.premise.met,
            "families": ",".join(f"{m}:{x.family}" for m, x in members.items()),
            "seed_rule_verdict.B11": verdict.seed_rule_verdict or "none (premise not met)",
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
