"""Stage `extract`: per-head output norms during greedy generation, for one model.

Outs: results/activations/<model>.npz (norms [prompt, head, step], lengths, tokens, final_logits,
categories) and results/activations/<model>.json (texts and run facts).
"""

import time

import numpy as np

from scalelens.capture import capture_head_norms
from scalelens.io import save_json, save_npz
from scalelens.params import as_flat_dict
from scalelens.prompts import load_prompt_set
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import stage_run


def main(ctx: StageContext) -> None:
    p, x = ctx.params, ctx.params.extract
    lock = p.prompt_lock(x.prompt_set)
    prompts = load_prompt_set(lock.set, expected_md5=lock.md5)
    npz_path = ctx.out(ctx.paths.activations_npz)
    json_path = ctx.out(ctx.paths.activations_json)

    lm, device, dtype = ctx.load_model()
    t0 = time.perf_counter()
    series = capture_head_norms(lm, prompts.texts, x.max_new_tokens, x.min_new_tokens,
                                x.batch_size, x.chat_template)
    seconds = time.perf_counter() - t0

    save_npz(npz_path, norms=series.norms, lengths=series.lengths, tokens=series.tokens,
             final_logits=series.final_logits, categories=np.array(prompts.categories))
    n_tokens = int(series.lengths.sum())
    facts = {
        "model": ctx.model, "source": lm.source, "dequantised_gguf": lm.dequantised,
        "dtype": dtype, "device": device, "n_layers": series.n_layers,
        "n_heads": series.n_heads, "n_heads_total": series.n_layers * series.n_heads,
        "prompt_set": prompts.name, "prompt_md5": prompts.md5,
        "series_length_max": x.max_new_tokens, "units": "L2 norm of head output",
        "prompts": [{"category": c, "text": t, "formatted": f, "generated": g, "length": int(n)}
                    for c, t, f, g, n in zip(prompts.categories, prompts.texts,
                                             series.prompt_texts, series.generated_texts,
                                             series.lengths)],
    }
    if lm.dequantised:
        facts["note"] = "weights de-quantised from GGUF: not the original bf16 weights"
    save_json(json_path, facts)

    metrics = {"tokens_per_s": n_tokens / seconds, "n_heads": series.n_layers * series.n_heads,
               "series_length_mean": float(series.lengths.mean()),
               "series_length_min": int(series.lengths.min()),
               "head_values_per_s": n_tokens * series.n_layers * series.n_heads / seconds,
               "generate_seconds": seconds}
    tags = {"prompt_md5." + x.prompt_set: prompts.md5, "params_sha256": ctx.params_sha256,
            "seed": p.seed, "source": lm.source, "dequantised_gguf": lm.dequantised}
    with stage_run("extract", ctx.model, {"extract": as_flat_dict(x), "seed": p.seed,
                                           "device": device, "dtype": dtype}, tags) as run:
        run.log_metrics(metrics)
        run.log_artifact(json_path)


if __name__ == "__main__":
    run_stage("extract", main)
