"""Stage `graph_cores`: synergistic and redundant cores as graphs (figures 3b, 3c), per model.

Ins: results/phiid/<model>_pairwise_phiid.npz (stage phiid; sts and rtr) and
results/phiid/<model>_head_rankings.csv (stage rank; layer and head of each flat index). Each
matrix becomes an undirected weighted graph of its strongest graph_cores.top_pct upper-triangle
pairs; global efficiency, seeded Louvain modularity, communities, mean degree and density are
measured. Outs: results/graph_cores/<model>_graph_cores.npz (edges, weights, communities of both
graphs), metrics results/graph_cores/<model>_graph_metrics.json, figure
results/graph_cores/<model>_fig3b_graph_cores.png.
Tags: syn_more_efficient (global efficiency synergy > redundancy), red_more_modular (modularity
redundancy > synergy) -- the paper's reading of figure 3c.
"""



from scalelens.errors import ScalelensError
from scalelens.graphs import graph_cores
from scalelens.io import save_json, save_npz
from scalelens.params import as_flat_dict
from scalelens.paths import model_paths, require_input
from scalelens.phiid import load_result
from scalelens.plots.interventions import plot_graph_cores
from scalelens.ranking import read_head_grid
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import stage_run


def _inputs(model: str):
    """The PhiID result and (n_layers, n_heads) from the rankings' layer / head columns."""
    mp = model_paths(model)
    npz = require_input(mp.phiid_npz, "phiid", model)
    csv = require_input(mp.rankings_csv, "rank", model)
    return (load_result(npz), *read_head_grid(csv))


def main(ctx: StageContext) -> None:
    g = ctx.params.graph_cores
    result, n_layers, n_heads = _inputs(ctx.model)
    if result.sts.shape != (n_layers * n_heads,) * 2:
        raise ScalelensError(f"{ctx.model}: sts is {result.sts.shape}, expected "
                             f"{n_layers * n_heads} heads ({n_layers} x {n_heads}); rerun phiid")
    npz_path = ctx.out(ctx.paths.graph_cores_npz)
    metrics_path = ctx.out(ctx.paths.graph_cores_metrics)
    fig_path = ctx.out(ctx.paths.graph_cores_fig)
    try:
        cores = graph_cores(result.sts, result.rtr, g.top_pct, g.louvain_seed)
    except ValueError as e:
        raise ScalelensError(f"{ctx.model}: graph_cores: {e}") from None

    arrays = {}
    for c in (cores.synergy, cores.redundancy):
        arrays.update({f"{c.kind}_edges_i": c.edges_i, f"{c.kind}_edges_j": c.edges_j,
                       f"{c.kind}_weights": c.weights, f"{c.kind}_community": c.community})
    save_npz(npz_path, **arrays)
    syn_eff = cores.synergy.global_efficiency > cores.redundancy.global_efficiency
    red_mod = cores.redundancy.modularity > cores.synergy.modularity
    metrics = {**{f"synergy.{k}": v for k, v in cores.synergy.metrics().items()},
               **{f"redundancy.{k}": v for k, v in cores.redundancy.metrics().items()},
               "top_pct": g.top_pct, "unit_of_weights": result.unit,
               "syn_more_efficient": syn_eff, "red_more_modular": red_mod}
    save_json(metrics_path, metrics)
    plot_graph_cores(fig_path, cores, n_layers, n_heads,
                     f"{ctx.model}: synergistic vs redundant core "
                     f"({n_layers} layers x {n_heads} heads, PhiID {result.unit})")

    tags = {"params_sha256": ctx.params_sha256, "louvain_seed": g.louvain_seed,
            "unit": result.unit, "input_hash": result.input_hash,
            "syn_more_efficient": syn_eff, "red_more_modular": red_mod}
    with stage_run("graph_cores", ctx.model, {"graph_cores": as_flat_dict(g)}, tags) as run:
        run.log_metrics({k: float(v) for k, v in metrics.items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)})
        run.log_metrics({"syn_more_efficient": float(syn_eff), "red_more_modular": float(red_mod)})
        run.log_artifact(fig_path)
        run.log_artifact(metrics_path)


if __name__ == "__main__":
    run_stage("graph_cores", main)
