"""Stage `ablate`: cumulative head ablation curves (figure 4a), per model.

Ins: results/phiid/<model>_head_rankings.csv (stage rank) and the synergy study's prompt set.
Heads are zero-ablated cumulatively syn-first, red-first and in one random order per seed; after
every step the KL(intact || ablated) of the next-token distribution at each prompt's last position
is measured (nats). Outs: results/ablation/<model>_ablation.csv (order, seed, n_removed, fraction,
kl_mean_nats, kl_std_nats), results/ablation/<model>_ablation.npz (per-prompt KL and the orders),
metrics results/ablation/<model>_ablation_metrics.json (MLflow also gets passes/s), figure
results/ablation/<model>_fig4a_ablation.png. Verdict tag: syn_first_above_random_band.
"""

import math

import numpy as np
import pandas as pd

from scalelens import ablation
from scalelens.errors import ScalelensError
from scalelens.io import save_csv, save_json, save_npz
from scalelens.params import as_flat_dict
from scalelens.plots.interventions import plot_ablation_curves
from scalelens.prompts import load_prompt_set
from scalelens.ranking import read_head_scores
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import stage_run


def main(ctx: StageContext) -> None:
    p, a = ctx.params, ctx.params.ablation
    flat, score = read_head_scores(ctx.input(ctx.paths.rankings_csv, "rank"))
    lock = p.prompt_lock(a.prompt_set)
    prompts = load_prompt_set(lock.set, expected_md5=lock.md5)
    if a.n_points < 1:
        raise ScalelensError(f"ablation.n_points must be >= 1, got {a.n_points}")
    if len(a.random_seeds) < 2:
        raise ScalelensError(f"ablation.random_seeds needs >= 2 seeds for the random band, got "
                             f"{a.random_seeds}")
    try:
        keep = ablation.select_prompts(prompts.categories, a.n_prompts)
    except ValueError as e:
        raise ScalelensError(f"ablation.n_prompts: {e}") from None
    texts = [prompts.texts[i] for i in keep]

    csv_path = ctx.out(ctx.paths.ablation_csv)
    npz_path = ctx.out(ctx.paths.ablation_npz)
    metrics_path = ctx.out(ctx.paths.ablation_metrics)
    fig_path = ctx.out(ctx.paths.ablation_fig)

    lm, device, dtype = ctx.load_model()
    n_total = lm.geometry.n_heads_total
    ablation.require_rankings_fit(flat, ctx.model, n_total)
    step = a.step_size or math.ceil(n_total / a.n_points)
    try:
        orders = ablation.build_orders(flat, score, a.random_seeds)
        sweep = ablation.run_ablation_sweep(lm, texts, orders, step, a.batch_size)
    except ValueError as e:
        raise ScalelensError(f"{ctx.model}: {e}") from None
    summary = ablation.summarise_sweep(sweep)

    save_csv(csv_path, pd.DataFrame(ablation.curve_table(sweep)))
    save_npz(npz_path, kl_nats=sweep.kl_nats, n_removed=sweep.n_removed, fraction=sweep.fraction,
             order_names=np.array([o.name for o in orders]),
             order_seeds=np.array([o.seed for o in orders], dtype=np.int64),
             order_heads=np.stack([o.heads for o in orders]), prompt_index=keep)
    metrics = {
        **summary.headline(),
        "kl_all_removed_nats": float(sweep.kl_nats[0, -1].mean()),
        "step_size": step, "n_heads": n_total, "n_prompts": len(texts),
        **ablation.resolution_vs_seed(step, len(texts)),
        "n_forward_passes": sweep.n_forward_passes,
    }
    save_json(metrics_path, metrics)  # no timings: same inputs, same bytes
    speed = {"passes_per_s": sweep.passes_per_s, "sequences_per_s": sweep.sequences_per_s,
             "sweep_seconds": sweep.seconds}
    kl_mean = sweep.kl_nats.mean(axis=2)
    is_rand = np.array([o.name == ablation.RANDOM for o in orders])
    plot_ablation_curves(fig_path, sweep.fraction, kl_mean[0], kl_mean[1], kl_mean[is_rand],
                         f"{ctx.model}: cumulative head ablation ({len(texts)} prompts, "
                         f"step {step} of {n_total} heads)", summary)

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed,
            "random_seeds": ",".join(map(str, a.random_seeds)),
            f"prompt_md5.{a.prompt_set}": prompts.md5,
            "syn_first_above_random_band": summary.syn_first_above_random_band,
            "verdict_rule": "AUC(syn-first) > AUC(random mean + std)",
            "source": lm.source, "dequantised_gguf": lm.dequantised}
    with stage_run("ablate", ctx.model, {"ablation": as_flat_dict(a), "seed": p.seed,
                                          "device": device, "dtype": dtype}, tags) as run:
        run.log_metrics({**metrics, **speed})
        for path in (csv_path, fig_path):
            run.log_artifact(path)


if __name__ == "__main__":
    run_stage("ablate", main)
