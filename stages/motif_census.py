"""Stage `motif_census`: triad census, null models, Z and SP for every graph of one graph set.

Outs (results/motifs/census/<set>/): census.csv (one row per graph), census.json (per-graph
results), null_counts.npz (the null censuses, one [n_random, 16] array per graph).
"""

from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from scalelens.io import save_csv, save_json, save_npz
from scalelens.motifs import analyze_graph, find_graph_files, graph_seed, load_graph_file
from scalelens.params import as_flat_dict
from scalelens.paths import MotifPaths
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import stage_run


def main(ctx: StageContext) -> None:
    m, seed = ctx.params.motifs, ctx.params.seed
    out_dir = MotifPaths.census_dir(ctx.model)
    csv_path = ctx.out(out_dir / "census.csv")
    json_path = ctx.out(MotifPaths.census_json(ctx.model))
    npz_path = ctx.out(out_dir / "null_counts.npz")
    files = find_graph_files(m.graphs_dir, models=(ctx.model,))
    rows, dicts, nulls = [], [], {}
    pool = ProcessPoolExecutor(m.n_jobs) if m.n_jobs > 1 else nullcontext()
    with pool as executor:
        for gf in tqdm(files, desc=f"motif census {ctx.model}", unit="graph"):
            g = load_graph_file(gf, drop_error_nodes=m.drop_error_nodes,
                                weight_threshold=m.weight_threshold)
            r = analyze_graph(g, null_model=m.null_model, n_random=m.n_random,
                              seed=graph_seed(seed, gf.model, gf.task, g.graph_id),
                              swaps_per_edge=m.swaps_per_edge, z_threshold=m.z_threshold,
                              n_jobs=m.n_jobs, executor=executor)
            rows.append(r.table_row())
            dicts.append(r.to_json_dict())
            nulls[f"{gf.task}__{g.graph_id}"] = r.null_counts
    save_csv(csv_path, pd.DataFrame(rows))
    save_json(json_path, dicts)
    save_npz(npz_path, **nulls)
    ffl_z = np.array([d["z"]["030T"] for d in dicts], dtype=float)
    metrics = {"n_graphs": len(dicts), "ffl_mean_z": float(np.mean(ffl_z)),
               "ffl_pct_enriched": float(100 * np.mean(ffl_z >= m.z_threshold)),
               "mean_nodes": float(np.mean([d["n_nodes"] for d in dicts])),
               "mean_edges": float(np.mean([d["n_edges"] for d in dicts]))}
    tags = {"params_sha256": ctx.params_sha256, "seed": seed, "null_model": m.null_model}
    with stage_run("motif_census", ctx.model, {"motifs": as_flat_dict(m), "seed": seed},
                   tags) as run:
        run.log_metrics(metrics)
        run.log_artifact(csv_path)


if __name__ == "__main__":
    run_stage("motif_census", main, model_keys=lambda p: p.motifs.graph_sets,
              keys_name="motifs.graph_sets")
