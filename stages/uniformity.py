"""Stage `uniformity`: uniformity asymmetry (UA) by layer for one model (seed 003).

Ins: the statement-pair file `uniformity.dataset` (schema: {category: {"description": str,
"expected_effect": str, "pairs": [[statement_a, statement_b], ...]}}).
Outs: results/sweeps/uniformity/<model>.json (per selected layer: Pearson r across categories of
UA vs mean output preference, p, 95% bootstrap interval over pairs within categories; per-category
UA and preference; the peak summary; the BOS rule applied; the model's family and size as the
verdict groups it), results/sweeps/uniformity/<model>.npz
(per-statement NLL, category index, bootstrap replicates of r) and the metrics json
results/sweeps/uniformity/<model>_metrics.json.

One forward pass per statement (several statements batched with right padding, each cut back to its
own tokens): the mean-pooled hidden states every `layer_step` layers plus the last, and the
statement's mean token NLL from the same pass. Position 0 is skipped in the pooling only where it
holds the tokenizer's BOS token.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from scalelens import capture
from scalelens.errors import ScalelensError
from scalelens.io import save_json, save_npz
from scalelens.models.loading import LoadedModel
from scalelens.params import as_flat_dict
from scalelens.stage import StageContext, run_stage
from scalelens.sweeps import uniformity as U
from scalelens.sweeps.verdicts import identify_loaded_model
from scalelens.tracking import stage_run


def statement_labels(ds: U.StatementPairDataset) -> list[str]:
    """'category <name>, pair <i>, statement A|B' for every statement, in statements A then B."""
    labels = {side: [f"category {c.name!r}, pair {i}, statement {side}"
                     for c in ds.categories for i in range(len(c.pairs))] for side in "AB"}
    return labels["A"] + labels["B"]


def pooled_states(lm: LoadedModel, texts, labels, layers, batch_size: int,
                  skip_first: str = "bos") -> tuple:
    """Mean-pooled embeddings [len(layers), n, d], mean token NLL [n], BOS rule per statement
    (`skip_first`: "bos" skips position 0 only when it is the BOS token, "always" as seed 003)."""
    if batch_size < 1:
        raise ScalelensError(f"uniformity.batch_size must be >= 1, got {batch_size}")
    tok = lm.tokenizer
    lengths = np.array([len(tok(t)["input_ids"]) for t in texts])
    for i in np.flatnonzero(lengths < 2):
        raise ScalelensError(f"{labels[i]} ({texts[i]!r}) has {lengths[i]} token(s); the NLL "
                             f"of a statement needs at least 2")
    order = np.argsort(-lengths, kind="stable")  # similar lengths together: little padding
    emb, nll, rules = None, np.zeros(len(texts)), [""] * len(texts)
    index = list(layers)
    for start in tqdm(range(0, len(texts), batch_size), desc=f"uniformity {lm.key}",
                      unit="batch", leave=False):
        idx = order[start:start + batch_size]
        states = capture.forward_states_batch(lm, [texts[i] for i in idx],
                                              with_block_outputs=False)
        for i, fs in zip(idx, states):
            rule = U.bos_rule(int(fs.input_ids[0]), tok.bos_token_id, skip_first)
            try:
                pooled = U.mean_pooled_embeddings(fs.hidden_states[index], rule.skip_first)
            except ValueError as e:
                raise ScalelensError(f"{labels[i]} ({texts[i]!r}): {e}") from None
            if emb is None:
                emb = np.zeros((len(index), len(texts), pooled.shape[-1]))
            emb[:, i], nll[i], rules[i] = pooled, fs.nll_nats, rule.rule
    return emb, nll, rules


def bos_rule_text(rules) -> str:
    """The rule applied, or each rule with its statement count if they differ."""
    counts = Counter(rules)
    if len(counts) == 1:
        return rules[0]
    return "; ".join(f"{n} statements: {rule}" for rule, n in counts.most_common())


def main(ctx: StageContext) -> None:
    p, u = ctx.params, ctx.params.uniformity
    ds = U.load_statement_pairs(u.dataset)
    json_path = ctx.out(ctx.paths.sweep_json("uniformity"))
    npz_path = ctx.out(ctx.paths.sweep_npz("uniformity"))
    metrics_path = ctx.out(ctx.paths.sweep_metrics("uniformity"))

    lm, device, dtype = ctx.load_model(cuda_dtype=u.cuda_dtype)
    n_layers = lm.geometry.n_layers
    layers = U.select_layers(n_layers, u.layer_step)
    texts = list(ds.statements_a()) + list(ds.statements_b())
    emb, nll, rules = pooled_states(lm, texts, statement_labels(ds), layers, u.batch_size,
                                    u.skip_first)
    n = ds.n_pairs
    rule = bos_rule_text(rules)
    study = U.uniformity_asymmetry_study(
        emb[:, :n], emb[:, n:], nll[:n], nll[n:], ds.category_index(), layers, n_layers,
        model=ctx.model, category_names=ds.category_names, bos_rule_applied=rule,
        n_boot=u.n_boot, seed=u.boot_seed)

    data = Path(u.dataset).read_bytes()
    identity = identify_loaded_model(lm)  # family and size (the registry's, else counted)
    doc = {**study.to_dict(), **identity.to_dict(), "source": lm.source, "device": device,
           "dtype": dtype, "dataset": u.dataset, "dataset_md5": hashlib.md5(data).hexdigest(),
           "n_categories": len(ds.categories), "layer_step": u.layer_step,
           "skip_first": u.skip_first, "seed_rule_used": u.skip_first == "always",
           "bos_token": lm.tokenizer.bos_token, "bos_token_id": lm.tokenizer.bos_token_id,
           "bos_rule_counts": dict(Counter(rules)),
           "capture": {"passes": "one per statement, right-padded batches of "
                                 f"{u.batch_size}; hidden states and NLL from the same pass",
                       "use_cache": False}}
    if lm.dequantised:
        doc["note"] = "weights de-quantised from GGUF: not the original bf16 weights"
    save_json(json_path, doc)
    save_npz(npz_path, nll_a=nll[:n], nll_b=nll[n:], category_index=ds.category_index(),
             layers=np.array(layers), r_replicates=study.r_replicates)
    pk = study.peak
    metrics = {"peak_r": pk.max_pos_r, "peak_depth_pct": pk.max_pos_pct,
               "peak_depth_pct_low": study.peak_pct_low, "peak_depth_pct_high": study.peak_pct_high,
               "min_r": pk.max_neg_r, "min_r_depth_pct": pk.max_neg_pct, "final_r": pk.final_r,
               "n_sign_changes": len(pk.sign_changes)}
    save_json(metrics_path, metrics)

    tags = {"params_sha256": ctx.params_sha256, "seed": p.seed, "boot_seed": u.boot_seed,
            "dataset_md5": doc["dataset_md5"], "bos_rule": rule[:500], "source": lm.source,
            "dequantised_gguf": lm.dequantised, "family": identity.family.family,
            "family_inferred": identity.family.inferred}
    with stage_run("uniformity", ctx.model, {"uniformity": as_flat_dict(u), "seed": p.seed,
                                             "device": device, "dtype": dtype},
                   tags) as run:
        run.log_metrics(metrics)
        run.log_artifact(json_path)


if __name__ == "__main__":
    run_stage("uniformity", main)
