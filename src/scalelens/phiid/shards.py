"""Sharded, resumable all-pairs PhiID: per-chunk npz checkpoints, merge, and result save/load.

The only file I/O of the PhiID package. A shard 'i/N' is a contiguous range of row-major pairs
(scalelens.phiid.pairs); it is computed chunk by chunk and every finished chunk is written
atomically to `<checkpoint_dir>/phiid_shard{i}of{N}_chunk{c}.npz`, so a rerun skips finished
chunks. Every file records the run's settings and input hash; resume and merge refuse to mix runs.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from scalelens.errors import ScalelensError
from scalelens.io import save_npz
from scalelens.phiid.engine import (
    category_codes,
    compute_pair_chunk,
    input_fingerprint,
    prepare_prompt,
    prompt_series,
)
from scalelens.phiid.pairs import chunk_ranges, parse_shard, shard_pair_range
from scalelens.phiid.result import (
    DegeneracyReport,
    PairChunk,
    PhiIDResult,
    assemble_result,
    count_reasons,
)
from scalelens.phiid.settings import HEAD_REASONS, PhiIDSettings

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_CHUNK_GLOB = "phiid_shard*of*_chunk*.npz"
# Metadata that must agree between every checkpoint file of one run.
_RUN_KEYS = (
    "format_version", "estimator", "redundancy", "tau", "n_heads", "n_prompts", "input_hash",
    "return_atoms", "categories", "n_shards",
)  # fmt: skip


class CheckpointMismatchError(ScalelensError):
    """A checkpoint directory holds files from a different run (settings, input or sharding)."""


class ShardMergeError(ScalelensError):
    """The checkpoint directory does not hold every chunk of every shard of one run."""


@dataclass(frozen=True)
class ShardRun:
    """What compute_shard did: its pair range, and how many chunks it computed or found done."""

    shard_index: int
    n_shards: int
    pair_start: int
    pair_stop: int
    n_chunks: int
    n_computed: int
    n_resumed: int
    files: tuple[Path, ...]


def chunk_path(checkpoint_dir: Path, shard_index: int, n_shards: int, chunk_index: int) -> Path:
    """Checkpoint file of one chunk of one shard."""
    return Path(checkpoint_dir) / (
        f"phiid_shard{shard_index:05d}of{n_shards:05d}_chunk{chunk_index:07d}.npz"
    )


def _run_metadata(
    settings: PhiIDSettings,
    n_heads: int,
    n_prompts: int,
    input_hash: str,
    return_atoms: bool,
    categories: tuple[str, ...],
    n_shards: int,
) -> dict[str, object]:
    """The run identity stored in (and compared across) every checkpoint file."""
    return {
        "format_version": FORMAT_VERSION, "estimator": settings.estimator,
        "redundancy": settings.redundancy, "tau": settings.tau, "n_heads": n_heads,
        "n_prompts": n_prompts, "input_hash": input_hash, "return_atoms": return_atoms,
        "categories": tuple(categories), "n_shards": n_shards,
    }  # fmt: skip


def _metadata_from_file(data: np.lib.npyio.NpzFile) -> dict[str, object]:
    """Read back the metadata fields written by _write_chunk."""
    meta = {}
    for key in data.files:
        if key.startswith("meta_"):
            value = data[key]
            meta[key[5:]] = tuple(str(v) for v in value) if value.ndim == 1 else value.item()
    return meta


def _differences(expected: dict[str, object], found: dict[str, object], keys: Sequence[str]) -> str:
    """'key: found X, expected Y' for every differing key."""
    return "; ".join(
        f"{k}: file has {found.get(k)!r}, this run has {expected.get(k)!r}"
        for k in keys
        if found.get(k) != expected.get(k)
    )


def _write_chunk(
    path: Path, meta: dict[str, object], chunk: PairChunk, head_reasons: np.ndarray
) -> None:
    """Write one chunk's npz atomically (temporary file, then rename)."""
    arrays = {f"meta_{k}": np.array(v) for k, v in meta.items()}
    arrays["meta_categories"] = np.array(meta["categories"], dtype=str).reshape(-1)
    arrays.update(
        head_reasons=head_reasons, values=chunk.values, n_prompts_defined=chunk.n_prompts_defined,
        n_undefined_by_prompt=chunk.n_undefined_by_prompt,
        n_singular_by_prompt=chunk.n_singular_by_prompt,
    )  # fmt: skip
    if chunk.category_values is not None:
        arrays["category_values"] = chunk.category_values
        arrays["n_defined_by_category"] = chunk.n_defined_by_category
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _read_chunk(data: np.lib.npyio.NpzFile) -> PairChunk:
    """PairChunk from an open checkpoint file."""
    has_categories = "category_values" in data.files
    return PairChunk(
        pair_start=int(data["meta_pair_start"]),
        pair_stop=int(data["meta_pair_stop"]),
        values=data["values"],
        n_prompts_defined=data["n_prompts_defined"],
        category_values=data["category_values"] if has_categories else None,
        n_defined_by_category=data["n_defined_by_category"] if has_categories else None,
        n_undefined_by_prompt=data["n_undefined_by_prompt"],
        n_singular_by_prompt=data["n_singular_by_prompt"],
    )


def compute_shard(
    series: np.ndarray,
    *,
    shard: str | tuple[int, int],
    checkpoint_dir: str | Path,
    lengths: np.ndarray | None = None,
    categories: Sequence[object] | None = None,
    estimator: str = "gaussian",
    redundancy: str = "MMI",
    tau: int = 1,
    return_atoms: bool = False,
    chunk_pairs: int | None = None,
    progress: bool | None = None,
) -> ShardRun:
    """Compute one shard's pairs chunk by chunk, checkpointing each; resumes finished chunks.

    Same inputs as pairwise_phiid plus shard ('i/N', 0-based) and checkpoint_dir. Raises
    CheckpointMismatchError if the directory holds this shard's chunks from a different run.
    """
    settings = PhiIDSettings(estimator, redundancy, tau)
    shard_index, n_shards = parse_shard(shard)
    prompts = prompt_series(series, lengths)
    n_heads = prompts[0].shape[0]
    if n_heads < 2:
        raise ValueError(f"need at least 2 heads to form a pair, got {n_heads}")
    labels, codes = category_codes(categories, len(prompts))
    meta = _run_metadata(
        settings, n_heads, len(prompts), input_fingerprint(series, lengths, categories),
        return_atoms, labels, n_shards,
    )  # fmt: skip
    chunk = chunk_pairs or settings.default_chunk_pairs
    pair_start, pair_stop = shard_pair_range(n_heads, (shard_index, n_shards))
    ranges = chunk_ranges(pair_start, pair_stop, chunk)
    directory = Path(checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [chunk_path(directory, shard_index, n_shards, c) for c in range(len(ranges))]
    todo = [c for c, path in enumerate(paths) if not _chunk_done(path, meta, ranges[c], chunk)]
    if todo:
        prepared = [prepare_prompt(p, settings) for p in prompts]
        head_reasons = np.stack([p.head_reason for p in prepared])
        for c in tqdm(todo, desc=f"PhiID shard {shard_index}/{n_shards}",
                      disable=None if progress is None else not progress):  # fmt: skip
            start, stop = ranges[c]
            result = compute_pair_chunk(
                prepared, settings, n_heads, start, stop, return_atoms=return_atoms,
                category_codes=codes, n_categories=len(labels),
            )  # fmt: skip
            chunk_meta = dict(meta, shard_index=shard_index, chunk_index=c, chunk_pairs=chunk,
                              pair_start=start, pair_stop=stop)  # fmt: skip
            _write_chunk(paths[c], chunk_meta, result, head_reasons)
    logger.info(
        "PhiID shard %d/%d: pairs [%d, %d), %d chunks (%d computed, %d resumed) in %s",
        shard_index, n_shards, pair_start, pair_stop, len(ranges), len(todo),
        len(ranges) - len(todo), directory,
    )  # fmt: skip
    return ShardRun(
        shard_index, n_shards, pair_start, pair_stop, len(ranges), len(todo),
        len(ranges) - len(todo), tuple(paths),
    )  # fmt: skip


def _chunk_done(
    path: Path, meta: dict[str, object], pair_range: tuple[int, int], chunk: int
) -> bool:
    """True if path holds this very chunk of this run; raises if it holds another run's chunk."""
    if not path.exists():
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            found = _metadata_from_file(data)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as e:
        logger.warning("checkpoint %s is damaged (%s: %s); computing that chunk again", path,
                       type(e).__name__, e)
        return False
    expected = dict(meta, chunk_pairs=chunk, pair_start=pair_range[0], pair_stop=pair_range[1])
    keys = (*_RUN_KEYS, "chunk_pairs", "pair_start", "pair_stop")
    diff = _differences(expected, found, keys)
    if diff:
        raise CheckpointMismatchError(
            f"checkpoint {path} was written by a different run ({diff}); use an empty "
            f"checkpoint directory for new settings/input, or the same chunk_pairs to resume"
        )
    return True


def merge_shards(checkpoint_dir: str | Path) -> PhiIDResult:
    """Assemble the full PhiIDResult from every shard's chunk files in checkpoint_dir.

    Raises ShardMergeError if a shard or chunk is missing, CheckpointMismatchError if the files
    come from runs with different settings, input hash or number of shards.
    """
    directory = Path(checkpoint_dir)
    paths = sorted(directory.glob(_CHUNK_GLOB))
    if not paths:
        raise ShardMergeError(f"no PhiID checkpoint files ({_CHUNK_GLOB}) in {directory}")
    chunks, reference, head_reasons = [], None, None
    by_shard: dict[int, list[PairChunk]] = {}
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = _metadata_from_file(data)
                reasons = data["head_reasons"]
                chunk = _read_chunk(data)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as e:
            if isinstance(e, ScalelensError):
                raise
            raise ShardMergeError(f"{path} is damaged ({type(e).__name__}: {e}); rerun its "
                                  f"--shard job, which computes the damaged chunk again") from None
        if reference is None:
            reference, head_reasons = meta, reasons
        diff = _differences(reference, meta, _RUN_KEYS)
        if diff:
            raise CheckpointMismatchError(
                f"{path} does not belong to the same run as {paths[0]} ({diff}); keep one "
                f"run's shards per checkpoint directory"
            )
        chunks.append(chunk)
        by_shard.setdefault(int(meta["shard_index"]), []).append(chunk)
    n_heads, n_shards = int(reference["n_heads"]), int(reference["n_shards"])
    _check_shards_complete(by_shard, n_heads, n_shards, directory)
    settings = PhiIDSettings(reference["estimator"], reference["redundancy"], int(reference["tau"]))
    return assemble_result(
        chunks, settings=settings, n_heads=n_heads, head_reasons=head_reasons,
        categories=tuple(reference["categories"]), input_hash=str(reference["input_hash"]),
    )  # fmt: skip


def _check_shards_complete(
    by_shard: dict[int, list[PairChunk]], n_heads: int, n_shards: int, directory: Path
) -> None:
    """ShardMergeError naming every shard that is missing or whose chunks leave pairs uncovered."""
    problems = []
    for index in range(n_shards):
        start, stop = shard_pair_range(n_heads, (index, n_shards))
        covered = sum(c.pair_stop - c.pair_start for c in by_shard.get(index, []))
        if index not in by_shard and stop > start:
            problems.append(f"shard {index}/{n_shards} missing")
        elif covered != stop - start:
            problems.append(
                f"shard {index}/{n_shards} incomplete ({covered} of {stop - start} pairs)"
            )
    if problems:
        raise ShardMergeError(
            f"cannot merge PhiID shards in {directory}: {', '.join(problems)}; run compute_shard "
            f"(--shard i/{n_shards}) for those shards, it resumes from their finished chunks"
        )


def save_result(result: PhiIDResult, path: str | Path) -> Path:
    """Write a PhiIDResult to one npz (no pickle, deterministic bytes); returns the path (.npz)."""
    report = result.degeneracy
    arrays = {
        "estimator": np.array(result.settings.estimator),
        "redundancy": np.array(result.settings.redundancy),
        "tau": np.array(result.settings.tau),
        "unit": np.array(result.unit),
        "sts": result.sts,
        "rtr": result.rtr,
        "n_prompts": np.array(result.n_prompts),
        "n_prompts_defined": result.n_prompts_defined,
        "input_hash": np.array(result.input_hash),
        "categories": np.array(result.categories, dtype=str).reshape(-1),
        "head_reason_codes": report.head_reason_codes,
        "head_reason_names": np.array(HEAD_REASONS),
        "undefined_pairs_per_prompt": report.undefined_pairs_per_prompt,
        "pair_reason_names": np.array(list(report.pair_reasons), dtype=str).reshape(-1),
        "pair_reason_counts": np.array(list(report.pair_reasons.values()), dtype=np.int64),
        "n_degenerate_pairs": np.array(report.n_degenerate_pairs),
        "n_undefined_pairs": np.array(report.n_undefined_pairs),
    }
    optional = ("atoms", "sts_by_category", "rtr_by_category", "n_prompts_defined_by_category")
    arrays.update({k: getattr(result, k) for k in optional if getattr(result, k) is not None})
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    return save_npz(path, **arrays)  # fixed timestamps, atomic: reruns give identical bytes


def load_result(path: str | Path) -> PhiIDResult:
    """Read a PhiIDResult written by save_result."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    codes = arrays["head_reason_codes"]
    report = DegeneracyReport(
        head_reason_codes=codes,
        n_degenerate_heads=int((codes != 0).any(axis=0).sum()),
        n_degenerate_pairs=int(arrays["n_degenerate_pairs"]),
        n_undefined_pairs=int(arrays["n_undefined_pairs"]),
        head_reasons=count_reasons(codes, HEAD_REASONS),
        pair_reasons=dict(
            zip(
                arrays["pair_reason_names"].tolist(),
                arrays["pair_reason_counts"].tolist(),
                strict=True,
            )
        ),
        undefined_pairs_per_prompt=arrays["undefined_pairs_per_prompt"],
    )
    optional = ("atoms", "sts_by_category", "rtr_by_category", "n_prompts_defined_by_category")
    return PhiIDResult(
        settings=PhiIDSettings(str(arrays["estimator"]), str(arrays["redundancy"]),
                               int(arrays["tau"])),
        sts=arrays["sts"],
        rtr=arrays["rtr"],
        n_prompts=int(arrays["n_prompts"]),
        n_prompts_defined=arrays["n_prompts_defined"],
        degeneracy=report,
        categories=tuple(arrays["categories"].tolist()),
        input_hash=str(arrays["input_hash"]),
        **{k: arrays.get(k) for k in optional},
    )  # fmt: skip
