"""Reference PhiID: one pair at a time, local (per-sample) values, straight from the definition.

Deliberately naive and independent of scalelens.phiid: the tests and bench/bench_phiid.py check
the fast all-pairs engine against it. Gaussian local entropies come from scipy's multivariate
normal log-density, discrete ones from counting patterns; the 16 equations are solved per sample.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy.stats import multivariate_normal

ATOMS = (
    "rtr", "rtx", "rty", "rts", "xtr", "xtx", "xty", "xts",
    "ytr", "ytx", "yty", "yts", "str", "stx", "sty", "sts",
)  # fmt: skip

# "known: sum of atoms", the table of the definition.
KNOWNS = {
    "rtr": "rtr",
    "R_xyta": "rtr rtx",
    "R_xytb": "rtr rty",
    "R_xytab": "rtr rtx rty rts",
    "R_abtx": "rtr xtr",
    "R_abty": "rtr ytr",
    "R_abtxy": "rtr xtr ytr str",
    "I_xta": "rtr rtx xtr xtx",
    "I_xtb": "rtr rty xtr xty",
    "I_yta": "rtr rtx ytr ytx",
    "I_ytb": "rtr rty ytr yty",
    "I_xyta": "rtr rtx xtr xtx ytr ytx str stx",
    "I_xytb": "rtr rty xtr xty ytr yty str sty",
    "I_xtab": "rtr rtx rty rts xtr xtx xty xts",
    "I_ytab": "rtr rtx rty rts ytr ytx yty yts",
    "I_xytab": " ".join(ATOMS),
}

# Mutual informations i(A; B) over the variables X, Y, Xf (= X'), Yf (= Y').
MUTUAL_INFORMATIONS = {
    "I_xta": (["X"], ["Xf"]),
    "I_xtb": (["X"], ["Yf"]),
    "I_yta": (["Y"], ["Xf"]),
    "I_ytb": (["Y"], ["Yf"]),
    "I_xyta": (["X", "Y"], ["Xf"]),
    "I_xytb": (["X", "Y"], ["Yf"]),
    "I_xtab": (["X"], ["Xf", "Yf"]),
    "I_ytab": (["Y"], ["Xf", "Yf"]),
    "I_xytab": (["X", "Y"], ["Xf", "Yf"]),
}

REDUNDANCIES = {
    "R_xyta": ("I_xta", "I_yta", "I_xyta"),
    "R_xytb": ("I_xtb", "I_ytb", "I_xytb"),
    "R_xytab": ("I_xtab", "I_ytab", "I_xytab"),
    "R_abtx": ("I_xta", "I_xtb", "I_xtab"),
    "R_abty": ("I_yta", "I_ytb", "I_ytab"),
    "R_abtxy": ("I_xyta", "I_xytb", "I_xytab"),
}


def four_variables(x: np.ndarray, y: np.ndarray, tau: int) -> dict[str, np.ndarray]:
    """X, Y (pasts) and Xf, Yf (futures), N = T - tau samples each."""
    n = len(x) - tau
    return {"X": x[:n], "Y": y[:n], "Xf": x[tau:], "Yf": y[tau:]}


def local_entropy_gaussian(variables: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """-log p at every sample, p the normal with the sample mean and ddof=1 covariance."""
    data = np.stack([variables[name] for name in names], axis=1)
    mean = data.mean(axis=0)
    cov = np.atleast_2d(np.cov(data, rowvar=False, ddof=1))
    return -np.atleast_1d(multivariate_normal(mean, cov).logpdf(data))


def local_entropy_discrete(variables: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """-log2 of the plug-in frequency of each sample's joint pattern."""
    patterns = list(zip(*(variables[name].tolist() for name in names), strict=True))
    counts = Counter(patterns)
    return np.array([-np.log2(counts[p] / len(patterns)) for p in patterns])


def same_sign(*values: np.ndarray) -> np.ndarray:
    """Per sample: do all values have the same sign?"""
    signs = np.sign(np.stack(values))
    return np.all(signs == signs[0], axis=0)


def phiid_reference(
    x: np.ndarray, y: np.ndarray, tau: int = 1, estimator: str = "gaussian", redundancy: str = "MMI"
) -> dict[str, float]:
    """Time-averaged PhiID atoms of source x and target y (nats for gaussian, bits for discrete)."""
    variables = four_variables(np.asarray(x, float), np.asarray(y, float), tau)
    if estimator == "gaussian":
        variables = {k: v / np.std(v, ddof=1) for k, v in variables.items()}
        entropy = local_entropy_gaussian
    else:
        variables = {k: (v > v.mean()).astype(int) for k, v in variables.items()}
        entropy = local_entropy_discrete

    local = {}
    for name, (a, b) in MUTUAL_INFORMATIONS.items():
        local[name] = entropy(variables, a) + entropy(variables, b) - entropy(variables, a + b)

    known = dict(local)
    for name, (i_1, i_2, i_12) in REDUNDANCIES.items():
        if redundancy == "MMI":
            known[name] = local[i_1] if local[i_1].mean() < local[i_2].mean() else local[i_2]
        else:
            minus_c = -(local[i_12] - local[i_1] - local[i_2])
            agree = same_sign(local[i_1], local[i_2], local[i_12], minus_c)
            known[name] = np.where(agree, minus_c, 0.0)

    four = [local["I_xta"], local["I_xtb"], local["I_yta"], local["I_ytb"]]
    if redundancy == "MMI":
        known["rtr"] = four[int(np.argmin([series.mean() for series in four]))]
    else:
        d = (
            -local["I_xta"] - local["I_xtb"] - local["I_yta"] - local["I_ytb"]
            + local["I_xtab"] + local["I_ytab"] + local["I_xyta"] + local["I_xytb"]
            - local["I_xytab"]
            + known["R_xyta"] + known["R_xytb"] - known["R_xytab"]
            + known["R_abtx"] + known["R_abty"] - known["R_abtxy"]
        )  # fmt: skip
        known["rtr"] = np.where(same_sign(*four, d), d, 0.0)

    names = list(KNOWNS)
    matrix = np.array([[atom in KNOWNS[k].split() for atom in ATOMS] for k in names], dtype=float)
    local_atoms = np.linalg.solve(matrix, np.stack([known[k] for k in names]))
    return {atom: float(local_atoms[a].mean()) for a, atom in enumerate(ATOMS)}


def reference_vector(x, y, tau=1, estimator="gaussian", redundancy="MMI") -> np.ndarray:
    """phiid_reference as a [16] array in atom order."""
    atoms = phiid_reference(x, y, tau, estimator, redundancy)
    return np.array([atoms[a] for a in ATOMS])
