"""Stage `attribute`: one exact neuron-level attribution graph per prompt, per model (seed 000).

Ins: the prompt set `attribution.prompt_set` (MD5-checked; each prompt's category is its task).
Outs: results/graphs/<slug>/<task>/<task>-<i>.json (circuit-tracer / Neuronpedia schema, read by
motif_census), results/attribution/<slug>_quality.csv (one row per graph: completeness,
influence kept, faithfulness beside its random baseline, counts), the metrics json
results/attribution/<slug>_attribution_metrics.json and the figure
results/attribution/<slug>_quality.png. Method and quality scores: scalelens.attribution.

Cost: a unit row costs about 2 L T d (m + d) FLOP (layers, tokens, hidden size, MLP width), so a
graph gets at most `attribution.max_feature_nodes` rows and at most `row_gflop_budget` GFLOP of
them: the larger models of the ladder get fewer rows per graph (recorded per graph).
"""

import logging
import time

import pandas as pd
from tqdm.auto import tqdm

from scalelens.attribution import AttributionSettings, attribute_prompt, unit_means
from scalelens.attribution.architecture import model_parts
from scalelens.errors import ScalelensError
from scalelens.io import save_csv, save_json
from scalelens.params import AttributionParams, as_flat_dict
from scalelens.plots.attribution import plot_graph_quality
from scalelens.prompts import load_prompt_set
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import stage_run

log = logging.getLogger("scalelens.stages.attribute")

MIN_ROWS = 32  # a graph always expands at least this many units (the budget notwithstanding)


def select_prompts(categories, n_per_task: int) -> list[int]:
    """Indices of the first n_per_task prompts of every task (all when 0), in file order."""
    seen: dict[str, int] = {}
    keep = []
    for i, task in enumerate(categories):
        if n_per_task == 0 or seen.get(task, 0) < n_per_task:
            keep.append(i)
            seen[task] = seen.get(task, 0) + 1
    return keep


def row_gflop(lm, n_tokens: int) -> float:
    """Approximate cost of one unit row: 2 L T d (m + d) FLOP."""
    parts = model_parts(lm.model)
    cfg = getattr(lm.model.config, "text_config", None) or lm.model.config
    return 2.0 * parts.n_layers * n_tokens * cfg.hidden_size * (parts.n_units + cfg.hidden_size
                                                               ) / 1e9


def rows_for(lm, n_tokens: int, a: AttributionParams) -> int:
    """Unit rows for a graph of n_tokens: max_feature_nodes, capped by the GFLOP budget."""
    if a.row_gflop_budget <= 0:
        return a.max_feature_nodes
    by_budget = int(a.row_gflop_budget / row_gflop(lm, n_tokens))
    return min(a.max_feature_nodes, max(MIN_ROWS, by_budget))


def settings_for(a: AttributionParams, max_feature_nodes: int) -> AttributionSettings:
    return AttributionSettings(
        max_logits=a.max_logits, logit_prob=a.logit_prob, max_feature_nodes=max_feature_nodes,
        batch_size=a.batch_size, update_interval=a.update_interval, row_top_k=a.row_top_k,
        node_threshold=a.node_threshold, edge_threshold=a.edge_threshold,
        max_nodes=a.max_nodes, ablation=a.ablation, random_seed=a.random_seed,
        max_completeness_error=a.max_completeness_error)


def model_facts(lm) -> dict:
    """Family and size of the model (registry, else the config and a count of the weights)."""
    if lm.spec is not None:
        return {"family": lm.spec.family, "n_params": lm.spec.n_params,
                "n_params_source": "registry (nominal size)"}
    return {"family": lm.model.config.model_type,
            "n_params": float(sum(p.numel() for p in lm.model.parameters())),
            "n_params_source": "counted from the loaded weights; family from the config"}


def summary(frame: pd.DataFrame) -> dict:
    """The metrics json: the worst completeness, means of the scores, counts."""
    mean = {c: float(frame[c].mean()) for c in (
        "influence_kept", "faithfulness", "faithfulness_random", "row_mass_stored", "n_nodes",
        "n_edges", "n_units_kept", "n_rows", "n_tokens")}
    return {"n_graphs": len(frame), **{f"mean_{k}": v for k, v in mean.items()},
            "completeness_max_rel_error": float(frame["completeness_max_rel_error"].max()),
            "frozen_vs_real_max_abs": float(frame["frozen_vs_real_max_abs"].max()),
            "faithfulness_minus_random": float(
                (frame["faithfulness"] - frame["faithfulness_random"]).mean()),
            "by_task": {task: {"n_graphs": len(g), "mean_faithfulness": float(
                g["faithfulness"].mean()), "mean_faithfulness_random": float(
                g["faithfulness_random"].mean()), "mean_n_nodes": float(g["n_nodes"].mean())}
                for task, g in frame.groupby("task", sort=True)}}


def main(ctx: StageContext) -> None:
    p, a = ctx.params, ctx.params.attribution
    lock = p.prompt_lock(a.prompt_set)
    prompts = load_prompt_set(lock.set, expected_md5=lock.md5)
    keep = select_prompts(prompts.categories, a.n_per_task)
    graphs_dir = ctx.out_dir(ctx.paths.graphs_dir)
    csv_path = ctx.out(ctx.paths.attribution_quality_csv)
    metrics_path = ctx.out(ctx.paths.attribution_metrics)
    fig_path = ctx.out(ctx.paths.attribution_fig)

    lm, device, dtype = ctx.load_model()
    facts = model_facts(lm)
    means = unit_means(lm, [prompts.texts[i] for i in keep]) if a.ablation == "mean" else None
    rows, timings, index_in_task = [], {}, {}
    t0 = time.perf_counter()
    for i in tqdm(keep, desc=f"attribute {ctx.model}", unit="graph"):
        task, text = prompts.categories[i], prompts.texts[i]
        k = index_in_task[task] = index_in_task.get(task, -1) + 1
        n_tokens = len(lm.tokenizer(text)["input_ids"])
        n_rows = rows_for(lm, n_tokens, a)
        try:
            result = attribute_prompt(lm, text, settings_for(a, n_rows), means=means)
        except ValueError as e:
            raise ScalelensError(f"{ctx.model}: attribution of prompt {i} ({text!r}): "
                                 f"{e}") from None
        slug = f"{ctx.paths.slug}-{task}-{k}"
        graph = result.to_json_dict(slug=slug, scan=ctx.model, weights_sha256=lm.weights_id,
                                    source=lm.source)
        graph["metadata"]["scalelens"].update({
            "task": task, "prompt_index": i, "prompt_set": prompts.name,
            "prompt_md5": prompts.md5, "synthetic": False, **facts,
            "max_feature_nodes": n_rows, "row_gflop": row_gflop(lm, n_tokens),
            "dtype": dtype, "device": device, "dequantised_gguf": lm.dequantised})
        save_json(graphs_dir / task / f"{task}-{k}.json", graph)
        q = result.quality
        rows.append({"task": task, "graph": f"{task}-{k}", "prompt_index": i, "prompt": text,
                     "max_feature_nodes": n_rows, **q.to_dict(include_timings=False)})
        timings[f"seconds.{task}-{k}"] = q.seconds
    seconds = time.perf_counter() - t0
    frame = pd.DataFrame(rows)
    save_csv(csv_path, frame)
    metrics = {**summary(frame), "ablation": a.ablation, **facts}
    save_json(metrics_path, metrics)  # no timings: same inputs, same bytes
    plot_graph_quality(frame, fig_path, f"{ctx.model} ({facts['family']}): {len(frame)} "
                       f"attribution graphs, ablation {a.ablation}")
    log.info("%s: %d graphs in %.0f s; faithfulness %.3f vs random %.3f; %.0f nodes, %.0f "
             "edges per graph", ctx.model, len(frame), seconds, metrics["mean_faithfulness"],
             metrics["mean_faithfulness_random"], metrics["mean_n_nodes"],
             metrics["mean_n_edges"])

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed,
            f"prompt_md5.{a.prompt_set}": prompts.md5, "source": lm.source,
            "dequantised_gguf": lm.dequantised, "weights_id": lm.weights_id,
            "family": facts["family"], "synthetic": False}
    with stage_run("attribute", ctx.model, {"attribution": as_flat_dict(a), "seed": p.seed,
                                             "device": device, "dtype": dtype}, tags) as run:
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)} | {
            "seconds": seconds, "seconds_per_graph": seconds / max(len(frame), 1), **timings})
        for path in (csv_path, fig_path):
            run.log_artifact(path)


if __name__ == "__main__":
    run_stage("attribute", main)
