"""Indexing of unordered head pairs, shards and chunks (pure arithmetic, no I/O).

Pairs (i, j) with i < j are numbered row-major: pair k runs over (0,1), (0,2), ..., (0,n-1),
(1,2), ... The lower index is always the PhiID source x, the higher the target y.
"""

from __future__ import annotations

import re

import numpy as np

_SHARD_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def n_pairs(n_heads: int) -> int:
    """Number of unordered pairs of n_heads heads."""
    return n_heads * (n_heads - 1) // 2


def row_starts(n_heads: int) -> np.ndarray:
    """Pair index of (i, i+1), the first pair of row i, for every i (int64 [n_heads])."""
    i = np.arange(n_heads, dtype=np.int64)
    return i * n_heads - i * (i + 1) // 2


def pair_index(n_heads: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Row-major pair index of unordered pairs (i, j), i != j (either order)."""
    lo, hi = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
    if np.any(lo == hi):
        raise ValueError("pair_index needs i != j; the diagonal has no pair")
    return row_starts(n_heads)[lo] + (hi - lo - 1)


def pairs_in_range(n_heads: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) index arrays, i < j, of pairs start..stop-1 in row-major order."""
    total = n_pairs(n_heads)
    if not 0 <= start <= stop <= total:
        raise ValueError(
            f"pair range [{start}, {stop}) is outside [0, {total}] for {n_heads} heads"
        )
    k = np.arange(start, stop, dtype=np.int64)
    if stop == start:
        return k, k.copy()
    starts = row_starts(n_heads)
    first, last = np.searchsorted(starts, [start, stop - 1], side="right") - 1
    rows = np.arange(first, last + 1)
    row_begin = np.maximum(starts[rows], start)
    row_end = np.minimum(starts[rows] + (n_heads - 1 - rows), stop)
    i = np.repeat(rows, row_end - row_begin)
    return i, k - starts[i] + i + 1


def parse_shard(shard: str | tuple[int, int]) -> tuple[int, int]:
    """'i/N' (0 <= i < N) or (i, N) -> (i, N)."""
    if isinstance(shard, str):
        match = _SHARD_PATTERN.match(shard)
        if match is None:
            raise ValueError(f"shard spec {shard!r} is not of the form 'i/N', e.g. '0/4'")
        index, count = int(match.group(1)), int(match.group(2))
    else:
        index, count = (int(v) for v in shard)
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need N >= 1 and 0 <= i < N (shards are 0-based)")
    return index, count


def shard_pair_range(n_heads: int, shard: str | tuple[int, int]) -> tuple[int, int]:
    """Contiguous pair range [start, stop) of a shard; the N shard sizes differ by at most one."""
    index, count = parse_shard(shard)
    total = n_pairs(n_heads)
    return index * total // count, (index + 1) * total // count


def shard_pairs(n_heads: int, shard: str | tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) index arrays of the pairs a shard computes."""
    return pairs_in_range(n_heads, *shard_pair_range(n_heads, shard))


def chunk_ranges(start: int, stop: int, chunk_pairs: int) -> list[tuple[int, int]]:
    """Split [start, stop) into consecutive chunks of chunk_pairs pairs (the last may be short)."""
    if chunk_pairs < 1:
        raise ValueError(f"chunk_pairs must be >= 1, got {chunk_pairs}")
    return [(s, min(s + chunk_pairs, stop)) for s in range(start, stop, chunk_pairs)]
