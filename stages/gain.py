"""Stage `gain`: last-token residual-stream gain of one model (seed 004, hypothesis H25).

Ins: the prompt set `gain.prompt_set` (the seed's 25 prompts, MD5-checked against params.yaml).
Outs: results/sweeps/gain/<model>.json (G_seed, G_last, G_with_ln with 95% bootstrap intervals over
prompts, per-prompt gains, the block gain curve, rho, and the hidden-state layout check),
results/sweeps/gain/<model>.npz (last-token norms of every hidden state [prompt, n_layers + 1] and
of every hooked block output [prompt, n_layers]) and the metrics json
results/sweeps/gain/<model>_metrics.json.

Prompts of similar length share a right-padded forward pass (gain.batch_size; 1 = the seed's
one pass per prompt, which the batched pass equals up to float rounding), no cache: transformers'
hidden states and, from forward hooks, every block's output before the final norm.
hidden_states[-1] carries the final norm, so the seed's G_seed = |h[-2]| / |h[-3]| is the
second-to-last block's gain; G_last uses the hooked output of the last block.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from scalelens import capture
from scalelens.batching import length_sorted_batches
from scalelens.errors import ScalelensError
from scalelens.io import save_json, save_npz
from scalelens.models.loading import LoadedModel
from scalelens.params import as_flat_dict
from scalelens.prompts import load_prompt_set
from scalelens.stage import StageContext, run_stage
from scalelens.sweeps import gain
from scalelens.sweeps.verdicts import identify_loaded_model
from scalelens.tracking import stage_run


def last_token_norms(lm: LoadedModel, texts, batch_size: int = 1
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L2 norms at the last token: hidden states [P, n_layers + 1], block outputs [P, n_layers].

    Prompts of similar length run together, right-padded (`capture.forward_states_batch`: each
    prompt's states are those of its pass alone up to float rounding); batch_size 1 is the seed's
    one pass per prompt."""
    if batch_size < 1:
        raise ScalelensError(f"gain.batch_size must be >= 1, got {batch_size}")
    texts = list(texts)
    lengths = [len(lm.tokenizer(t)["input_ids"]) for t in texts]
    hidden, blocks = [None] * len(texts), [None] * len(texts)
    n_tokens = np.zeros(len(texts), dtype=np.int64)
    for idx in tqdm(length_sorted_batches(lengths, batch_size), desc=f"gain {lm.key}",
                    unit="batch", leave=False):
        states = (capture.forward_states_batch(lm, [texts[i] for i in idx], with_nll=False)
                  if len(idx) > 1 else [capture.forward_states(lm, texts[idx[0]], with_nll=False)])
        for i, fs in zip(idx, states):
            hidden[i] = np.linalg.norm(fs.hidden_states[:, -1, :].astype(np.float64), axis=-1)
            blocks[i] = np.linalg.norm(fs.block_outputs[:, -1, :].astype(np.float64), axis=-1)
            n_tokens[i] = fs.input_ids.size
    return np.stack(hidden), np.stack(blocks), n_tokens


def main(ctx: StageContext) -> None:
    p, g = ctx.params, ctx.params.gain
    lock = p.prompt_lock(g.prompt_set)
    prompts = load_prompt_set(lock.set, expected_md5=lock.md5)
    json_path = ctx.out(ctx.paths.sweep_json("gain"))
    npz_path = ctx.out(ctx.paths.sweep_npz("gain"))
    metrics_path = ctx.out(ctx.paths.sweep_metrics("gain"))

    lm, device, dtype = ctx.load_model(cuda_dtype=g.cuda_dtype)
    hidden, blocks, n_tokens = last_token_norms(lm, prompts.texts, g.batch_size)
    cfg = getattr(lm.model.config, "text_config", None) or lm.model.config
    result = gain.residual_gain_study(hidden, blocks, lm.geometry.n_heads, cfg.hidden_size,
                                      model=ctx.model, n_boot=g.n_boot, seed=g.boot_seed)

    notes = list(result.notes)
    head_dim = lm.geometry.head_dim
    if head_dim != result.d_head:
        notes.append(f"the seed's d_head = d_model // n_heads = {result.d_head}; this model's "
                     f"heads have head_dim {head_dim} (rho with it: "
                     f"{lm.geometry.n_heads / head_dim:.4f}); the verdict uses the seed's rho")
    if lm.dequantised:
        notes.append("weights de-quantised from GGUF: not the original bf16 weights")
    identity = identify_loaded_model(lm)  # family and size (the registry's, else counted)
    doc = {**result.to_dict(), **identity.to_dict(), "notes": notes, "source": lm.source,
           "device": device, "dtype": dtype, "prompt_set": prompts.name, "prompt_md5": prompts.md5,
           "n_prompts": len(prompts), "prompt_categories": list(prompts.categories),
           "n_tokens": n_tokens, "head_dim": head_dim,
           "capture": {"use_cache": False, "padding": False, "each_prompt_alone": True,
                       "norm": "L2 of the last token's vector",
                       "block_outputs": "forward hooks on the decoder blocks (before the final "
                                        "norm)"}}
    save_json(json_path, doc)
    save_npz(npz_path, hidden_norms=hidden, block_output_norms=blocks, n_tokens=n_tokens)
    metrics = {"rho": result.rho, "g_seed": result.g_seed.point, "g_seed_low": result.g_seed.low,
               "g_seed_high": result.g_seed.high, "g_last": result.g_last.point,
               "g_last_low": result.g_last.low, "g_last_high": result.g_last.high,
               "g_with_ln": result.g_with_ln.point,
               "layout_max_rel_diff": result.layout.max_rel_diff_intermediate}
    save_json(metrics_path, metrics)

    def regime(dampening: bool) -> str:
        return "DAMPENING" if dampening else "EXPANSION"

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed, "boot_seed": g.boot_seed,
            f"prompt_md5.{g.prompt_set}": prompts.md5, "source": lm.source,
            "dequantised_gguf": lm.dequantised, "regime.G_seed": regime(result.is_dampening_seed),
            "regime.G_last": regime(result.is_dampening_last),
            "hidden_state_layout_ok": result.layout.intermediate_match_block_outputs,
            "family": identity.family.family, "family_inferred": identity.family.inferred}
    with stage_run("gain", ctx.model, {"gain": as_flat_dict(g), "seed": p.seed,
                                       "device": device, "dtype": dtype}, tags) as run:
        run.log_metrics(metrics)
        run.log_artifact(json_path)


if __name__ == "__main__":
    run_stage("gain", main)
