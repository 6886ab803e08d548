"""Integrated Information Decomposition (PhiID) between all pairs of attention heads.

Definition: Gaussian (nats) or discrete (bits) estimator, MMI or CCS redundancy, lag tau.
`pairwise_phiid` computes every pair in memory; `compute_shard` / `merge_shards` split long runs
into resumable shards of pairs.
"""

from scalelens.phiid.atoms import ATOM_NAMES, KNOWN_NAMES, MI_NAMES
from scalelens.phiid.engine import input_fingerprint, pairwise_phiid
from scalelens.phiid.pairs import n_pairs, pair_index, parse_shard, shard_pair_range, shard_pairs
from scalelens.phiid.result import DegeneracyReport, PhiIDResult
from scalelens.phiid.settings import HEAD_REASONS, PAIR_REASONS, PhiIDSettings
from scalelens.phiid.shards import (
    CheckpointMismatchError,
    ShardMergeError,
    ShardRun,
    compute_shard,
    load_result,
    merge_shards,
    save_result,
)

__all__ = [
    "ATOM_NAMES",
    "HEAD_REASONS",
    "KNOWN_NAMES",
    "MI_NAMES",
    "PAIR_REASONS",
    "CheckpointMismatchError",
    "DegeneracyReport",
    "PhiIDResult",
    "PhiIDSettings",
    "ShardMergeError",
    "ShardRun",
    "compute_shard",
    "input_fingerprint",
    "load_result",
    "merge_shards",
    "n_pairs",
    "pair_index",
    "pairwise_phiid",
    "parse_shard",
    "save_result",
    "shard_pair_range",
    "shard_pairs",
]
