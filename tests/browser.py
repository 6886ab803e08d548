"""Headless Chromium (Debian's package) for the tests that look at pages: the report and the
MLflow UI. `make setup-test-deps` (run by .ci/run) installs it; elsewhere the browser tests skip
with the reason unless SCALELENS_REQUIRE_BROWSER=1, which makes a missing browser a failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-quic", "--window-size=1400,1000"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = "headless Chromium is not installed (make setup-test-deps installs it)"
        if os.environ.get("SCALELENS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SCALELENS_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return path


def dump_dom(url: str, budget_ms: int = 30000, timeout: int = 240) -> str:
    """The page's DOM after its scripts ran for `budget_ms` of virtual time."""
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}",
                              f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                             capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def screenshot(url: str, path, budget_ms: int = 30000, timeout: int = 240) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}",
                        f"--virtual-time-budget={budget_ms}", f"--screenshot={path}", url],
                       capture_output=True, text=True, timeout=timeout, check=True)
