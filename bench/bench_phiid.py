"""Benchmark: all-pairs Gaussian-MMI PhiID (fast path) against the per-pair reference.

1,152 heads (Qwen3-8B: 36 layers x 32 heads), series of 200 steps, all 662,976 pairs, tau = 1.
Targets: all pairs in < 2 s, and >= 1000x the per-pair reference's throughput (the reference is
timed on a random sample of pairs and extrapolated). Also reports peak memory, agreement on the
sampled pairs, and (for planning) throughput of the other estimators on a subset of heads.

Run: .venv/bin/python bench/bench_phiid.py [--heads 1152] [--steps 200] [--sample-pairs 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from phiid_reference import reference_vector

from scalelens.phiid import ATOM_NAMES, n_pairs, pairwise_phiid

TARGET_SECONDS = 2.0
TARGET_SPEEDUP = 1000.0


def synthetic_norms(n_heads: int, n_steps: int, seed: int) -> np.ndarray:
    """Positive, autocorrelated, cross-coupled series [n_heads, n_steps] shaped like head norms."""
    rng = np.random.default_rng(seed)
    shared = np.cumsum(rng.standard_normal((8, n_steps)), axis=1) * 0.2
    loadings = rng.normal(0, 0.5, (n_heads, 8))
    noise = rng.standard_normal((n_heads, n_steps))
    ar = np.zeros_like(noise)
    for t in range(1, n_steps):
        ar[:, t] = 0.6 * ar[:, t - 1] + noise[:, t]
    return 5.0 + loadings @ shared + ar


def time_fast(series: np.ndarray, repeats: int, **kwargs) -> tuple[list[float], object]:
    """Wall times of `repeats` full all-pairs runs, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = pairwise_phiid(series, **kwargs)
        times.append(time.perf_counter() - start)
    return times, result


def peak_traced_mib(series: np.ndarray) -> float:
    """Peak Python/numpy heap (tracemalloc) of one all-pairs run, MiB."""
    tracemalloc.start()
    pairwise_phiid(series)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def time_reference(series: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[float, np.ndarray]:
    """Seconds per pair of the reference (source i, target j), and its atoms [n_sample, 16]."""
    start = time.perf_counter()
    atoms = np.array([reference_vector(series[a], series[b]) for a, b in zip(i, j, strict=True)])
    return (time.perf_counter() - start) / len(i), atoms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=1152)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--sample-pairs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--other-heads", type=int, default=256,
                        help="heads for the CCS / discrete throughput rows")  # fmt: skip
    parser.add_argument(
        "--prompts", type=int, default=0,
        help="also time a [prompts, heads, steps] run with lengths and categories",
    )  # fmt: skip
    args = parser.parse_args()

    series = synthetic_norms(args.heads, args.steps, seed=0)
    total = n_pairs(args.heads)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    fast_times, result = time_fast(series, args.repeats)
    fast_best, fast_median = min(fast_times), statistics.median(fast_times)
    peak_mib = peak_traced_mib(series)

    rng = np.random.default_rng(1)
    flat = rng.choice(total, size=args.sample_pairs, replace=False)
    i, j = np.triu_indices(args.heads, 1)
    i, j = i[flat], j[flat]
    ref_seconds, forward = time_reference(series, i, j)
    backward = np.array([reference_vector(series[b], series[a]) for a, b in zip(i, j, strict=True)])
    sts, rtr = ATOM_NAMES.index("sts"), ATOM_NAMES.index("rtr")
    max_diff = max(
        np.abs(result.sts[i, j] - forward[:, sts]).max(),
        np.abs(result.rtr[i, j] - forward[:, rtr]).max(),
        np.abs(result.sts[j, i] - backward[:, sts]).max(),
        np.abs(result.rtr[j, i] - backward[:, rtr]).max(),
    )
    ref_all_pairs = ref_seconds * total
    speedup = ref_all_pairs / fast_median
    max_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    other = synthetic_norms(args.other_heads, args.steps, seed=2)
    other_rows = []
    for estimator, redundancy in (("gaussian", "CCS"), ("discrete", "MMI")):
        start = time.perf_counter()
        pairwise_phiid(other, estimator=estimator, redundancy=redundancy)
        seconds = time.perf_counter() - start
        per_pair = seconds / n_pairs(args.other_heads)
        other_rows.append((estimator, redundancy, seconds, per_pair))

    prompt_row = None
    if args.prompts > 0:
        stacked = np.stack(
            [synthetic_norms(args.heads, args.steps, s) for s in range(args.prompts)]
        )
        lengths = np.random.default_rng(3).integers(
            args.steps * 3 // 5, args.steps + 1, args.prompts
        )
        categories = [f"category{p % 6}" for p in range(args.prompts)]
        start = time.perf_counter()
        pairwise_phiid(stacked.astype(np.float32), lengths=lengths, categories=categories)
        prompt_row = time.perf_counter() - start

    print(f"## PhiID benchmark: {args.heads} heads, {args.steps} steps, {total:,} pairs, tau=1\n")
    print(f"CPU cores available: {cores}; numpy {np.__version__}\n")
    print("| measure | value | target | met |")
    print("| --- | --- | --- | --- |")
    print(
        f"| fast gaussian-MMI, all pairs (median of {args.repeats}) | {fast_median:.3f} s "
        f"(best {fast_best:.3f} s) | < {TARGET_SECONDS:.0f} s | "
        f"{'yes' if fast_median < TARGET_SECONDS else 'NO'} |"
    )
    print(f"| fast throughput | {total / fast_median:,.0f} pairs/s | | |")
    print(
        f"| reference, per pair ({args.sample_pairs} sampled pairs) | {ref_seconds * 1e3:.2f} ms "
        f"| | |"
    )
    print(f"| reference throughput | {1 / ref_seconds:,.0f} pairs/s | | |")
    print(f"| reference, all pairs (extrapolated) | {ref_all_pairs:,.0f} s | | |")
    print(
        f"| speed-up fast / reference | {speedup:,.0f}x | >= {TARGET_SPEEDUP:,.0f}x | "
        f"{'yes' if speedup >= TARGET_SPEEDUP else 'NO'} |"
    )
    print(f"| max abs diff sts/rtr vs reference, both orders | {max_diff:.1e} nats | <= 1e-9 | "
          f"{'yes' if max_diff <= 1e-9 else 'NO'} |")  # fmt: skip
    print(f"| peak traced heap, one all-pairs run (tracemalloc) | {peak_mib:,.0f} MiB | | |")
    print(f"| peak RSS of the process (getrusage) | {max_rss_mib:,.0f} MiB | | |")
    if prompt_row is not None:
        print(
            f"| fast gaussian-MMI, {args.prompts} prompts (lengths {args.steps * 3 // 5}-"
            f"{args.steps}, 6 categories) | {prompt_row:.1f} s | | |"
        )
    for estimator, redundancy, seconds, per_pair in other_rows:
        print(
            f"| {estimator}-{redundancy}, {args.other_heads} heads ({n_pairs(args.other_heads):,} "
            f"pairs) | {seconds:.2f} s; all {total:,} pairs ~ {per_pair * total:,.0f} s | | |"
        )


if __name__ == "__main__":
    main()
