"""PhiID results: prompt-averaged pair chunks, the degeneracy report, and the n x n assembly.

Pair (i, j) with i < j is computed with head i as source x and head j as target y. sts and rtr
are symmetric under swapping x and y, so the matrices are mirrored; the full atom array holds
atoms[:, i, j] = PhiID(source i, target j) in both triangles (the swap permutes atoms).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from scalelens.phiid.atoms import RTR_INDEX, STS_INDEX, SWAP_ATOM_ORDER
from scalelens.phiid.pairs import n_pairs
from scalelens.phiid.settings import HEAD_REASONS, PhiIDSettings

logger = logging.getLogger(__name__)


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
