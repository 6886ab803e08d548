"""Stage `perturb`: weight noise on head sets scored on a benchmark (figure 4b), per model.

Ins: results/phiid/<model>_head_rankings.csv (stage rank). Conditions: baseline, synergistic core
(top perturb.fraction by syn-red score), redundant core (bottom fraction), random sets (one per
perturb.random_seeds). Noise N(0, (sigma x std(W))^2) on each head's query rows and output columns
(top-level param `sigma`). Benchmark perturb.benchmark (arithmetic | math) via scalelens.evaluation.
Outs: results/perturb/<model>/<condition>.csv (one row per problem: prompt index, gold,
prediction, correct, gold NLL), results/perturb/<model>/summary.csv (one row per condition),
metrics results/perturb/<model>_perturb_metrics.json, figure results/perturb/<model>_fig4b.png.
Tags: syn_drop_largest (accuracy), syn_nll_rise_largest (gold NLL).
"""


import pandas as pd

from scalelens import evaluation, perturbation
from scalelens.ablation import read_head_scores, require_rankings_fit
from scalelens.errors import ScalelensError
from scalelens.io import save_csv, save_json
from scalelens.params import PerturbParams, as_flat_dict
from scalelens.plots.interventions import plot_perturbation_bars
from scalelens.prompts import prompt_md5
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import stage_run


def benchmark_items(x: PerturbParams) -> evaluation.BenchmarkItems:
    """The problems the perturb section asks for; bad settings become one-line errors."""
    try:
        if x.benchmark == "arithmetic":
            return evaluation.arithmetic_items(x.n_problems, x.n_shots, x.problem_seed,
                                               x.arithmetic_low, x.arithmetic_high)
        if x.benchmark == "math":
            rows = evaluation.load_math_rows(x.math_path, x.math_split)
            return evaluation.math_items(rows, x.n_problems, x.n_shots)
    except ValueError as e:
        raise ScalelensError(f"perturb: {e}") from None
    raise ScalelensError(f"perturb.benchmark: {x.benchmark!r} is not one of "
                         f"{', '.join(evaluation.BENCHMARKS)}")


def main(ctx: StageContext) -> None:
    p, x = ctx.params, ctx.params.perturb
    rankings = ctx.input(ctx.paths.rankings_csv, "rank")
    if not p.sigma >= 0:
        raise ScalelensError(f"sigma must be >= 0 (e.g. 0.1), got {p.sigma}")
    flat, score = read_head_scores(rankings)
    items = benchmark_items(x)

    out_dir = ctx.out_dir(ctx.paths.perturb_dir)  # replaced whole: no file of an earlier run
    summary_path = out_dir / "summary.csv"
    metrics_path = ctx.out(ctx.paths.perturb_metrics)
    fig_path = ctx.out(ctx.paths.perturb_fig)

    lm, device, dtype = ctx.load_model()
    require_rankings_fit(flat, ctx.model, lm.geometry.n_heads_total)
    try:
        conditions = perturbation.build_conditions(flat, score, x.fraction, x.random_seeds)
        scores = perturbation.run_perturbation(lm, items, conditions, p.sigma, x.noise_seed,
                                               x.max_new_tokens, x.batch_size)
    except ValueError as e:
        raise ScalelensError(f"{ctx.model}: perturb: {e}") from None
    summary = perturbation.summarise_perturbation(conditions, [s.accuracy for s in scores],
                                                  [s.gold_nll_nats for s in scores])

    rows = []
    for cond, s in zip(conditions, scores):
        path = out_dir / f"{cond.label}.csv"
        save_csv(path, pd.DataFrame({
            "problem": range(s.n_problems), "gold": items.golds, "prediction": s.predictions,
            "correct": s.correct, "gold_nll_nats": s.nll_nats, "n_gold_tokens": s.n_gold_tokens}))
        rows.append({"condition": cond.name, "label": cond.label, "seed": cond.seed,
                     "n_heads": len(cond.heads), "heads": " ".join(map(str, cond.heads)),
                     "accuracy": s.accuracy, "n_correct": s.n_correct,
                     "gold_nll_nats": s.gold_nll_nats,
                     "gold_nll_per_token_nats": s.gold_nll_per_token_nats})
    save_csv(summary_path, pd.DataFrame(rows))

    metrics = {"sigma": p.sigma, "n_problems": len(items),
               "n_heads_per_condition": len(conditions[1].heads),
               **{f"accuracy.{k}": v for k, v in summary.accuracy.items()},
               **{f"gold_nll_nats.{k}": v for k, v in summary.gold_nll_nats.items()},
               "drop.synergistic": summary.drop_synergistic,
               "drop.redundant": summary.drop_redundant,
               "drop.random_mean": summary.drop_random_mean,
               "drop.random_std": summary.drop_random_std,
               "nll_rise.synergistic": summary.nll_rise_synergistic,
               "nll_rise.redundant": summary.nll_rise_redundant,
               "nll_rise.random_mean": summary.nll_rise_random_mean,
               "nll_rise.random_std": summary.nll_rise_random_std,
               "syn_drop_largest": summary.syn_drop_largest,
               "syn_nll_rise_largest": summary.syn_nll_rise_largest}
    save_json(metrics_path, metrics)  # no timings: same inputs, same bytes
    speed = {"seconds": sum(s.seconds for s in scores),
             **{f"seconds.{c.label}": s.seconds for c, s in zip(conditions, scores)}}
    plot_perturbation_bars(fig_path, [c.label for c in conditions], [c.name for c in conditions],
                           [s.accuracy for s in scores], [s.gold_nll_nats for s in scores],
                           f"{ctx.model}: weight noise sigma={p.sigma:g} on {x.fraction:.0%} of "
                           f"heads, {x.benchmark} ({len(items)} problems)")

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed, "sigma": p.sigma,
            "noise_seed": x.noise_seed, "random_seeds": ",".join(map(str, x.random_seeds)),
            "benchmark": x.benchmark,
            f"prompt_md5.perturb_{x.benchmark}": prompt_md5(items.prompts),
            "syn_drop_largest": summary.syn_drop_largest,
            "syn_nll_rise_largest": summary.syn_nll_rise_largest,
            "source": lm.source, "dequantised_gguf": lm.dequantised}
    with stage_run("perturb", ctx.model, {"perturb": as_flat_dict(x), "sigma": p.sigma,
                                           "seed": p.seed, "device": device,
                                           "dtype": dtype}, tags) as run:
        run.log_metrics({**metrics, **speed})
        run.log_artifact(summary_path)
        run.log_artifact(fig_path)


if __name__ == "__main__":
    run_stage("perturb", main)
