"""All-pairs PhiID between heads: settings, degenerate heads, per-prompt averaging, chunked pairs.

Pair (i, j) with i < j is computed with head i as source x and head j as target y. sts and rtr
are symmetric under swapping x and y, so the matrices are mirrored; the full atom array holds
atoms[:, i, j] = PhiID(source i, target j) in both triangles (the swap permutes atoms).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from scalelens.phiid import discrete, gaussian
from scalelens.phiid.atoms import (
    RTR_INDEX,
    STS_INDEX,
    SWAP_ATOM_ORDER,
    atoms_from_knowns,
    ccs_mean_knowns,
    mmi_knowns,
    sts_from_knowns,
)
from scalelens.phiid.pairs import chunk_ranges, n_pairs, pairs_in_range

logger = logging.getLogger(__name__)

ESTIMATORS = ("gaussian", "discrete")
REDUNDANCIES = ("MMI", "CCS")
HEAD_REASONS = ("ok", "too_short", "nonfinite", "constant", "constant_window")
PAIR_REASONS = ("ok", "degenerate_head", "singular_covariance")
_PAIR_DEGENERATE_HEAD, _PAIR_SINGULAR = 1, 2
_DEFAULT_CHUNK_PAIRS = {
    ("gaussian", "MMI"): 131_072,
    ("gaussian", "CCS"): 2_048,
    ("discrete", "MMI"): 8_192,
    ("discrete", "CCS"): 2_048,
}


@dataclass(frozen=True)
class PhiIDSettings:
    """Estimator ('gaussian' | 'discrete'), redundancy ('MMI' | 'CCS') and lag tau >= 1."""

    estimator: str = "gaussian"
    redundancy: str = "MMI"
    tau: int = 1

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator {self.estimator!r} unknown; use one of {ESTIMATORS}")
        if self.redundancy not in REDUNDANCIES:
            raise ValueError(f"redundancy {self.redundancy!r} unknown; use one of {REDUNDANCIES}")
        if isinstance(self.tau, bool) or not isinstance(self.tau, int | np.integer) or self.tau < 1:
            raise ValueError(f"tau must be an integer >= 1, got {self.tau!r}")
        object.__setattr__(self, "tau", int(self.tau))

    @property
    def unit(self) -> str:
        """'nats' for the Gaussian estimator, 'bits' for the discrete one."""
        return "nats" if self.estimator == "gaussian" else "bits"

    @property
    def min_length(self) -> int:
        """Shortest usable series: tau + 3 steps."""
        return self.tau + 3

    @property
    def default_chunk_pairs(self) -> int:
        """Pairs per chunk bounding memory: large for the covariance path, small for local values."""
        return _DEFAULT_CHUNK_PAIRS[(self.estimator, self.redundancy)]


@dataclass(frozen=True)
class PreparedPrompt:
    """One prompt's heads ready for any batch of pairs.

    head_reason: int8 [n] index into HEAD_REASONS (0 = usable). past/future: standardised
    (Gaussian, float64) or binarised (discrete, uint8) windows [n, T - tau]; zero for bad heads.
    """

    head_reason: np.ndarray
    past: np.ndarray
    future: np.ndarray


@dataclass(frozen=True)
class PairChunk:
    """Prompt-averaged results for pairs pair_start..pair_stop-1 (row-major, source = lower index).

    values: [16, P] atoms if atoms were requested, else [2, P] (sts, rtr); NaN where the pair is
    undefined in every prompt. category_values: [C, 2, P] (sts, rtr) means per category.
    """

    pair_start: int
    pair_stop: int
    values: np.ndarray
    n_prompts_defined: np.ndarray
    category_values: np.ndarray | None
    n_defined_by_category: np.ndarray | None
    n_undefined_by_prompt: np.ndarray
    n_singular_by_prompt: np.ndarray


@dataclass(frozen=True)
class DegeneracyReport:
    """What could not be computed, and why. Counts (prompt, head) and (prompt, pair) cases.

    head_reason_codes: int8 [n_prompts, n_heads] into HEAD_REASONS. A pair undefined in some
    prompts is averaged over the others; one undefined in every prompt is NaN in the result.
    """

    head_reason_codes: np.ndarray
    n_degenerate_heads: int
    n_degenerate_pairs: int
    n_undefined_pairs: int
    head_reasons: dict[str, int]
    pair_reasons: dict[str, int]
    undefined_pairs_per_prompt: np.ndarray

    @property
    def any(self) -> bool:
        """True if any head or pair was degenerate in any prompt."""
        return self.n_degenerate_heads > 0 or self.n_degenerate_pairs > 0


@dataclass(frozen=True)
class PhiIDResult:
    """Pairwise PhiID between all heads, averaged over prompts, in `unit` (nats or bits).

    sts, rtr: [n, n] symmetric, NaN diagonal and NaN where undefined in every prompt.
    atoms: [16, n, n] (ATOM_NAMES order) with atoms[:, i, j] = PhiID(source i, target j), or None.
    n_prompts_defined: [n, n] prompts averaged per pair. *_by_category: [C, n, n] per category
    (categories sorted), or None when no categories were given.
    """

    settings: PhiIDSettings
    sts: np.ndarray
    rtr: np.ndarray
    atoms: np.ndarray | None
    n_prompts: int
    n_prompts_defined: np.ndarray
    degeneracy: DegeneracyReport
    categories: tuple[str, ...] = ()
    sts_by_category: np.ndarray | None = None
    rtr_by_category: np.ndarray | None = None
    n_prompts_defined_by_category: np.ndarray | None = None
    input_hash: str = field(default="")

    @property
    def unit(self) -> str:
        """'nats' (Gaussian) or 'bits' (discrete)."""
        return self.settings.unit

    @property
    def n_heads(self) -> int:
        """Number of heads (matrix side)."""
        return self.sts.shape[0]


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
    """Time-averaged knowns (16 arrays [P], KNOWN_NAMES order) of usable pairs, singular mask [P]."""
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


def count_reasons(codes: np.ndarray, names: Sequence[str]) -> dict[str, int]:
    """Occurrences of each non-ok reason code (codes index names; 0 is ok)."""
    return {
        name: int((codes == k).sum())
        for k, name in enumerate(names)
        if k > 0 and (codes == k).any()
    }


def degeneracy_report(
    head_reasons: np.ndarray, chunks: Sequence[PairChunk], n_prompts: int
) -> DegeneracyReport:
    """Summarise degenerate heads and undefined pairs over all prompts and chunks."""
    undefined = np.sum([c.n_undefined_by_prompt for c in chunks], axis=0).astype(np.int64)
    singular = int(np.sum([c.n_singular_by_prompt.sum() for c in chunks]))
    defined = np.concatenate([c.n_prompts_defined for c in chunks])
    pair_reasons = {
        "degenerate_head": int(undefined.sum()) - singular,
        "singular_covariance": singular,
    }
    return DegeneracyReport(
        head_reason_codes=head_reasons,
        n_degenerate_heads=int((head_reasons != 0).any(axis=0).sum()),
        n_degenerate_pairs=int((defined < n_prompts).sum()),
        n_undefined_pairs=int((defined == 0).sum()),
        head_reasons=count_reasons(head_reasons, HEAD_REASONS),
        pair_reasons={k: v for k, v in pair_reasons.items() if v > 0},
        undefined_pairs_per_prompt=undefined,
    )


def _log_degeneracy(report: DegeneracyReport, settings: PhiIDSettings, n_heads: int) -> None:
    """One logging.warning summarising degenerate heads/pairs, if there were any."""
    if not report.any:
        return
    logger.warning(
        "PhiID %s/%s tau=%d: %d of %d heads degenerate in >= 1 prompt %s; %d pairs undefined in "
        ">= 1 prompt %s; %d pairs undefined in every prompt are NaN",
        settings.estimator, settings.redundancy, settings.tau, report.n_degenerate_heads, n_heads,
        report.head_reasons, report.n_degenerate_pairs, report.pair_reasons,
        report.n_undefined_pairs,
    )  # fmt: skip


def _check_tiling(chunks: Sequence[PairChunk], total: int) -> list[PairChunk]:
    """Chunks sorted by start; ValueError unless they cover [0, total) exactly once."""
    ordered = sorted(chunks, key=lambda c: c.pair_start)
    position = 0
    for chunk in ordered:
        if chunk.pair_start != position:
            raise ValueError(
                f"pair chunks do not tile [0, {total}): expected a chunk starting at {position}, "
                f"got one at {chunk.pair_start}"
            )
        position = chunk.pair_stop
    if position != total:
        raise ValueError(f"pair chunks end at pair {position}, expected {total}")
    return ordered


def _mirrored(values: np.ndarray, upper: np.ndarray, lower_values: np.ndarray | None = None):
    """[..., n, n] with row-major pair values [..., P] above the diagonal and mirrored below.

    upper is the boolean strict-upper-triangle mask, whose C-order matches the pair order;
    lower_values (default: values) go to [j, i]. Float results have a NaN diagonal.
    """
    n = upper.shape[0]
    above = np.zeros(values.shape[:-1] + (n, n), dtype=values.dtype)
    above[..., upper] = values
    below = above
    if lower_values is not None:
        below = np.zeros_like(above)
        below[..., upper] = lower_values
    matrix = above + np.swapaxes(below, -1, -2)  # disjoint triangles: exact
    if np.issubdtype(matrix.dtype, np.floating):
        diagonal = np.arange(n)
        matrix[..., diagonal, diagonal] = np.nan
    return matrix


def assemble_result(
    chunks: Sequence[PairChunk],
    *,
    settings: PhiIDSettings,
    n_heads: int,
    head_reasons: np.ndarray,
    categories: tuple[str, ...] = (),
    input_hash: str = "",
) -> PhiIDResult:
    """Build the n x n result from chunks that tile all pairs; logs a warning on degeneracy."""
    ordered = _check_tiling(chunks, n_pairs(n_heads))
    upper = np.triu(np.ones((n_heads, n_heads), dtype=bool), k=1)
    values = np.concatenate([c.values for c in ordered], axis=1)
    return_atoms = values.shape[0] == 16
    sts_row, rtr_row = (STS_INDEX, RTR_INDEX) if return_atoms else (0, 1)
    atoms = _mirrored(values, upper, values[SWAP_ATOM_ORDER]) if return_atoms else None
    defined = _mirrored(np.concatenate([c.n_prompts_defined for c in ordered]), upper)
    by_category = {}
    if categories:
        cat_values = np.concatenate([c.category_values for c in ordered], axis=2)
        cat_counts = np.concatenate([c.n_defined_by_category for c in ordered], axis=1)
        by_category["sts_by_category"] = _mirrored(cat_values[:, 0], upper)
        by_category["rtr_by_category"] = _mirrored(cat_values[:, 1], upper)
        by_category["n_prompts_defined_by_category"] = _mirrored(cat_counts, upper)
    report = degeneracy_report(head_reasons, ordered, head_reasons.shape[0])
    _log_degeneracy(report, settings, n_heads)
    return PhiIDResult(
        settings=settings,
        sts=_mirrored(values[sts_row], upper),
        rtr=_mirrored(values[rtr_row], upper),
        atoms=atoms,
        n_prompts=head_reasons.shape[0],
        n_prompts_defined=defined,
        degeneracy=report,
        categories=categories,
        input_hash=input_hash,
        **by_category,
    )


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
    Degenerate heads/pairs are NaN, counted in result.degeneracy and logged as a warning.
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
