#!/usr/bin/env bash
# Install SLURM (slurmctld, slurmd, the client commands) and MUNGE on a Debian/Ubuntu machine,
# for the single-node test cluster of slurm/local-cluster.sh (tests/test_slurm.py, CI).
#
#   sudo slurm/install-local.sh        # or as root; does nothing when everything is installed
#
# Only the packages are installed: no daemon is started and nothing under /etc is configured
# (the Debian packages start no service in a container without systemd, and local-cluster.sh runs
# its own daemons from a private folder). Exit status 3: not root and SLURM is missing.
set -euo pipefail

need=(sbatch squeue scontrol scancel slurmctld slurmd munged)
missing=()
for cmd in "${need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$cmd")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-local.sh: SLURM and MUNGE are installed ($(sbatch --version))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-local.sh: missing ${missing[*]}; run as root (apt-get install slurm-wlm munge)" >&2
  exit 3
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-local.sh: no apt-get; install slurm (slurmctld, slurmd, client) and munge with" \
       "your package manager" >&2
  exit 3
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
echo "install-local.sh: installed $(sbatch --version) and $(munged --version 2>&1 | head -1)"
