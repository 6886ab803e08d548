"""Stage `perturb`: weight noise on head sets scored on a benchmark (figure 4b), per model.

Ins: results/phiid/<model>_head_rankings.csv (stage rank). Conditions (scalelens.perturbation):
baseline; synergistic core (top perturb.fraction by syn-red score) and redundant core (bottom
fraction), once per perturb.noise_seeds; random sets, one per perturb.random_seeds (noise seeds
cycled). Noise N(0, (sigma x std(W))^2) on each head's query rows and output columns (top-level
param `sigma`). Benchmark perturb.benchmark (arithmetic | math) via scalelens.evaluation.
Outs: results/perturb/<model>/<condition label>.csv (one row per problem: prompt index, gold,
prediction, correct, gold NLL), results/perturb/<model>/summary.csv (one row per condition),
metrics results/perturb/<model>_perturb_metrics.json (per condition and per kind mean/std, the
premises and verdicts with reasons), figure results/perturb/<model>_fig4b.png.
Tags: verdict, verdict_by, accuracy_verdict(_reason), nll_verdict(_reason).
"""

import pandas as pd

from scalelens import evaluation, perturbation
from scalelens.ablation import require_rankings_fit
from scalelens.errors import ScalelensError
from scalelens.io import save_csv, save_json
from scalelens.params import PerturbParams, as_flat_dict
from scalelens.plots.interventions import plot_perturbation_bars
from scalelens.prompts import prompt_md5
from scalelens.ranking import read_head_scores
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import stage_run


def benchmark_items(x: PerturbParams) -> evaluation.BenchmarkItems:
    """The problems the perturb section asks for; bad settings become one-line errors."""
    try:
        if x.benchmark == "arithmetic":
            return evaluation.arithmetic_items(x.n_problems, x.n_shots, x.problem_seed,
                                               x.arithmetic_low, x.arithmetic_high,
                                               x.arithmetic_format)
        if x.benchmark == "math":
            rows = evaluation.load_math_rows(x.math_path, x.math_split, x.math_config)
            return evaluation.math_items(rows, x.n_problems, x.n_shots, x.problem_seed)
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
        conditions = perturbation.build_conditions(flat, score, x.fraction, x.random_seeds,
                                                   x.noise_seeds)
        scores = perturbation.run_perturbation(lm, items, conditions, p.sigma,
                                               x.max_new_tokens, x.batch_size)
    except ValueError as e:
        raise ScalelensError(f"{ctx.model}: perturb: {e}") from None
    summary = perturbation.summarise_perturbation(
        conditions, [s.accuracy for s in scores], [s.gold_nll_nats for s in scores], len(items),
        x.accuracy_floor, x.accuracy_ceiling, x.min_problems)

    rows = []
    for cond, s in zip(conditions, scores):
        save_csv(out_dir / f"{cond.label}.csv", pd.DataFrame({
            "problem": range(s.n_problems), "gold": items.golds, "prediction": s.predictions,
            "correct": s.correct, "gold_nll_nats": s.nll_nats, "n_gold_tokens": s.n_gold_tokens}))
        rows.append({"condition": cond.name, "label": cond.label, "head_seed": cond.head_seed,
                     "noise_seed": cond.noise_seed, "n_heads": len(cond.heads),
                     "heads": " ".join(map(str, cond.heads)), "accuracy": s.accuracy,
                     "n_correct": s.n_correct, "gold_nll_nats": s.gold_nll_nats,
                     "gold_nll_per_token_nats": s.gold_nll_per_token_nats})
    save_csv(summary_path, pd.DataFrame(rows))

    n_tokens = perturbation.count_forward_tokens(len(conditions), scores[0].n_prompt_tokens,
                                                 scores[0].n_gold_tokens, x.max_new_tokens,
                                                 scores[0].n_shared_prefix_tokens)
    metrics = {"sigma": p.sigma, "benchmark": x.benchmark,
               "n_heads_per_condition": len(conditions[1].heads),
               "n_conditions": len(conditions), **summary.to_dict(),
               "n_forward_passes": sum(s.n_forward_passes for s in scores),
               "n_tokens_bound": n_tokens}
    save_json(metrics_path, metrics)  # no timings: same inputs, same bytes
    speed = {"seconds": sum(s.seconds for s in scores),
             **{f"seconds.{c.label}": s.seconds for c, s in zip(conditions, scores)}}
    plot_perturbation_bars(
        fig_path, [c.label for c in conditions], [c.name for c in conditions],
        [s.accuracy for s in scores], [s.gold_nll_nats for s in scores],
        f"{ctx.model}: weight noise sigma={p.sigma:g} on {x.fraction:.0%} of heads, "
        f"{x.benchmark} ({len(items)} problems)",
        accuracy_verdict=summary.accuracy_verdict, nll_verdict=summary.nll_verdict,
        floor=x.accuracy_floor, ceiling=x.accuracy_ceiling)

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed, "sigma": p.sigma,
            "noise_seeds": ",".join(map(str, x.noise_seeds)),
            "random_seeds": ",".join(map(str, x.random_seeds)), "benchmark": x.benchmark,
            f"prompt_md5.perturb_{x.benchmark}": prompt_md5(items.prompts),
            **summary.tags(), "source": lm.source, "dequantised_gguf": lm.dequantised}
    numeric = {k: v for k, v in metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    with stage_run("perturb", ctx.model, {"perturb": as_flat_dict(x), "sigma": p.sigma,
                                           "seed": p.seed, "device": device,
                                           "dtype": dtype}, tags) as run:
        run.log_metrics({**numeric, **speed})
        run.log_artifact(summary_path)
        run.log_artifact(fig_path)


if __name__ == "__main__":
    run_stage("perturb", main)
