"""Stage `phiid`: pairwise PhiID (synergy sts, redundancy rtr) between all pairs of heads.

Ins: results/activations/<model>.npz (norms [prompt, head, step], lengths, categories) and .json.
Outs: results/phiid/<model>_pairwise_phiid.npz (scalelens.phiid.save_result), the metrics json
results/phiid/<model>_phiid_metrics.json and figure 2a results/phiid/<model>_fig2a_pairwise.png.

params.phiid.shards == 1: all pairs in one process. shards == N > 1: the pairs are split into N
shards, each checkpointed chunk by chunk under results/phiid/shards/<model>/, then merged. On a
cluster each shard can be its own job:
    python stages/phiid.py --model M --shard i/N    (one job per i; resumes finished chunks)
    python stages/phiid.py --model M --merge        (once all shards are done: the outputs above)
`dvc repro` afterwards finds every chunk done and only merges.
"""

import json
import logging
import time
from pathlib import Path

import numpy as np

from scalelens.errors import ScalelensError
from scalelens.io import load_npz, save_json
from scalelens.params import PhiidParams, as_flat_dict
from scalelens.paths import model_paths, require_input
from scalelens.phiid import (
    CheckpointMismatchError,
    PhiIDResult,
    compute_shard,
    input_fingerprint,
    merge_shards,
    pairwise_phiid,
    parse_shard,
    save_result,
)
from scalelens.plots.phiid import plot_pairwise_heatmaps
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import stage_run

log = logging.getLogger("scalelens.stages.phiid")

CHECKPOINT_GLOB = "phiid_shard*of*_chunk*.npz"


def add_args(parser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--shard", metavar="i/N",
                       help="compute only shard i of N (0-based; N = params phiid.shards) into "
                            "results/phiid/shards/<model>/, resuming finished chunks")
    group.add_argument("--merge", action="store_true",
                       help="merge the finished shards into the stage outputs")


def checkpoint_dir(model: str) -> Path:
    return model_paths(model).phiid_shards


def load_activations(model: str) -> tuple[dict[str, np.ndarray], dict]:
    """The extract stage's arrays and facts for one model, checked against each other."""
    mp = model_paths(model)
    arrays = load_npz(require_input(mp.activations_npz, "extract", model))
    facts = json.loads(require_input(mp.activations_json, "extract", model).read_text(
        encoding="utf-8"))
    n_total = facts["n_layers"] * facts["n_heads"]
    if arrays["norms"].ndim != 3 or arrays["norms"].shape[1] != n_total:
        raise ScalelensError(
            f"{mp.activations_npz}: norms has shape {arrays['norms'].shape}, expected "
            f"[prompt, {n_total} heads, step] from its .json; rerun "
            f"`dvc repro extract@{mp.slug}`")
    return arrays, facts


def engine_kwargs(arrays: dict[str, np.ndarray], ph: PhiidParams) -> dict:
    """Keyword arguments shared by pairwise_phiid and compute_shard."""
    return {"lengths": arrays["lengths"], "categories": arrays["categories"].tolist(),
            "estimator": ph.estimator, "redundancy": ph.redundancy, "tau": ph.tau,
            "return_atoms": ph.return_atoms, "chunk_pairs": ph.chunk_pairs or None}


def check_shard_count(shard: str, ph: PhiidParams) -> tuple[int, int]:
    try:
        index, count = parse_shard(shard)
    except ValueError as e:
        raise ScalelensError(f"--shard: {e}") from None
    if count != ph.shards:
        raise ScalelensError(
            f"--shard {shard}: N = {count} but params.yaml phiid.shards = {ph.shards}; set "
            f"phiid.shards: {count} so the shard jobs, --merge and `dvc repro` agree")
    return index, count


def clear_checkpoints(directory: Path) -> int:
    """Remove PhiID checkpoint files of an earlier run; returns how many."""
    stale = sorted(directory.glob(CHECKPOINT_GLOB))
    for path in stale:
        path.unlink()
    return len(stale)


def compute_all_shards(series: np.ndarray, kwargs: dict, n_shards: int, directory: Path):
    """Every shard in this process, then merged; stale checkpoints of another run are replaced."""
    for attempt in (0, 1):
        try:
            for k in range(n_shards):
                compute_shard(series, shard=(k, n_shards), checkpoint_dir=directory, **kwargs)
            return merge_shards(directory)
        except CheckpointMismatchError as e:
            if attempt:
                raise
            log.warning("%s: checkpoints from another run (%s); removed %d files, recomputing",
                        directory, e, clear_checkpoints(directory))
    raise AssertionError("unreachable")


def check_merged(result: PhiIDResult, expected_hash: str, ph: PhiidParams, directory: Path):
    """Merged shards must come from these activations and these params, or outputs would lie."""
    s = result.settings
    if result.input_hash != expected_hash:
        raise ScalelensError(
            f"{directory}: shards were computed from different activations than the current "
            f"results/activations; rerun every --shard job (or delete {directory})")
    if (s.estimator, s.redundancy, s.tau) != (ph.estimator, ph.redundancy, ph.tau) or (
            (result.atoms is not None) != ph.return_atoms):
        raise ScalelensError(
            f"{directory}: shards used estimator={s.estimator} redundancy={s.redundancy} "
            f"tau={s.tau} atoms={result.atoms is not None}, params.yaml phiid says "
            f"{ph.estimator}/{ph.redundancy}/tau={ph.tau}/atoms={ph.return_atoms}; "
            f"rerun the shards")


def upper_mean(matrix: np.ndarray) -> float:
    """Mean over the defined (finite) unordered pairs i < j."""
    values = matrix[np.triu_indices(matrix.shape[-1], 1)]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def summary_metrics(result: PhiIDResult, facts: dict, ph: PhiidParams) -> dict:
    """The metrics json: means over pairs, degeneracy counts, unit and shape."""
    d = result.degeneracy
    out = {
        "unit": result.unit, "estimator": ph.estimator, "redundancy": ph.redundancy, "tau": ph.tau,
        "n_layers": facts["n_layers"], "n_heads_per_layer": facts["n_heads"],
        "n_heads": result.n_heads, "n_pairs": result.n_heads * (result.n_heads - 1) // 2,
        "n_prompts": result.n_prompts, "shards": ph.shards,
        "mean_synergy": upper_mean(result.sts), "mean_redundancy": upper_mean(result.rtr),
        "n_degenerate_heads": d.n_degenerate_heads, "n_degenerate_pairs": d.n_degenerate_pairs,
        "n_undefined_pairs": d.n_undefined_pairs,
        "head_reasons": d.head_reasons, "pair_reasons": d.pair_reasons,
    }
    if result.categories:
        out["mean_synergy_by_category"] = {
            c: upper_mean(m) for c, m in zip(result.categories, result.sts_by_category)}
        out["mean_redundancy_by_category"] = {
            c: upper_mean(m) for c, m in zip(result.categories, result.rtr_by_category)}
    return out


def run_one_shard(ctx: StageContext, series: np.ndarray, kwargs: dict) -> None:
    """--shard i/N: checkpoints only (no stage outputs, no MLflow run)."""
    index, count = check_shard_count(ctx.args.shard, ctx.params.phiid)
    run = compute_shard(series, shard=(index, count), checkpoint_dir=checkpoint_dir(ctx.model),
                        **kwargs)
    log.info("%s shard %d/%d done: pairs [%d, %d), %d chunks computed, %d resumed; after all %d "
             "shards run `python stages/phiid.py --model %s --merge`", ctx.model, index, count,
             run.pair_start, run.pair_stop, run.n_computed, run.n_resumed, count, ctx.model)


def main(ctx: StageContext) -> None:
    p, ph = ctx.params, ctx.params.phiid
    if ph.shards < 1:
        raise ScalelensError(f"phiid.shards must be >= 1, got {ph.shards}")
    arrays, facts = load_activations(ctx.model)
    series, kwargs = arrays["norms"], engine_kwargs(arrays, ph)
    if ctx.args.shard:
        run_one_shard(ctx, series, kwargs)
        return

    directory = checkpoint_dir(ctx.model)
    t0 = time.perf_counter()
    if ctx.args.merge:
        result = merge_shards(directory)
    elif ph.shards == 1:
        result = pairwise_phiid(series, **kwargs)
    else:
        result = compute_all_shards(series, kwargs, ph.shards, directory)
    seconds = time.perf_counter() - t0
    if ctx.args.merge or ph.shards > 1:
        check_merged(result, input_fingerprint(series, kwargs["lengths"], kwargs["categories"]),
                     ph, directory)

    # declared only now: a failed merge (e.g. a shard still running) keeps the previous outputs
    npz_path = ctx.out(ctx.paths.phiid_npz)
    metrics_path = ctx.out(ctx.paths.phiid_metrics)
    fig_path = ctx.out(ctx.paths.phiid_fig)
    save_result(result, npz_path)
    metrics = summary_metrics(result, facts, ph)
    save_json(metrics_path, metrics)
    plot_pairwise_heatmaps(
        result.sts, result.rtr, facts["n_layers"], facts["n_heads"], fig_path, unit=result.unit,
        title=(f"{ctx.model}: pairwise PhiID between {result.n_heads} heads "
               f"({ph.estimator}-{ph.redundancy}, tau={ph.tau}, mean of {result.n_prompts} "
               f"prompts)"))
    log.info("%s: mean synergy %.4g %s, mean redundancy %.4g %s, %d degenerate heads, %d pairs "
             "undefined in >= 1 prompt", ctx.model, metrics["mean_synergy"], result.unit,
             metrics["mean_redundancy"], result.unit, metrics["n_degenerate_heads"],
             metrics["n_degenerate_pairs"])

    tags = {"params_sha256": ctx.params_sha256, "estimator": ph.estimator,
            "redundancy": ph.redundancy, "tau": ph.tau, "unit": result.unit,
            "seed": p.seed, "prompt_md5." + p.extract.prompt_set: facts["prompt_md5"],
            "input_hash": result.input_hash,
            "mode": "merge" if ctx.args.merge else ("sharded" if ph.shards > 1 else "in-process")}
    with stage_run("phiid", ctx.model, {"phiid": as_flat_dict(ph)}, tags) as run:
        run.log_metrics({
            "mean_synergy": metrics["mean_synergy"], "mean_redundancy": metrics["mean_redundancy"],
            "n_degenerate": metrics["n_degenerate_heads"],
            "n_degenerate_pairs": metrics["n_degenerate_pairs"],
            "n_undefined_pairs": metrics["n_undefined_pairs"], "seconds": seconds})
        run.log_artifact(metrics_path)
        run.log_artifact(fig_path)


if __name__ == "__main__":
    run_stage("phiid", main, add_args=add_args)
