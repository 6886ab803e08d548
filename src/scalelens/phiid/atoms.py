"""The PhiID lattice: atom and known-quantity names, the knowns -> atoms solve, redundancies.

Pure bookkeeping shared by every estimator. The four variables of a pair are indexed
X=0 (source past), Y=1 (target past), X'=2 (source future), Y'=3 (target future).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

ATOM_NAMES: tuple[str, ...] = (
    "rtr", "rtx", "rty", "rts",
    "xtr", "xtx", "xty", "xts",
    "ytr", "ytx", "yty", "yts",
    "str", "stx", "sty", "sts",
)  # fmt: skip

KNOWN_NAMES: tuple[str, ...] = (
    "rtr",
    "R_xyta", "R_xytb", "R_xytab", "R_abtx", "R_abty", "R_abtxy",
    "I_xta", "I_xtb", "I_yta", "I_ytb",
    "I_xyta", "I_xytb", "I_xtab", "I_ytab", "I_xytab",
)  # fmt: skip

MI_NAMES: tuple[str, ...] = KNOWN_NAMES[7:]

# i(A; B) for each mutual information, as (A, B) index tuples over (X, Y, X', Y').
MI_TERMS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "I_xta": ((0,), (2,)),
    "I_xtb": ((0,), (3,)),
    "I_yta": ((1,), (2,)),
    "I_ytb": ((1,), (3,)),
    "I_xyta": ((0, 1), (2,)),
    "I_xytb": ((0, 1), (3,)),
    "I_xtab": ((0,), (2, 3)),
    "I_ytab": ((1,), (2, 3)),
    "I_xytab": ((0, 1), (2, 3)),
}

# Every variable subset whose entropy some MI needs (15 of them: all non-empty subsets).
ENTROPY_SUBSETS: tuple[tuple[int, ...], ...] = tuple(
    sorted(
        {s for a, b in MI_TERMS.values() for s in (a, b, tuple(sorted(a + b)))},
        key=lambda s: (len(s), s),
    )
)

# Redundancy R(a, b) of a triple (a, b, a-union-b) of mutual informations.
REDUNDANCY_TERMS: dict[str, tuple[str, str, str]] = {
    "R_xyta": ("I_xta", "I_yta", "I_xyta"),
    "R_xytb": ("I_xtb", "I_ytb", "I_xytb"),
    "R_xytab": ("I_xtab", "I_ytab", "I_xytab"),
    "R_abtx": ("I_xta", "I_xtb", "I_xtab"),
    "R_abty": ("I_yta", "I_ytb", "I_ytab"),
    "R_abtxy": ("I_xyta", "I_xytb", "I_xytab"),
}

DOUBLE_REDUNDANCY_TERMS: tuple[str, ...] = ("I_xta", "I_xtb", "I_yta", "I_ytb")

_KNOWN_ATOM_SETS: dict[str, tuple[str, ...]] = {
    "rtr": ("rtr",),
    "R_xyta": ("rtr", "rtx"),
    "R_xytb": ("rtr", "rty"),
    "R_xytab": ("rtr", "rtx", "rty", "rts"),
    "R_abtx": ("rtr", "xtr"),
    "R_abty": ("rtr", "ytr"),
    "R_abtxy": ("rtr", "xtr", "ytr", "str"),
    "I_xta": ("rtr", "rtx", "xtr", "xtx"),
    "I_xtb": ("rtr", "rty", "xtr", "xty"),
    "I_yta": ("rtr", "rtx", "ytr", "ytx"),
    "I_ytb": ("rtr", "rty", "ytr", "yty"),
    "I_xyta": ("rtr", "rtx", "xtr", "xtx", "ytr", "ytx", "str", "stx"),
    "I_xytb": ("rtr", "rty", "xtr", "xty", "ytr", "yty", "str", "sty"),
    "I_xtab": ("rtr", "rtx", "rty", "rts", "xtr", "xtx", "xty", "xts"),
    "I_ytab": ("rtr", "rtx", "rty", "rts", "ytr", "ytx", "yty", "yts"),
    "I_xytab": ATOM_NAMES,
}


def knowns_to_atoms_matrix() -> np.ndarray:
    """The 16x16 0/1 matrix M with knowns = M @ atoms (rows KNOWN_NAMES, columns ATOM_NAMES)."""
    matrix = np.zeros((16, 16), dtype=np.int64)
    for row, known in enumerate(KNOWN_NAMES):
        for atom in _KNOWN_ATOM_SETS[known]:
            matrix[row, ATOM_NAMES.index(atom)] = 1
    return matrix


def _integer_inverse(matrix: np.ndarray) -> np.ndarray:
    """Exact inverse of a unimodular 0/1 matrix, as float64 with integer entries."""
    inverse = np.rint(np.linalg.inv(matrix.astype(np.float64)))
    if not np.array_equal(inverse.astype(np.int64) @ matrix, np.eye(len(matrix), dtype=np.int64)):
        raise AssertionError("PhiID knowns->atoms matrix has no integer inverse")
    return inverse


ATOMS_FROM_KNOWNS: np.ndarray = _integer_inverse(knowns_to_atoms_matrix())
ATOMS_FROM_KNOWNS.setflags(write=False)

# Atom index permutation for swapping source and target (x <-> y): atoms(y, x) = atoms(x, y)[SWAP].
SWAP_ATOM_ORDER: np.ndarray = np.array(
    [ATOM_NAMES.index(a.translate(str.maketrans("xy", "yx"))) for a in ATOM_NAMES]
)
SWAP_ATOM_ORDER.setflags(write=False)

STS_INDEX: int = ATOM_NAMES.index("sts")
RTR_INDEX: int = ATOM_NAMES.index("rtr")


def atoms_from_knowns(knowns: Sequence[np.ndarray]) -> np.ndarray:
    """Solve the 16 PhiID equations: knowns (16 arrays, KNOWN_NAMES order) -> atoms [16, ...]."""
    return np.tensordot(ATOMS_FROM_KNOWNS, np.stack(knowns), axes=(1, 0))


def sts_from_knowns(knowns: Sequence[np.ndarray]) -> np.ndarray:
    """Only the synergy atom sts: the sts row of the integer inverse applied to the knowns."""
    sts = np.zeros_like(knowns[0])
    for coefficient, known in zip(ATOMS_FROM_KNOWNS[STS_INDEX], knowns, strict=True):
        if coefficient == 1:
            sts += known
        elif coefficient == -1:
            sts -= known
        elif coefficient != 0:
            sts += coefficient * known
    return sts


def mmi_knowns(mean_mis: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """MMI knowns (16 arrays, KNOWN_NAMES order) from time-averaged MIs {name: [P]}.

    With MMI each redundancy is the smaller of two averaged MIs, the double redundancy the
    smallest of four; the tie rules of PHIID.md only pick between equal values.
    """
    mi = mean_mis
    rows = [np.minimum.reduce([mi[name] for name in DOUBLE_REDUNDANCY_TERMS])]
    rows += [np.minimum(mi[a], mi[b]) for a, b, _ in REDUNDANCY_TERMS.values()]
    rows += [mi[name] for name in MI_NAMES]
    return rows


def _same_sign(*values: np.ndarray) -> np.ndarray:
    """True where every value has the same np.sign (zero counts as its own sign)."""
    first = np.sign(values[0])
    same = np.ones(np.shape(first), dtype=bool)
    for value in values[1:]:
        same &= np.sign(value) == first
    return same


def ccs_redundancy_local(i_1: np.ndarray, i_2: np.ndarray, i_12: np.ndarray) -> np.ndarray:
    """Local CCS redundancy -c (c = i_12 - i_1 - i_2) where i_1, i_2, i_12, -c share a sign, else 0.

    Per sample; the inputs are local mutual informations of one shape.
    """
    minus_c = i_1 + i_2 - i_12
    return np.where(_same_sign(i_1, i_2, i_12, minus_c), minus_c, 0.0)


def ccs_mean_knowns(local_mis: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Time-averaged CCS knowns (16 arrays [P], KNOWN_NAMES order) from local MIs {name: [P, N]}."""
    mi = local_mis
    red = {
        name: ccs_redundancy_local(*(mi[t] for t in terms))
        for name, terms in REDUNDANCY_TERMS.items()
    }
    coinfo = (
        -mi["I_xta"]
        - mi["I_xtb"]
        - mi["I_yta"]
        - mi["I_ytb"]
        + mi["I_xtab"]
        + mi["I_ytab"]
        + mi["I_xyta"]
        + mi["I_xytb"]
        - mi["I_xytab"]
        + red["R_xyta"]
        + red["R_xytb"]
        - red["R_xytab"]
        + red["R_abtx"]
        + red["R_abty"]
        - red["R_abtxy"]
    )
    shared = _same_sign(*(mi[t] for t in DOUBLE_REDUNDANCY_TERMS), coinfo)
    rtr = np.where(shared, coinfo, 0.0)
    rows = [rtr] + [red[name] for name in REDUNDANCY_TERMS] + [mi[name] for name in MI_NAMES]
    return [row.mean(axis=-1) for row in rows]
