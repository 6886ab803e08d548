"""Random null graphs and their triad censuses, seeded per sample and run across processes.

Null models (``NULL_MODELS``):

- ``"config"``: degree-preserving configuration model by directed double-edge swaps
  (a->b, c->d) => (a->d, c->b). Every node keeps its in- and out-degree; no self-loops or
  multi-edges are ever created. ``swaps_per_edge * n_edges`` swaps are *attempted* per sample,
  each sample starting from the observed graph.
- ``"er"``: directed Erdos-Renyi G(n, m) with the observed n and m (same density), no self-loops.
- ``"layer"``: the same swaps, restricted to pairs of edges with the same ordered
  (source layer, target layer); keeps degrees *and* the edge count of every layer pair.

Swap engine: each round pairs up the edges of every swap class uniformly at random (a random
perfect matching) and proposes all pairs at once. A pair is applied only if neither new edge is a
self-loop or an existing edge, no other pair in the round proposes the same new edge, and no other
pair proposes one of its current edges. This rule is symmetric (from the result, the same matching
proposes exactly the reverse moves), so the vectorised chain is symmetric like the sequential one
and its stationary distribution is uniform over the graphs it can reach.

Reproducibility: sample k uses ``np.random.default_rng(SeedSequence(seed).spawn(n_random)[k])``,
so results do not depend on n_jobs or on how samples are split across processes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from scalelens.motifs.census import CENSUS_METHODS, TRIAD_LABELS, triad_census

log = logging.getLogger(__name__)

NULL_MODELS: tuple[str, ...] = ("config", "er", "layer")
#: Above this many nodes the swap engine checks edge membership by sorting instead of an n*n table.
DENSE_MAX_NODES = 3000
#: Chains rewired side by side share tables of (chains * n * n) entries, at most this many.
DENSE_BATCH_ENTRIES = 1 << 20
MAX_SWAP_BATCH = 64


@dataclass(frozen=True, eq=False)
class NullSpec:
    """Everything a worker needs to draw null graphs of one observed graph."""

    kind: str
    n_nodes: int
    src: np.ndarray
    dst: np.ndarray
    edge_classes: np.ndarray | None = None  # int per edge; swaps stay within a class ("layer")
    swaps_per_edge: float = 10.0
    dense_max_nodes: int = DENSE_MAX_NODES
    census_method: str = "auto"

    def __post_init__(self):
        if self.kind not in NULL_MODELS:
            raise ValueError(
                f"null model {self.kind!r} is unknown; choose one of {list(NULL_MODELS)}"
            )
        if self.kind == "layer" and self.edge_classes is None:
            raise ValueError(
                "the 'layer' null model needs edge_classes (one layer-pair id per edge)"
            )
        if self.census_method not in CENSUS_METHODS:
            raise ValueError(
                f"census method {self.census_method!r} is unknown; choose one of {CENSUS_METHODS}"
            )
        if not self.swaps_per_edge >= 0:
            raise ValueError(f"swaps_per_edge must be >= 0, got {self.swaps_per_edge}")


def layer_pair_classes(layers: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """One int id per edge for its ordered (source layer, target layer) pair."""
    pairs = np.column_stack([np.asarray(layers)[src], np.asarray(layers)[dst]])
    if pairs.size == 0:
        return np.zeros(0, dtype=np.int64)
    _, ids = np.unique(pairs, axis=0, return_inverse=True)
    return ids.reshape(-1).astype(np.int64)


def null_spec_for_graph(
    graph, kind: str = "config", swaps_per_edge: float = 10.0, census_method: str = "auto"
) -> NullSpec:
    """NullSpec for an AttributionGraph (layer classes are filled in for the 'layer' null)."""
    classes = layer_pair_classes(graph.layers, graph.src, graph.dst) if kind == "layer" else None
    return NullSpec(
        kind=kind,
        n_nodes=graph.n_nodes,
        src=graph.src,
        dst=graph.dst,
        edge_classes=classes,
        swaps_per_edge=swaps_per_edge,
        census_method=census_method,
    )


class _DenseEdgeTable:
    """Edge membership and per-round proposal checks in n*n tables (fast for small n)."""

    def __init__(self, codes: np.ndarray, size: int):
        self.present = np.zeros(size, dtype=bool)
        self.present[codes] = True
        self.slot = np.zeros(size, dtype=np.int32)  # some index e with new[e] == code (this round)
        self.repeated = np.zeros(size, dtype=bool)

    def exists(self, codes: np.ndarray) -> np.ndarray:
        return self.present[codes]

    def proposal_counts(self, new: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per `new` code: 1 if proposed once, 2 if more often; per `query` code: 1 if proposed.

        Uses "some writer wins" fancy assignment; the answer does not depend on which one wins.
        """
        idx = np.arange(new.size, dtype=np.int32)
        self.slot[new] = idx
        winner = self.slot[new]
        repeated_codes = new[winner != idx]
        self.repeated[repeated_codes] = True
        new_count = 1 + self.repeated[new]
        self.repeated[repeated_codes] = False
        cand = self.slot[query]
        hit = (cand < new.size) & (new[np.minimum(cand, new.size - 1)] == query)
        return new_count, hit.astype(np.int64)

    def replace(self, old: np.ndarray, new: np.ndarray) -> None:
        self.present[old] = False
        self.present[new] = True


class _SortedEdgeTable:
    """Edge membership by sorting (memory O(m), any n); same answers as _DenseEdgeTable."""

    def __init__(self, codes: np.ndarray, size: int):
        self.sorted = np.sort(codes)

    def exists(self, codes: np.ndarray) -> np.ndarray:
        return np.isin(codes, self.sorted)

    def proposal_counts(self, new: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        uniq, inverse, counts = np.unique(new, return_inverse=True, return_counts=True)
        return counts[inverse.reshape(-1)], np.isin(query, uniq).astype(np.int64)

    def replace(self, old: np.ndarray, new: np.ndarray) -> None:
        keep = ~np.isin(self.sorted, old, assume_unique=True)
        self.sorted = np.sort(np.concatenate([self.sorted[keep], new]))


@dataclass(frozen=True)
class _Pairing:
    """Precomputed slot layout for drawing random within-class perfect matchings."""

    class_order: np.ndarray | None  # slot order grouped by class (None: one class)
    sorted_classes: np.ndarray | None
    left: np.ndarray  # positions (in grouped order) that start a pair; partner is left + 1

    @classmethod
    def build(cls, n_edges: int, classes: np.ndarray | None) -> _Pairing:
        if classes is None or np.unique(classes).size <= 1:
            n_pairs = n_edges // 2
            return cls(None, None, np.arange(0, 2 * n_pairs, 2))
        order = np.argsort(classes, kind="stable")
        sorted_classes = np.asarray(classes)[order]
        starts = np.searchsorted(sorted_classes, sorted_classes, "left")
        ends = np.searchsorted(sorted_classes, sorted_classes, "right")
        pos = np.arange(n_edges)
        left = np.nonzero(((pos - starts) % 2 == 0) & (pos + 1 < ends))[0]
        return cls(order, sorted_classes, left)

    @property
    def n_pairs(self) -> int:
        return int(self.left.size)

    def draw(self, rng: np.random.Generator, n_edges: int) -> np.ndarray:
        """Slot order whose consecutive (left, left + 1) positions form a random matching."""
        if self.class_order is None:
            return rng.permutation(n_edges)
        return self.class_order[np.lexsort((rng.random(n_edges), self.sorted_classes))]


def swap_batch_size(n_nodes: int, dense_max_nodes: int = DENSE_MAX_NODES) -> int:
    """How many samples swap_targets rewires together (bounded table memory; 1 when sorting)."""
    if n_nodes > dense_max_nodes:
        return 1
    return int(max(1, min(MAX_SWAP_BATCH, DENSE_BATCH_ENTRIES // max(n_nodes * n_nodes, 1))))


def swap_targets(
    src: np.ndarray,
    dst: np.ndarray,
    n_nodes: int,
    n_swaps: int,
    rngs: Sequence[np.random.Generator],
    edge_classes: np.ndarray | None = None,
    dense_max_nodes: int = DENSE_MAX_NODES,
) -> np.ndarray:
    """Targets (len(rngs), n_edges) after ~n_swaps attempted swaps, one chain per generator.

    Swaps only exchange targets between two edges of the same class (all edges one class when
    edge_classes is None), so sources and degrees never change. The chains run side by side
    but independently: chain k draws only from rngs[k], so its result does not depend on the
    batch it runs in. Input must be a simple digraph; every output row is one too.
    """
    n_edges, n_chains = np.size(src), len(rngs)
    # int32 codes halve the memory traffic whenever every code fits
    dt = np.int32 if n_chains * n_nodes * n_nodes < np.iinfo(np.int32).max else np.int64
    src = np.asarray(src).astype(dt)
    dst = np.tile(np.asarray(dst).astype(dt), (n_chains, 1))
    pairing = _Pairing.build(n_edges, edge_classes)
    if pairing.n_pairs == 0 or n_swaps <= 0 or n_chains == 0:
        return dst.astype(np.int64)
    dense = n_nodes <= dense_max_nodes
    if not dense and n_chains > 1:
        raise ValueError(
            f"above {dense_max_nodes} nodes chains run one at a time; got {n_chains} generators"
        )
    # chain k's edge codes live in [k * n^2, (k + 1) * n^2): chains never see each other's edges
    offset = (np.arange(n_chains, dtype=dt) * dt(n_nodes * n_nodes))[:, None]
    codes = (src * n_nodes + dst + offset).ravel()
    table = (_DenseEdgeTable if dense else _SortedEdgeTable)(codes, n_chains * n_nodes * n_nodes)
    left, m = pairing.left, pairing.n_pairs
    for _ in range(math.ceil(n_swaps / m)):
        order = np.stack([pairing.draw(rng, n_edges) for rng in rngs])
        i, j = order[:, left], order[:, left + 1]
        a, c = src[i], src[j]
        b, d = np.take_along_axis(dst, i, axis=1), np.take_along_axis(dst, j, axis=1)
        new1, new2 = a * n_nodes + d + offset, c * n_nodes + b + offset
        old1, old2 = a * n_nodes + b + offset, c * n_nodes + d + offset
        new = np.concatenate([new1, new2], axis=1).ravel()
        old = np.concatenate([old1, old2], axis=1).ravel()
        taken = table.exists(new).reshape(n_chains, 2 * m)
        new_count, old_hit = (x.reshape(n_chains, 2 * m) for x in table.proposal_counts(new, old))
        ok = (a != d) & (c != b) & ~taken[:, :m] & ~taken[:, m:]
        ok &= (new_count[:, :m] == 1) & (new_count[:, m:] == 1)
        ok &= (old_hit[:, :m] == 0) & (old_hit[:, m:] == 0)
        rows, cols = np.nonzero(ok)
        if rows.size == 0:
            continue
        dst[rows, i[rows, cols]] = d[rows, cols]
        dst[rows, j[rows, cols]] = b[rows, cols]
        table.replace(np.concatenate([old1[ok], old2[ok]]), np.concatenate([new1[ok], new2[ok]]))
    return dst.astype(np.int64)


def swap_edges(
    src: np.ndarray,
    dst: np.ndarray,
    n_nodes: int,
    n_swaps: int,
    rng: np.random.Generator,
    edge_classes: np.ndarray | None = None,
    dense_max_nodes: int = DENSE_MAX_NODES,
) -> tuple[np.ndarray, np.ndarray]:
    """One chain of swap_targets: new (src, dst) after ~n_swaps attempted swaps."""
    targets = swap_targets(src, dst, n_nodes, n_swaps, [rng], edge_classes, dense_max_nodes)
    return np.array(src, dtype=np.int64, copy=True), targets[0]


def erdos_renyi_edges(
    n_nodes: int, n_edges: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Directed G(n, m): n_edges distinct ordered pairs without self-loops, uniformly at random."""
    n_slots = n_nodes * (n_nodes - 1)
    if n_edges > n_slots:
        raise ValueError(f"cannot place {n_edges} edges on {n_nodes} nodes (at most {n_slots})")
    k = np.sort(rng.choice(n_slots, size=n_edges, replace=False)).astype(np.int64)
    src = k // max(n_nodes - 1, 1)
    r = k % max(n_nodes - 1, 1)
    dst = r + (r >= src)
    return src, dst


def sample_null_batch(
    spec: NullSpec, rngs: Sequence[np.random.Generator]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One null graph (src, dst) per generator; graph k depends only on rngs[k]."""
    if spec.kind == "er":
        return [erdos_renyi_edges(spec.n_nodes, spec.src.size, rng) for rng in rngs]
    n_swaps = int(round(spec.swaps_per_edge * spec.src.size))
    classes = spec.edge_classes if spec.kind == "layer" else None
    targets = swap_targets(
        spec.src, spec.dst, spec.n_nodes, n_swaps, rngs, classes, spec.dense_max_nodes
    )
    return [(spec.src, t) for t in targets]


def sample_null_edges(spec: NullSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One null graph (src, dst) drawn from spec with rng."""
    return sample_null_batch(spec, [rng])[0]


def _census_chunk(spec: NullSpec, seeds: Sequence[np.random.SeedSequence]) -> np.ndarray:
    """Triad censuses of the null graphs for the given per-sample seeds, (len(seeds), 16)."""
    out = np.empty((len(seeds), len(TRIAD_LABELS)), dtype=np.int64)
    batch = swap_batch_size(spec.n_nodes, spec.dense_max_nodes)
    for start in range(0, len(seeds), batch):
        rngs = [np.random.default_rng(seq) for seq in seeds[start : start + batch]]
        for row, (src, dst) in enumerate(sample_null_batch(spec, rngs), start=start):
            out[row] = triad_census(spec.n_nodes, src, dst, spec.census_method)
    return out


def sample_seeds(seed: int | np.random.SeedSequence, n_random: int) -> list[np.random.SeedSequence]:
    """Per-sample child seeds: sample k always gets child k, whatever the process split."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return root.spawn(n_random)


def null_censuses(
    spec: NullSpec,
    n_random: int = 100,
    seed: int | np.random.SeedSequence = 0,
    n_jobs: int = 1,
    executor: Executor | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Triad censuses of n_random null graphs, int64 (n_random, 16), identical for any n_jobs.

    n_jobs=1 without an executor runs inline; otherwise samples are split into chunks and run on
    `executor` (or a ProcessPoolExecutor with n_jobs workers created for this call).
    """
    if n_random < 1:
        raise ValueError(f"n_random must be >= 1, got {n_random}")
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    seeds = sample_seeds(seed, n_random)
    if executor is None and n_jobs == 1:
        step = swap_batch_size(spec.n_nodes, spec.dense_max_nodes)
        chunks = [seeds[k : k + step] for k in range(0, n_random, step)]
        rows = [_census_chunk(spec, c) for c in tqdm(chunks, disable=not progress, desc="nulls")]
        return np.concatenate(rows)
    n_chunks = min(n_random, 4 * max(n_jobs, getattr(executor, "_max_workers", 1)))
    chunks = [list(c) for c in np.array_split(np.array(seeds, dtype=object), n_chunks)]
    if executor is not None:
        return _run_chunks(executor, spec, chunks, progress)
    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        return _run_chunks(pool, spec, chunks, progress)


def _run_chunks(executor: Executor, spec: NullSpec, chunks: list, progress: bool) -> np.ndarray:
    futures = [executor.submit(_census_chunk, spec, chunk) for chunk in chunks]
    results = [f.result() for f in tqdm(futures, disable=not progress, desc="nulls")]
    return np.concatenate(results)
