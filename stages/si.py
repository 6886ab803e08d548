"""Stage `si`: attention-entropy Specialization Index of one model (seed 002, claim B11).

Ins: the prompt set `si.prompt_set` (Standard-10 v3, MD5-checked against params.yaml).
Outs: results/sweeps/si/<model>.json (SI_seed and SI_heads with 95% bootstrap intervals, per-seed
summary, architecture facts, the dtype variant that passed the sanity check and every attempt, the
model's family and size as the verdict groups it),
results/sweeps/si/<model>.npz (per-prompt entropies [prompt, layer, head], valid lengths, bootstrap
replicates, per-seed SIs) and the metrics json results/sweeps/si/<model>_metrics.json.

Capture as in the seed: eager attention, use_cache off, each prompt alone (no padding), truncated to
`si.max_length`, no chat template. Before the run, the seed's sanity check on the first prompt
walks the dtype variants `si.dtype_order` on CUDA (bf16, fp16, fp32: the seed's) or
`si.cpu_dtype_order` on a CPU (fp32), loading the model in each, and the
first that passes is used for the whole run and recorded.
"""

from __future__ import annotations

import gc
import logging

import numpy as np
import torch
from tqdm.auto import tqdm

from scalelens import capture
from scalelens.errors import ScalelensError
from scalelens.io import save_json, save_npz
from scalelens.models.loading import LoadedModel, load_model, resolve_device
from scalelens.params import as_flat_dict
from scalelens.prompts import load_prompt_set
from scalelens.stage import StageContext, run_stage
from scalelens.sweeps import si
from scalelens.sweeps.verdicts import identify_loaded_model
from scalelens.tracking import stage_run

log = logging.getLogger("scalelens.stages.si")

CAPTURE_FACTS = {"attn_implementation": "eager", "use_cache": False, "padding": False,
                 "each_prompt_alone": True, "chat_template": False}


def text_config(lm: LoadedModel):
    """The language model's config (multimodal wrappers keep it in text_config)."""
    return getattr(lm.model.config, "text_config", None) or lm.model.config


def walk_dtype_variants(key: str, test_prompt: str, labels, device: str, max_length: int,
                        threshold: float) -> tuple[si.DtypeSelection, LoadedModel]:
    """The seed's sanity check, one model load per dtype variant; the passing model is kept."""
    held: dict[str, LoadedModel] = {}

    def measure(label: str) -> np.ndarray:
        if held:  # free the variant that failed before loading the next one
            held.clear()
            gc.collect()
        lm = load_model(key, dtype=label, device=device, attn_implementation="eager")
        held[label] = lm
        return capture.attention_patterns(lm, test_prompt, max_length)

    try:
        selection = si.select_dtype_variant(measure, labels, si_threshold=threshold)
    except si.SanityCheckError as e:
        raise ScalelensError(sanity_failure_message(key, e.attempts)) from None
    return selection, held[selection.chosen]


def sanity_failure_message(key: str, attempts) -> str:
    """One line saying why no variant passed; names eager attention when that is the cause."""
    reasons = [a.reason for a in attempts]
    if reasons and all("CaptureError" in r for r in reasons):
        detail = reasons[0].split("CaptureError: ", 1)[-1]
        return (f"{key}: attention cannot be captured eagerly ({detail}); SI needs eager attention "
                f"with output_attentions=True (tried {', '.join(a.label for a in attempts)})")
    if reasons and len(set(reasons)) == 1:
        return (f"{key}: no dtype variant passed the SI sanity check; every variant "
                f"({', '.join(a.label for a in attempts)}) failed with: {reasons[0]}")
    summary = "; ".join(f"{a.label}: {a.reason}" for a in attempts)
    return f"{key}: no dtype variant passed the SI sanity check ({summary})"


def prompt_entropies(lm: LoadedModel, texts, max_length: int, desc: str) -> tuple:
    """Normalised entropies [prompt, layer, head] and valid lengths, each prompt alone."""
    ents, lengths = [], []
    for text in tqdm(texts, desc=desc, unit="prompt", leave=False):
        att = capture.attention_patterns(lm, text, max_length)
        lengths.append(att.shape[-1])
        ents.append(si.normalized_attention_entropy(att))
    return np.stack(ents), np.array(lengths, dtype=np.int64)


def main(ctx: StageContext) -> None:
    p, s = ctx.params, ctx.params.si
    if not s.seeds:
        raise ScalelensError("si.seeds is empty: give at least one seed (the seed: 42, 123, 456)")
    lock = p.prompt_lock(s.prompt_set)
    prompts = load_prompt_set(lock.set, expected_md5=lock.md5)
    json_path = ctx.out(ctx.paths.sweep_json("si"))
    npz_path = ctx.out(ctx.paths.sweep_npz("si"))
    metrics_path = ctx.out(ctx.paths.sweep_metrics("si"))
    device = resolve_device(p.device)

    order = s.dtype_order if device.type == "cuda" else s.cpu_dtype_order
    selection, lm = walk_dtype_variants(ctx.model, prompts.texts[0], order, str(device),
                                        s.max_length, s.sanity_threshold)
    log.info("%s: sanity passed with %s (SI on the test prompt %.4f)", ctx.model,
             selection.chosen, selection.result.baseline_si)

    per_seed, si_by_seed, heads_by_seed = {}, {}, {}
    lengths = None
    for seed in s.seeds:
        torch.manual_seed(seed)
        per_seed[seed], lengths = prompt_entropies(lm, prompts.texts, s.max_length,
                                                   f"si {ctx.model} seed {seed}")
        si_by_seed[seed] = si.si_seed_from_entropies(per_seed[seed].mean(axis=0)).si
        heads_by_seed[seed] = si.si_heads_from_prompt_entropies(per_seed[seed]).si
    first = per_seed[s.seeds[0]]
    identical = all(np.array_equal(first, e) for e in per_seed.values())
    entropies = np.mean(np.stack(list(per_seed.values())), axis=0)
    result = si.specialization_index(entropies, n_boot=s.n_boot, seed=s.boot_seed)
    summary_seed = si.summarize_seed_values(si_by_seed)
    summary_heads = si.summarize_seed_values(heads_by_seed)

    cfg = text_config(lm)
    g = lm.geometry
    facts = si.architecture_facts(g.n_layers, g.n_heads, cfg.hidden_size, g.n_kv_heads)
    identity = identify_loaded_model(lm)  # family and size (the registry's, else counted)
    notes = [
        "si_seed.point is SI of the entropies averaged over the seeds' runs; with a deterministic "
        "pass it equals every per-seed SI (seed_summary)",
    ]
    if facts.d_head != g.head_dim:
        notes.append(f"the seed's d_head = hidden_size // n_heads = {facts.d_head}; this model's "
                     f"attention heads have head_dim {g.head_dim}")
    if lm.dequantised:
        notes.append("weights de-quantised from GGUF: not the original bf16 weights")
    doc = {
        "model": ctx.model, "source": lm.source, "device": device.type,
        "dtype": selection.chosen, "dtype_selection": selection.to_dict(),
        **identity.to_dict(),
        "prompt_set": prompts.name, "prompt_md5": prompts.md5, "n_prompts": len(prompts),
        "max_length": s.max_length, "valid_lengths": lengths,
        "n_truncated_prompts": int((lengths >= s.max_length).sum()),
        "capture": CAPTURE_FACTS, "seeds": list(s.seeds),
        "seed_summary": {"si_seed": summary_seed.to_dict(), "si_heads": summary_heads.to_dict(),
                         "entropies_identical_across_seeds": identical},
        "architecture": facts.to_dict(), "head_dim": g.head_dim,
        "si": result.to_dict(), "notes": notes,
    }
    save_json(json_path, doc)
    save_npz(npz_path, prompt_entropies=result.prompt_entropies, valid_lengths=lengths,
             si_seed_replicates=result.si_seed_replicates,
             si_heads_replicates=result.si_heads_replicates, seeds=np.array(s.seeds),
             si_seed_by_seed=np.array([si_by_seed[k] for k in s.seeds]),
             si_heads_by_seed=np.array([heads_by_seed[k] for k in s.seeds]))
    metrics = {
        "si_seed": result.si_seed.point, "si_seed_low": result.si_seed.low,
        "si_seed_high": result.si_seed.high, "si_heads": result.si_heads.point,
        "si_heads_low": result.si_heads.low, "si_heads_high": result.si_heads.high,
        "si_seed_std_over_seeds": summary_seed.std, "rho_head": facts.rho_head,
        "rho_kv": facts.rho_kv, "size_b": identity.n_params / 1e9,
    }
    save_json(metrics_path, metrics)

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed,
            "seeds": ",".join(str(x) for x in s.seeds),
            f"prompt_md5.{s.prompt_set}": prompts.md5, "dtype_variant": selection.chosen,
            "dtype_attempts": ",".join(f"{a.label}:{a.reason}" for a in selection.attempts),
            "attention_kind": facts.attention_label,
            "deterministic_seeds": summary_seed.deterministic,
            "source": lm.source, "dequantised_gguf": lm.dequantised,
            "family": identity.family.family, "family_inferred": identity.family.inferred}
    logged = {k: v for k, v in as_flat_dict(s).items() if not k.startswith("references.")}
    with stage_run("si", ctx.model, {"si": logged, "seed": p.seed, "device": device.type,
                                     f"prompts.{s.prompt_set}": lock.md5}, tags) as run:
        run.log_metrics(metrics)
        run.log_artifact(json_path)


if __name__ == "__main__":
    run_stage("si", main)
