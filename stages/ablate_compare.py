"""Stage `ablate_compare`: every model's ablation curves on one figure (figure 4a overlay).

Ins: results/ablation/<model>_ablation.csv for every model in params.yaml (stage ablate). Outs:
results/ablate_compare/fig4a_overlay.png (syn-first and random mean +- std per model, raw KL and
KL normalised by the all-heads-removed value) and results/ablate_compare/ablation_summary.json
(per model: AUCs, ratio syn-first / random, the band verdict, recomputed from the csv). Tag:
n_models_syn_first_above_band.
"""


import numpy as np
import pandas as pd

from scalelens import ablation
from scalelens.errors import ScalelensError
from scalelens.io import save_json
from scalelens.params import as_flat_dict
from scalelens.paths import LadderPaths, model_paths, require_input
from scalelens.plots.interventions import plot_ablation_overlay
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import stage_run


def model_curves(model: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(fraction [S], mean KL [n_orders, S], order names) from a model's ablation csv."""
    frame = pd.read_csv(require_input(model_paths(model).ablation_csv, "ablate", model))
    groups = list(frame.groupby(["order", "seed"], sort=False))
    fraction = groups[0][1]["fraction"].to_numpy()
    curves = np.stack([g["kl_mean_nats"].to_numpy() for _, g in groups])
    return fraction, curves, [name for (name, _), _ in groups]


def main(ctx: StageContext) -> None:
    p = ctx.params
    fig_path = ctx.out(LadderPaths.ablate_compare_fig)
    json_path = ctx.out(LadderPaths.ablate_compare_json)
    per_model, overlay = {}, {}
    for model in p.models:
        fraction, curves, names = model_curves(model)
        try:
            s = ablation.summarise_curves(fraction, curves, names)
        except ValueError as e:
            raise ScalelensError(f"{model}: {e}") from None
        names_arr = np.array(names)
        overlay[model] = (fraction, curves[names_arr == ablation.SYN_FIRST][0],
                          curves[names_arr == ablation.RANDOM])
        per_model[model] = {**s.headline(), "n_points": len(fraction)}
    n_above = sum(v["syn_first_above_random_band"] for v in per_model.values())
    save_json(json_path, {"models": list(p.models), "per_model": per_model,
                          "n_models_syn_first_above_band": n_above,
                          "verdict_rule": "AUC(syn-first) > AUC(random mean + std, ddof=1)"})
    plot_ablation_overlay(fig_path, overlay)

    tags = {"params_sha256": ctx.params_sha256, "models": ",".join(p.models),
            "n_models_syn_first_above_band": n_above,
            **{f"syn_first_above_random_band.{m}": v["syn_first_above_random_band"]
               for m, v in per_model.items()}}
    metrics = {f"{k}.{m}": float(v[k]) for m, v in per_model.items()
               for k in ("auc_syn_first", "auc_random_mean", "ratio_syn_random")}
    with stage_run("ablate_compare", None, {"models": ",".join(p.models),
                                            "ablation": as_flat_dict(p.ablation)}, tags) as run:
        run.log_metrics(metrics)
        run.log_artifact(fig_path)
        run.log_artifact(json_path)


if __name__ == "__main__":
    run_stage("ablate_compare", main, per_model=False)
