"""A real single-node SLURM for tests: install it if missing, start it in a temp folder, stop it.

`local_cluster(folder)` is a context manager around slurm/install-local.sh and
slurm/local-cluster.sh: munged, slurmctld and slurmd run from `folder` on free ports, so nothing in
/etc is touched and another cluster on the machine is left alone. It yields the environment the
client commands need (SLURM_CONF). Where SLURM cannot be installed (not root and not installed,
no apt-get, the install fails) it raises SlurmUnavailable with the reason; the tests skip on it,
unless SCALELENS_REQUIRE_SLURM=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from tests_paths import ROOT

INSTALL = ROOT / "slurm" / "install-local.sh"
CLUSTER = ROOT / "slurm" / "local-cluster.sh"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")


class SlurmUnavailable(Exception):
    pass


def _have_all() -> bool:
    return all(shutil.which(d) or Path("/usr/sbin", d).exists() for d in DAEMONS)


def ensure_installed() -> None:
    if _have_all():
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable("SLURM is not installed and this is not root, so "
                               "slurm/install-local.sh cannot install it")
    out = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=1200)
    if out.returncode != 0 or not _have_all():
        raise SlurmUnavailable("slurm/install-local.sh could not install SLURM: "
                               + (out.stderr or out.stdout).strip()[-400:])


@contextmanager
def local_cluster(folder: Path, cpus: int | None = None):
    """A running single-node cluster in `folder`; yields {"SLURM_CONF": ...}."""
    ensure_installed()
    if os.geteuid() != 0:
        raise SlurmUnavailable("the local cluster's daemons must run as root (slurmd starts jobs "
                               "as their user)")
    env = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}
    cmd = ["bash", str(CLUSTER), "start", str(folder)] + ([str(cpus)] if cpus else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    try:
        if out.returncode != 0:
            raise RuntimeError(f"local-cluster.sh start failed: {out.stderr.strip()[-2000:]}")
        yield {"SLURM_CONF": str(folder / "slurm.conf")}
    finally:
        cluster_env = {**env, "SLURM_CONF": str(folder / "slurm.conf")}
        cancel_all(cluster_env)
        subprocess.run(["bash", str(CLUSTER), "stop", str(folder)], env=cluster_env,
                       capture_output=True, timeout=120)


def cancel_all(env: dict, timeout: float = 30.0) -> None:
    """Cancel every job of the private cluster in env["SLURM_CONF"] (only this test's jobs run
    there) and wait until the queue is empty."""
    env = {**os.environ, **env}
    subprocess.run(["scancel", "--full", "--user", "root"], env=env, capture_output=True,
                   timeout=60)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        q = subprocess.run(["squeue", "--noheader"], env=env, capture_output=True, text=True,
                           timeout=60)
        if q.returncode != 0 or not q.stdout.strip():
            return
        time.sleep(0.5)
