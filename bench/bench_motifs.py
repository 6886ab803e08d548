"""Motif census + configuration-null benchmark against the networkx path; prints a markdown table.

Run: .venv/bin/python bench/bench_motifs.py [--samples 1000] [--n-jobs 2] [--quick]
     .venv/bin/python bench/bench_motifs.py --graph-set results/graphs/<slug> [--samples 100]

Work per graph: the observed triad census plus `samples` degree-preserving null graphs, each
rewired and censused. Graphs: directed G(n, m) with (n, m) = (100, 2000) and (2000, 40000).

- scalelens: vectorised swaps (10 attempted swaps per edge) + the default ("auto" = bitset)
  triad census; timed in full for all samples on `n_jobs` processes and on 1 process (the large
  graph on 1 process: a few samples, extrapolated). One more row per graph uses the
  python-igraph census instead (identical counts) to show what the census implementation costs.
- networkx: `networkx.directed_edge_swap` (nswap = 10 * m successful swaps) +
  `networkx.triadic_census` on 1 process. Far too slow for 1000 samples: a few samples are
  timed and extrapolated (marked "extrapolated").

Both wall and CPU seconds are shown; CPU seconds (this process plus its workers) do not depend
on how busy the machine is, so the speedups use them (1 process against 1 process).
Goals: >= 20x faster than the networkx path, and the 100-node graph with 1000 nulls < 10 s
on 2 processes (wall; "2 idle cores" = CPU / 2 for a shared machine).

--graph-set FOLDER instead times what stage motif_census does on one real set (e.g. a ladder
model's attribution graphs): every graph under each null model, `samples` nulls each, on
`n_jobs` processes; one row per null with the graphs' mean size.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from dataclasses import dataclass

import networkx as nx
import numpy as np

from scalelens.motifs.census import triad_census
from scalelens.motifs.nulls import NULL_MODELS, NullSpec, erdos_renyi_edges, null_censuses

SPEEDUP_GOAL = 20.0
SMALL_GOAL_S = 10.0
SWAPS_PER_EDGE = 10


@dataclass(frozen=True)
class Timing:
    path: str
    samples_timed: int
    wall_s: float  # observed census + all samples (extrapolated when fewer were timed)
    cpu_s: float
    samples_total: int

    @property
    def how(self) -> str:
        return "measured" if self.samples_timed == self.samples_total else "extrapolated"


def cpu_now() -> float:
    """CPU seconds of this process plus its finished child processes."""
    own = time.process_time()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + kids.ru_utime + kids.ru_stime


def measure(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), cpu_now()
    fn()
    return time.perf_counter() - wall, cpu_now() - cpu


def ours(spec: NullSpec, timed: int, total: int, n_jobs: int, label: str) -> Timing:
    """Observed census + `timed` nulls, scaled to `total` nulls."""
    obs_wall, obs_cpu = measure(lambda: triad_census(spec.n_nodes, spec.src, spec.dst))
    wall, cpu = measure(lambda: null_censuses(spec, n_random=timed, seed=0, n_jobs=n_jobs))
    scale = total / timed
    return Timing(label, timed, obs_wall + wall * scale, obs_cpu + cpu * scale, total)


def networkx_path(spec: NullSpec, timed: int, total: int) -> Timing:
    g = nx.DiGraph()
    g.add_nodes_from(range(spec.n_nodes))
    g.add_edges_from(zip(spec.src.tolist(), spec.dst.tolist()))
    obs_wall, obs_cpu = measure(lambda: nx.triadic_census(g))
    nswap = SWAPS_PER_EDGE * spec.src.size

    def samples():
        for k in range(timed):
            h = g.copy()
            nx.directed_edge_swap(h, nswap=nswap, max_tries=100 * nswap, seed=k)
            nx.triadic_census(h)

    wall, cpu = measure(samples)
    scale = total / timed
    return Timing(
        "networkx, 1 process", timed, obs_wall + wall * scale, obs_cpu + cpu * scale, total
    )


def bench_graph(n: int, m: int, total: int, n_jobs: int, ours_1_timed: int, nx_timed: int):
    src, dst = erdos_renyi_edges(n, m, np.random.default_rng(n))
    spec = NullSpec("config", n, src, dst, swaps_per_edge=SWAPS_PER_EDGE)
    ig_spec = NullSpec("config", n, src, dst, swaps_per_edge=SWAPS_PER_EDGE, census_method="igraph")
    return [
        ours(spec, total, total, n_jobs, f"scalelens, {n_jobs} processes"),
        ours(spec, ours_1_timed, total, 1, "scalelens, 1 process"),
        ours(ig_spec, ours_1_timed, total, 1, "scalelens + igraph census, 1 process"),
        networkx_path(spec, nx_timed, total),
    ]


def bench_graph_set(folder: str, samples: int, n_jobs: int, nulls: list[str]) -> None:
    """Stage motif_census's work on one set, per null model: a markdown table."""
    from concurrent.futures import ProcessPoolExecutor

    from scalelens.motifs.set_census import CensusSettings, census_graph_set, load_set_graphs

    graphs = load_set_graphs(folder)
    nodes = np.mean([g.n_nodes for g in graphs])
    edges = np.mean([g.n_edges for g in graphs])
    print(f"{folder}: {len(graphs)} graphs, mean {nodes:.0f} nodes, {edges:.0f} edges; "
          f"{samples} nulls per graph, {n_jobs} processes\n")
    print("| null model | wall s (all graphs) | CPU s | wall s per graph |")
    print("| --- | ---: | ---: | ---: |")
    with ProcessPoolExecutor(n_jobs) as pool:
        for null in nulls:
            settings = CensusSettings((null,), samples, SWAPS_PER_EDGE, True, 0.0, 2.0, 0)
            wall, cpu = measure(lambda s=settings: census_graph_set(
                "bench", graphs, "imported", s, require_size=False, n_jobs=n_jobs,
                executor=pool if n_jobs > 1 else None))
            print(f"| {null} | {wall:.1f} | {cpu:.1f} | {wall / len(graphs):.2f} |")
    print(f"\nload average at end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=None,
                        help="nulls per graph (default 1000; 100 with --graph-set)")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="100 samples, fewer networkx samples")
    parser.add_argument("--graph-set", help="time the census of this set folder instead")
    parser.add_argument("--nulls", nargs="+", default=["config", "layer"], choices=NULL_MODELS)
    args = parser.parse_args()
    if args.graph_set:
        bench_graph_set(args.graph_set, args.samples or 100, args.n_jobs, args.nulls)
        return
    args.samples = args.samples or 1000
    total = 100 if args.quick else args.samples
    graphs = {
        "100 nodes / 2,000 edges": bench_graph(
            100, 2000, total, args.n_jobs, total, 3 if args.quick else 10
        ),
        "2000 nodes / 40,000 edges": bench_graph(
            2000, 40000, total, args.n_jobs, 10 if args.quick else 20, 1
        ),
    }
    print(f"load average at end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print(
        f"| graph | path | samples timed | wall s (census + {total} nulls) "
        f"| CPU s (census + {total} nulls) | how | speedup vs networkx (CPU, 1 vs 1 process) |"
    )
    print("| --- | --- | ---: | ---: | ---: | --- | ---: |")
    speedups = {}
    for name, rows in graphs.items():
        nx_cpu = rows[-1].cpu_s
        speedups[name] = nx_cpu / rows[1].cpu_s
        for t in rows:
            sp = f"{nx_cpu / t.cpu_s:.0f}x" if "1 process" in t.path and t is not rows[-1] else ""
            print(
                f"| {name} | {t.path} | {t.samples_timed} | {t.wall_s:.1f} | {t.cpu_s:.1f} "
                f"| {t.how} | {sp} |"
            )
    print()
    worst = min(speedups.values())
    print(
        f"- goal speedup >= {SPEEDUP_GOAL:g}x: {'ok' if worst >= SPEEDUP_GOAL else 'MISSED'} ("
        + ", ".join(f"{k}: {v:.0f}x" for k, v in speedups.items())
        + ")"
    )
    small = graphs["100 nodes / 2,000 edges"][0]
    per_1000 = 1000 / total
    wall, idle = small.wall_s * per_1000, small.cpu_s * per_1000 / args.n_jobs
    verdict = (
        "ok" if wall < SMALL_GOAL_S else ("ok on idle cores" if idle < SMALL_GOAL_S else "MISSED")
    )
    print(
        f"- goal 100-node graph, 1000 nulls < {SMALL_GOAL_S:g} s on {args.n_jobs} processes: "
        f"{verdict} (wall {wall:.1f} s on this machine; CPU / {args.n_jobs} = {idle:.1f} s)"
    )


if __name__ == "__main__":
    main()
