"""Stage `motif_census`: triad census, Z and SP of every graph of one graph set, under every null
model in motifs.null_model (seed 000).

--model is a graph set: a model of the ladder by its slug (its attribution graphs, written by
stage attribute under results/graphs/<slug>) or an imported set named in motifs.graph_sets
(under motifs.graphs_dir). Outs (results/motifs/census/<set>/): census.csv (one row per
(graph, null): the set's facts, the graph's quality, census, null mean/std, Z, SP),
census.json (the set's facts: source, model key, family, n_params, mean graph quality,
synthetic; then per graph its quality and its result under each null), null_counts.npz (one
[n_random, 16] array per (null, graph)). A set that is synthetic (named synthetic-*, or any
graph says so) is marked in all three and in the MLflow run's `synthetic` tag.
"""

from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext

import pandas as pd

from scalelens.io import save_csv, save_json, save_npz
from scalelens.motifs.set_census import CensusSettings, census_graph_set, load_set_graphs
from scalelens.params import Params, as_flat_dict
from scalelens.paths import MotifPaths, model_slug
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import stage_run


def graph_sets(p: Params) -> dict:
    """{set name: graphs folder} for these params (the ladder's slugs, then imported sets)."""
    return MotifPaths.graph_sets(p.models, p.motifs.graphs_dir, p.motifs.graph_sets)


def ladder_key(p: Params, graph_set: str) -> str | None:
    """The model key of a ladder set (its slug is the set's name); None for an imported set."""
    return next((k for k in p.models if model_slug(k) == graph_set), None)


def main(ctx: StageContext) -> None:
    p, m = ctx.params, ctx.params.motifs
    name = ctx.model
    key = ladder_key(p, name)
    folder = graph_sets(p)[name]
    source = "attribution" if key is not None else "imported"
    if key is not None:
        folder = ctx.input(folder, "attribute", key)
    out_dir = MotifPaths.census_dir(name)
    csv_path, json_path, npz_path = (ctx.out(out_dir / f) for f in MotifPaths.CENSUS_FILES)
    settings = CensusSettings(tuple(m.null_model), m.n_random, m.swaps_per_edge,
                              m.drop_error_nodes, m.weight_threshold, m.z_threshold, p.seed)
    graphs = load_set_graphs(folder, m.drop_error_nodes, m.weight_threshold)
    pool = ProcessPoolExecutor(m.n_jobs) if m.n_jobs > 1 else nullcontext()
    with pool as executor:
        census = census_graph_set(name, graphs, source, settings,
                                  require_size=name != m.baseline, n_jobs=m.n_jobs,
                                  executor=executor, progress=True, root=".")
    save_csv(csv_path, pd.DataFrame(census.table()))
    save_json(json_path, census.to_json_dict())
    save_npz(npz_path, **census.null_arrays())

    f = census.facts
    metrics = {**census.summary(), **{f"quality.{k}": v for k, v in f.quality.items()}}
    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed,
            "null_models": ",".join(m.null_model), "synthetic": f.synthetic,
            "synthetic_reason": f.synthetic_reason or "none", "source": f.source,
            "model_key": f.model_key, "family": f.family,
            "n_params": "unknown" if f.n_params is None else f"{f.n_params:.4g}"}
    with stage_run("motif_census", name, {"motifs": as_flat_dict(m), "seed": p.seed},
                   tags) as run:
        run.log_metrics(metrics)
        run.log_artifact(csv_path)


if __name__ == "__main__":
    run_stage("motif_census", main, model_keys=lambda p: list(graph_sets(p)),
              keys_name="graph sets (the models' slugs and motifs.graph_sets)")
