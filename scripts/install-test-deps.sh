#!/usr/bin/env bash
# What the full test suite needs beside .venv, installed as root on Debian (CI, `make
# setup-test-deps`): a real single-node SLURM (slurm/install-local.sh) and headless Chromium for
# the browser tests. Does nothing when both are there; exit 3 when something is missing and this
# is not root.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/slurm/install-local.sh"
if command -v chromium >/dev/null 2>&1; then
  echo "install-test-deps.sh: $(chromium --version 2>/dev/null | head -1)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps.sh: chromium missing; run as root (apt-get install chromium)" >&2
  exit 3
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q chromium
