"""Is the workspace's result the same result as a reference? `python -m scalelens.verify`.

Reads every metrics and verdict json the pipeline declares (dvc.yaml's `metrics`, for the ladder
in params.yaml) from the workspace and from a reference: a git revision (default HEAD, where
git tracks them) or a DVC experiment (`--exp NAME`). The same result means:

- every string and boolean equal (verdicts, tiers, units, reasons) and no key missing;
- every number within `rtol` (relative) or `atol` (absolute) of the reference; NaN/null equal
  only to NaN/null.

Bytes are identical on the same machine, torch build and thread count; across machines float
kernels round differently (the README's table measures how far the metrics move), so the
default tolerance is rtol 1e-3: well above the ~1e-5 seen, well below any effect a study reads.
Exit status 0 when the same, 1 with one line per difference, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-9


@dataclass(frozen=True)
class Difference:
    path: str
    key: str
    ours: object
    reference: object
    why: str

    def line(self) -> str:
        return f"{self.path}: {self.key or '<top>'}: {self.why} (workspace {self.ours!r}, " \
               f"reference {self.reference!r})"


def metric_files(params) -> list[Path]:
    """Every metrics file dvc.yaml declares for this ladder."""
    from scalelens.pipeline import declared_metrics

    return declared_metrics(params)


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def compare(ours, ref, path: str, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
            key: str = "") -> list[Difference]:
    """Differences between two json values (recursively), as defined in the module docstring."""
    if isinstance(ours, dict) and isinstance(ref, dict):
        diffs = []
        for k in sorted(set(ours) | set(ref)):
            sub = f"{key}.{k}" if key else str(k)
            if k not in ours or k not in ref:
                diffs.append(Difference(path, sub, ours.get(k, "<missing>"),
                                        ref.get(k, "<missing>"), "key only on one side"))
            else:
                diffs += compare(ours[k], ref[k], path, rtol, atol, sub)
        return diffs
    if isinstance(ours, list) and isinstance(ref, list):
        if len(ours) != len(ref):
            return [Difference(path, key, len(ours), len(ref), "lists of different length")]
        return [d for i, (a, b) in enumerate(zip(ours, ref))
                for d in compare(a, b, path, rtol, atol, f"{key}[{i}]")]
    if _is_number(ours) and _is_number(ref):
        a, b = float(ours), float(ref)
        if math.isnan(a) and math.isnan(b):
            return []
        if not math.isclose(a, b, rel_tol=rtol, abs_tol=atol):
            rel = abs(a - b) / abs(b) if b else math.inf
            return [Difference(path, key, ours, ref, f"differs by {rel:.2e} relative "
                                                     f"(> rtol {rtol:g})")]
        return []
    if ours != ref:
        return [Difference(path, key, ours, ref, "not equal")]
    return []


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def resolve_ref(ref: str | None, exp: str | None, root: Path) -> str:
    """A git revision for --ref, or the commit of DVC experiment --exp."""
    if exp:
        refs = _git("for-each-ref", "--format=%(refname) %(objectname)", "refs/exps",
                    cwd=root).stdout.split("\n")
        hits = [line.split()[1] for line in refs if line and line.split()[0].endswith(f"/{exp}")]
        if not hits:
            raise SystemExit(f"verify: no DVC experiment named {exp!r} (dvc exp list)")
        return hits[0]
    return ref or "HEAD"


def reference_json(path: Path, rev: str, root: Path):
    out = _git("show", f"{rev}:{path.as_posix()}", cwd=root)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)


def verify(params, rev: str, root: Path, rtol: float, atol: float) -> tuple[int, list]:
    """(files compared, differences) between the workspace and revision `rev`."""
    diffs: list[Difference] = []
    n = 0
    for path in metric_files(params):
        ref = reference_json(path, rev, root)
        here = root / path
        if ref is None and not here.exists():
            continue
        if ref is None:
            diffs.append(Difference(str(path), "", "present", "<missing>",
                                    "not in the reference"))
            continue
        if not here.exists():
            diffs.append(Difference(str(path), "", "<missing>", "present",
                                    "not in the workspace (run the pipeline first)"))
            continue
        n += 1
        diffs += compare(json.loads(here.read_text(encoding="utf-8")), ref, str(path), rtol,
                         atol)
    return n, diffs


def main(argv=None) -> int:
    from scalelens.params import load_params

    ap = argparse.ArgumentParser(prog="python -m scalelens.verify", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--ref", help="git revision to compare with (default HEAD)")
    group.add_argument("--exp", help="a DVC experiment's name to compare with")
    ap.add_argument("--rtol", type=float, default=DEFAULT_RTOL)
    ap.add_argument("--atol", type=float, default=DEFAULT_ATOL)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    root = Path.cwd()
    rev = resolve_ref(args.ref, args.exp, root)
    if _git("rev-parse", "--verify", f"{rev}^{{commit}}", cwd=root).returncode != 0:
        print(f"verify: {rev!r} is not a git revision here", file=sys.stderr)
        return 2
    n, diffs = verify(load_params(args.params), rev, root, args.rtol, args.atol)
    for d in diffs:
        print(d.line())
    if diffs:
        print(f"verify: {len(diffs)} difference(s) from {args.exp or rev} in {n} file(s)",
              file=sys.stderr)
        return 1
    print(f"verify: {n} metrics and verdict files are the same result as {args.exp or rev} "
          f"(strings and booleans equal, numbers within rtol {args.rtol:g}, atol "
          f"{args.atol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
