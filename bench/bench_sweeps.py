"""Timing of the sweep analyses at realistic sizes (no model): prints a markdown table.

Run: .venv/bin/python bench/bench_sweeps.py
Goal: each study's analysis of one model with n_boot=1000 well under 5 s on one CPU core, so
that `make repro` is dominated by forward passes.
"""

import time

import numpy as np

from scalelens.sweeps import gain, si, uniformity

GOAL_S = 5.0


def causal_attention(rng, n_layers, n_heads, t):
    logits = rng.normal(size=(n_layers, n_heads, t, t)) * 3
    logits = np.where(np.tril(np.ones((t, t), dtype=bool)), logits, -np.inf)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    rng = np.random.default_rng(0)
    rows = []
    # SI: Phi-2 layout (32 layers x 32 heads), Standard-10 prompts of ~40 tokens.
    atts = [causal_attention(rng, 32, 32, 40) for _ in range(10)]
    rows.append(("SI entropies, 10 prompts, 32x32 heads, 40 tokens",
                 timed(lambda: si.prompt_head_entropies(atts))))
    pe = si.prompt_head_entropies(atts)
    rows.append(("SI_seed + SI_heads, n_boot=1000",
                 timed(lambda: si.specialization_index(pe, n_boot=1000, seed=0))))
    # Gain: 25 prompts, 32 layers.
    h = np.cumsum(rng.random((25, 33)) + 0.5, axis=1)
    b = h[:, 1:].copy()
    rows.append(("gain study, 25 prompts, 32 layers, n_boot=1000",
                 timed(lambda: gain.residual_gain_study(h, b, 32, 2560, n_boot=1000))))
    res = [gain.residual_gain_study(h * (1 + 0.01 * i), b, 8 * (i + 1), 2048, model=str(i),
                                    n_boot=100) for i in range(8)]
    rows.append(("H25 report, 8 models, n_boot=1000, n_perm=10000",
                 timed(lambda: gain.h25_report(res, n_boot=1000, n_perm=10000))))
    # UA: 6 categories x 22 pairs, 9 selected layers, d = 2560.
    cat = np.repeat(np.arange(6), 22)
    ea = rng.normal(size=(9, cat.size, 2560))
    eb = rng.normal(size=(9, cat.size, 2560))
    na, nb = rng.random(cat.size), rng.random(cat.size)
    rows.append(("UA study, 132 pairs, 9 layers, d=2560, n_boot=1000",
                 timed(lambda: uniformity.uniformity_asymmetry_study(
                     ea, eb, na, nb, cat, list(range(0, 33, 4)), 32, n_boot=1000))))
    print("| step | seconds | goal |")
    print("| --- | ---: | --- |")
    for name, sec in rows:
        print(f"| {name} | {sec:.3f} | {'ok' if sec < GOAL_S else 'SLOW'} (< {GOAL_S:g} s) |")


if __name__ == "__main__":
    main()
