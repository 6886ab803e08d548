"""Extraction throughput and the cost of capture, in one run.

For each default model: greedy generation of the same batch (a) plainly with model.generate and
(b) through capture_head_norms (hooks on every output projection + final-logit tracking).
Prints generated tokens/s, head-series values/s and the capture overhead (target: under 10%).
Runs alternate plain/capture and take the median of --repeats, so drift hits both alike.

    .venv/bin/python bench/bench_extract.py [--models smollm2-135m ...] [--tokens 32] [--batch 16]
"""

import argparse
import logging
import statistics
import time
import warnings

import torch

from scalelens.capture import capture_head_norms
from scalelens.models import DEFAULT_LADDER, load_model
from scalelens.prompts import load_prompt_set


def plain_generate(lm, texts, n_tokens):
    enc = lm.tokenizer(texts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        lm.model.generate(**enc, do_sample=False, max_new_tokens=n_tokens, min_new_tokens=n_tokens,
                          pad_token_id=lm.tokenizer.pad_token_id, temperature=None, top_p=None,
                          top_k=None)


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_LADDER))
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import transformers

    transformers.logging.set_verbosity_error()
    texts = list(load_prompt_set("cognitive_tasks").texts[: args.batch])
    rows = []
    for key in args.models:
        lm = load_model(key)
        n_heads = lm.geometry.n_heads_total
        plain_generate(lm, texts[:2], 2)  # warm-up
        plain, capture = [], []
        for _ in range(args.repeats):
            plain.append(timed(lambda lm=lm: plain_generate(lm, texts, args.tokens)))
            capture.append(timed(lambda lm=lm: capture_head_norms(
                lm, texts, args.tokens, args.tokens, batch_size=args.batch, progress=False)))
        tp, tc = statistics.median(plain), statistics.median(capture)
        n_tok = len(texts) * args.tokens
        rows.append((key, n_heads, n_tok / tp, n_tok / tc, n_tok * n_heads / tc,
                     100 * (tc / tp - 1)))
    print(f"\nbatch {args.batch} prompts x {args.tokens} new tokens, CPU threads "
          f"{torch.get_num_threads()}, median of {args.repeats}\n")
    print("| model | heads | plain tokens/s | capture tokens/s | head values/s | overhead |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, nh, p, c, v, o in rows:
        print(f"| {key} | {nh} | {p:.1f} | {c:.1f} | {v:,.0f} | {o:+.1f}% |")


if __name__ == "__main__":
    main()
