"""All-pairs PhiID between heads: degenerate heads, per-prompt windows, chunked pair batches.

Pairs are computed in row-major chunks (scalelens.phiid.pairs); each chunk is averaged over
prompts, then assembled into n x n matrices by scalelens.phiid.result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from scalelens.phiid import discrete, gaussian
from scalelens.phiid.atoms import (
    RTR_INDEX,
    STS_INDEX,
    atoms_from_knowns,
    ccs_mean_knowns,
    mmi_knowns,
    sts_from_knowns,
)
from scalelens.phiid.pairs import chunk_ranges, n_pairs, pairs_in_range
from scalelens.phiid.result import PairChunk, PhiIDResult, assemble_result
from scalelens.phiid.settings import HEAD_REASONS, PAIR_REASONS, PhiIDSettings

_PAIR_DEGENERATE_HEAD = PAIR_REASONS.index("degenerate_head")
_PAIR_SINGULAR = PAIR_REASONS.index("singular_covariance")


@dataclass(frozen=True)
class PreparedPrompt:
    """One prompt's heads ready for any batch of pairs.

    head_reason: int8 [n] index into HEAD_REASONS (0 = usable). past/future: standardised
    (Gaussian, float64) or binarised (discrete, uint8) windows [n, T - tau]; zero for bad heads.
    """

    head_reason: np.ndarray
    past: np.ndarray
    future: np.ndarray


def head_reason_codes(series: np.ndarray, settings: PhiIDSettings) -> np.ndarray:
    """Per-head degeneracy code int8 [n] (HEAD_REASONS); the first reason that applies wins."""
    n_heads, length = series.shape
    codes = np.zeros(n_heads, dtype=np.int8)
    if length < settings.min_length:
        codes[:] = HEAD_REASONS.index("too_short")
        return codes
    finite = np.isfinite(series).all(axis=1)
    codes[~finite] = HEAD_REASONS.index("nonfinite")
    safe = np.where(finite[:, None], series, 0.0)
    constant = finite & (np.ptp(safe, axis=1) == 0)
    codes[constant] = HEAD_REASONS.index("constant")
    if settings.estimator == "gaussian":
        n_samples = length - settings.tau
        window_constant = (np.ptp(safe[:, :n_samples], axis=1) == 0) | (
            np.ptp(safe[:, settings.tau :], axis=1) == 0
        )
        codes[(codes == 0) & window_constant] = HEAD_REASONS.index("constant_window")
    return codes


def prepare_prompt(series: np.ndarray, settings: PhiIDSettings) -> PreparedPrompt:
    """Flag degenerate heads and build each head's past/future windows for one prompt [n, T]."""
    series = np.asarray(series, dtype=np.float64)
    codes = head_reason_codes(series, settings)
    n_samples = max(series.shape[1] - settings.tau, 0)
    if (codes != 0).all():
        empty = np.zeros((series.shape[0], n_samples))
        return PreparedPrompt(codes, empty, empty)
    clean = np.where((codes == 0)[:, None], series, 0.0)
    if settings.estimator == "gaussian":
        past, future, _ = gaussian.standardized_windows(clean, settings.tau)
    else:
        past, future = discrete.binarized_windows(clean, settings.tau)
    return PreparedPrompt(codes, past, future)


def _knowns_for_pairs(
    prepared: PreparedPrompt, settings: PhiIDSettings, i_idx: np.ndarray, j_idx: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """Time-averaged knowns (16 arrays [P], KNOWN_NAMES order) of usable pairs; singular [P]."""
    if settings.estimator == "gaussian":
        corr6 = gaussian.pair_correlations(prepared.past, prepared.future, i_idx, j_idx)
        det = gaussian.correlation_determinants(corr6)
        singular = gaussian.singular_pairs(det)
        if settings.redundancy == "MMI":
            knowns = mmi_knowns(gaussian.mean_mis_from_determinants(det))
        else:
            corr4 = gaussian.correlation_matrices(corr6, singular)
            local = gaussian.local_mis(prepared.past, prepared.future, i_idx, j_idx, corr4)
            knowns = ccs_mean_knowns(local)
        return knowns, singular
    codes = discrete.joint_codes(prepared.past, prepared.future, i_idx, j_idx)
    counts = discrete.joint_counts(codes)
    if settings.redundancy == "MMI":
        knowns = mmi_knowns(discrete.mean_mis(counts))
    else:
        knowns = ccs_mean_knowns(discrete.local_mis(codes, counts))
    return knowns, np.zeros(len(i_idx), dtype=bool)


def prompt_pair_values(
    prepared: PreparedPrompt,
    settings: PhiIDSettings,
    i_idx: np.ndarray,
    j_idx: np.ndarray,
    return_atoms: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """One prompt's values for pairs (source i, target j): ([16 or 2, P], pair reason int8 [P]).

    Rows are the 16 atoms, or (sts, rtr) without atoms; NaN where the pair is undefined.
    """
    n_rows = 16 if return_atoms else 2
    usable = prepared.head_reason == 0
    pair_ok = usable[i_idx] & usable[j_idx]
    reason = np.where(pair_ok, 0, _PAIR_DEGENERATE_HEAD).astype(np.int8)
    values = np.full((n_rows, len(i_idx)), np.nan)
    if not pair_ok.any():
        return values, reason
    all_ok = bool(pair_ok.all())
    ii, jj = (i_idx, j_idx) if all_ok else (i_idx[pair_ok], j_idx[pair_ok])
    knowns, singular = _knowns_for_pairs(prepared, settings, ii, jj)
    if return_atoms:
        computed = atoms_from_knowns(knowns)
    else:
        computed = np.stack([sts_from_knowns(knowns), knowns[0]])  # known 0 is rtr itself
    computed[:, singular] = np.nan
    if all_ok:
        values = computed
        reason[singular] = _PAIR_SINGULAR
    else:
        values[:, pair_ok] = computed
        reason[np.flatnonzero(pair_ok)[singular]] = _PAIR_SINGULAR
    return values, reason


def compute_pair_chunk(
    prepared: Sequence[PreparedPrompt],
    settings: PhiIDSettings,
    n_heads: int,
    pair_start: int,
    pair_stop: int,
    *,
    return_atoms: bool = False,
    category_codes: np.ndarray | None = None,
    n_categories: int = 0,
) -> PairChunk:
    """Prompt-averaged PhiID of pairs pair_start..pair_stop-1, over every prompt where defined."""
    i_idx, j_idx = pairs_in_range(n_heads, pair_start, pair_stop)
    n_rows, size, n_prompts = (16 if return_atoms else 2), pair_stop - pair_start, len(prepared)
    sums = np.zeros((n_rows, size))
    counts = np.zeros(size, dtype=np.int64)
    with_categories = category_codes is not None and n_categories > 0
    cat_sums = np.zeros((n_categories, 2, size)) if with_categories else None
    cat_counts = np.zeros((n_categories, size), dtype=np.int64) if with_categories else None
    n_undefined = np.zeros(n_prompts, dtype=np.int64)
    n_singular = np.zeros(n_prompts, dtype=np.int64)
    sts_row, rtr_row = (STS_INDEX, RTR_INDEX) if return_atoms else (0, 1)
    for p, prompt in enumerate(prepared):
        values, reason = prompt_pair_values(prompt, settings, i_idx, j_idx, return_atoms)
        ok = reason == 0
        sums += np.where(ok, values, 0.0)
        counts += ok
        n_undefined[p] = size - int(ok.sum())
        n_singular[p] = int((reason == _PAIR_SINGULAR).sum())
        if with_categories:
            code = category_codes[p]
            cat_sums[code] += np.where(ok, values[[sts_row, rtr_row]], 0.0)
            cat_counts[code] += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
        cat_means = (
            np.where(cat_counts[:, None, :] > 0, cat_sums / cat_counts[:, None, :], np.nan)
            if with_categories
            else None
        )
    return PairChunk(
        pair_start, pair_stop, means, counts, cat_means, cat_counts, n_undefined, n_singular
    )


def prompt_series(series: np.ndarray, lengths: np.ndarray | None = None) -> list[np.ndarray]:
    """Split input into per-prompt [n_heads, T_p] series: [n, T] is one prompt, [P, n, T] many.

    lengths[p] (with 3-D input) keeps only the first lengths[p] steps of prompt p.
    """
    array = np.asarray(series)
    if array.ndim == 2:
        if lengths is not None:
            raise ValueError("lengths applies to [n_prompts, n_heads, T] input, got 2-D series")
        return [array]
    if array.ndim != 3:
        raise ValueError(
            f"series must be [n_heads, T] or [n_prompts, n_heads, T], got {array.shape}"
        )
    if lengths is None:
        return list(array)
    lengths = np.asarray(lengths)
    if lengths.shape != (array.shape[0],) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(
            f"lengths must be integers of shape ({array.shape[0]},), got {lengths.dtype} "
            f"{lengths.shape}"
        )
    if lengths.min() < 0 or lengths.max() > array.shape[2]:
        raise ValueError(
            f"lengths must lie in [0, {array.shape[2]}], got {lengths.min()}..{lengths.max()}"
        )
    return [array[p, :, : int(lengths[p])] for p in range(array.shape[0])]


def category_codes(
    categories: Sequence[object] | None, n_prompts: int
) -> tuple[tuple[str, ...], np.ndarray | None]:
    """Sorted category labels and each prompt's label index, or ((), None) without categories."""
    if categories is None:
        return (), None
    labels = [str(c) for c in categories]
    if len(labels) != n_prompts:
        raise ValueError(f"categories has {len(labels)} entries for {n_prompts} prompts")
    unique = tuple(sorted(set(labels)))
    return unique, np.array([unique.index(label) for label in labels], dtype=np.int64)


def input_fingerprint(
    series: np.ndarray,
    lengths: np.ndarray | None = None,
    categories: Sequence[object] | None = None,
) -> str:
    """sha256 of the input series (shape, dtype, bytes), lengths and categories."""
    array = np.ascontiguousarray(series)
    digest = hashlib.sha256(f"{array.shape}|{array.dtype.str}|".encode())
    digest.update(array.tobytes())
    if lengths is not None:
        digest.update(b"|lengths|" + np.ascontiguousarray(lengths, dtype=np.int64).tobytes())
    if categories is not None:
        digest.update(("|categories|" + "\x1f".join(str(c) for c in categories)).encode())
    return digest.hexdigest()


def pairwise_phiid(
    series: np.ndarray,
    *,
    lengths: np.ndarray | None = None,
    categories: Sequence[object] | None = None,
    estimator: str = "gaussian",
    redundancy: str = "MMI",
    tau: int = 1,
    return_atoms: bool = False,
    chunk_pairs: int | None = None,
    progress: bool | None = None,
) -> PhiIDResult:
    """PhiID over every unordered pair of heads, averaged over prompts where defined.

    series: [n_heads, T] or [n_prompts, n_heads, T] (flat head index = layer * n_heads + head);
    lengths: valid steps per prompt; categories: one label per prompt (per-category means kept).
    Units: nats (gaussian) or bits (discrete), see result.unit. Entry [i, j], i < j, is PhiID
    with source i and target j; sts/rtr are mirrored, atoms[:, j, i] is the swapped order.
    Degenerate heads/pairs are NaN, counted in result.degeneracy and logged as a warning.
    chunk_pairs bounds memory (default per estimator); progress=None shows tqdm on a terminal.
    """
    settings = PhiIDSettings(estimator, redundancy, tau)
    prompts = prompt_series(series, lengths)
    n_heads = prompts[0].shape[0]
    if n_heads < 2:
        raise ValueError(f"need at least 2 heads to form a pair, got {n_heads}")
    labels, codes = category_codes(categories, len(prompts))
    prepared = [prepare_prompt(p, settings) for p in prompts]
    chunk = chunk_pairs or settings.default_chunk_pairs
    ranges = chunk_ranges(0, n_pairs(n_heads), chunk)
    chunks = [
        compute_pair_chunk(
            prepared,
            settings,
            n_heads,
            start,
            stop,
            return_atoms=return_atoms,
            category_codes=codes,
            n_categories=len(labels),
        )
        for start, stop in tqdm(ranges, desc="PhiID pair chunks", disable=_tqdm_disable(progress))
    ]
    head_reasons = np.stack([p.head_reason for p in prepared])
    return assemble_result(
        chunks, settings=settings, n_heads=n_heads, head_reasons=head_reasons,
        categories=labels, input_hash=input_fingerprint(series, lengths, categories),
    )  # fmt: skip


def _tqdm_disable(progress: bool | None) -> bool | None:
    """tqdm's disable flag: None shows bars only on a terminal."""
    return None if progress is None else not progress
