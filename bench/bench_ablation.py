"""Benchmark: forward passes per second of the cumulative-ablation sweep (stage ablate).

For each model: the synergy study's prompt subset (params ablation.n_prompts, round-robin over
categories), the syn-first order from results/phiid/<model>_head_rankings.csv when it exists
(else a seeded random score; throughput does not depend on the order), `--n-points` KL points per
order and `--orders` orders. A pass is one batched forward of ablation.batch_size prompts.
Models that cannot be loaded here are replaced by tiny:llama, and the table says so.

Run: .venv/bin/python bench/bench_ablation.py [--models a b] [--n-points 5] [--orders 1]
     [--threads N]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from scalelens import ablation
from scalelens.errors import ScalelensError
from scalelens.models import load_model
from scalelens.params import load_params
from scalelens.prompts import load_prompt_set
from scalelens.ranking import read_head_scores

ROOT = Path(__file__).resolve().parents[1]


def head_scores(model: str, n_heads: int) -> tuple[np.ndarray, np.ndarray, str]:
    path = ROOT / "results" / "phiid" / f"{model}_head_rankings.csv"
    if path.is_file():
        flat, score = read_head_scores(path)
        if len(flat) == n_heads:
            return flat, score, "rankings"
    return np.arange(n_heads), np.random.default_rng(0).standard_normal(n_heads), "random"


def bench_model(key: str, texts: list[str], n_points: int, n_orders: int, batch_size: int):
    try:
        lm = load_model(key)
        note = ""
    except ScalelensError as e:
        lm, note = load_model("tiny:llama"), f"{key} unavailable ({e.__class__.__name__})"
        key = "tiny:llama"
    n = lm.geometry.n_heads_total
    flat, score, source = head_scores(key, n)
    orders = ablation.build_orders(flat, score, list(range(max(2, n_orders))))[:n_orders]
    step = math.ceil(n / n_points)
    tokens = sum(len(ids) for ids in lm.tokenizer(texts)["input_ids"])
    cpu0 = time.process_time()
    sweep = ablation.run_ablation_sweep(lm, texts, orders, step, batch_size, progress=False)
    cpu = time.process_time() - cpu0
    return {"model": key, "heads": n, "prompts": len(texts), "tokens/prompt": tokens / len(texts),
            "order from": source, "passes": sweep.n_forward_passes, "seconds": sweep.seconds,
            "passes/s": sweep.passes_per_s, "prompts/s": sweep.sequences_per_s,
            "cpu s": cpu, "note": note}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    params = load_params(ROOT / "params.yaml")
    ap.add_argument("--models", nargs="+", default=params.models)
    ap.add_argument("--n-points", type=int, default=5)
    ap.add_argument("--orders", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    a = params.ablation
    lock = params.prompt_lock(a.prompt_set)
    prompts = load_prompt_set(lock.set, expected_md5=lock.md5)
    texts = [prompts.texts[i] for i in ablation.select_prompts(prompts.categories, a.n_prompts)]
    rows = [bench_model(m, texts, args.n_points, args.orders, a.batch_size) for m in args.models]

    print(f"ablation sweep throughput: torch threads {torch.get_num_threads()}, "
          f"batch {a.batch_size}, {args.orders} order(s) x {args.n_points} points, float32 CPU\n")
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values()]
        print("| " + " | ".join(cells) + " |")
    # a full stage sweep = 1 + (2 + n_random) x n_points passes per batch
    full = {r["model"]: (1 + (2 + len(a.random_seeds)) * a.n_points) *
            math.ceil(r["prompts"] / a.batch_size) / r["passes/s"] for r in rows}
    print("\nestimated stage ablate sweep at params.yaml defaults: "
          + ", ".join(f"{m} {s:.0f} s" for m, s in full.items()))


if __name__ == "__main__":
    main()
