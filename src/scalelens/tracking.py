"""Every stage run is an MLflow run: experiment = stage, run name = stage:model.

Local default: backend `sqlite:///mlflow.db` and artifacts under `mlruns/`, both in the repository
root; MLFLOW_TRACKING_URI overrides (on a cluster: one tracking server every job reaches). SQLite
with several processes races on first use (schema migration, experiment creation) and can report
"database is locked": store initialisation and experiment creation run under a file lock, and
every call retries on lock errors with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import subprocess
import time
from pathlib import Path

from filelock import FileLock

log = logging.getLogger(__name__)

DEFAULT_URI = "sqlite:///mlflow.db"
LOCK_FILE = ".mlflow.lock"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)


def _retry(fn, *args, attempts: int = 8, **kwargs):
    """Call fn, retrying with backoff while SQLite says the database is locked/busy."""
    delay = 0.2
    for i in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # MLflow wraps sqlite errors in its own exception types
            msg = str(e).lower()
            if i == attempts - 1 or ("locked" not in msg and "busy" not in msg):
                raise
            log.warning("MLflow store busy (%s); retrying in %.1fs", type(e).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def git_commit() -> str:
    """HEAD's sha, with '-dirty' when tracked files differ from it; 'unknown' outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _experiment_id(mlflow, name: str) -> str:
    """Get or create the experiment under the file lock (two jobs must not both create it)."""
    with FileLock(LOCK_FILE):
        exp = _retry(mlflow.get_experiment_by_name, name)
        if exp is not None:
            return exp.experiment_id
        kwargs = {}
        if tracking_uri().startswith("sqlite:"):
            kwargs["artifact_location"] = (Path("mlruns") / name).resolve().as_uri()
        return _retry(mlflow.create_experiment, name, **kwargs)


def _flatten(params: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = str(v)[:6000]
    return out


class StageRun:
    """Thin handle over an active MLflow run, every call retried on lock errors."""

    def __init__(self, mlflow, run_id: str):
        self._mlflow = mlflow
        self.run_id = run_id

    def log_params(self, params: dict) -> None:
        flat = _flatten(params)
        items = list(flat.items())
        for i in range(0, len(items), 100):
            _retry(self._mlflow.log_params, dict(items[i:i + 100]))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log numbers (bools as 0/1); None, NaN and inf are left out, since MLflow cannot
        compare or plot them (the stage's own json keeps them, as null)."""
        clean = {k: float(v) for k, v in metrics.items()
                 if v is not None and math.isfinite(float(v))}
        _retry(self._mlflow.log_metrics, clean, step=step)

    def set_tags(self, tags: dict[str, object]) -> None:
        _retry(self._mlflow.set_tags, {k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        _retry(self._mlflow.log_artifact, str(path), artifact_path=artifact_path)


def compute_provenance() -> dict[str, str]:
    """What, besides code and params, decides the last bits of a float32 result.

    Outs are byte-identical only for the same torch build and the same intra-op thread count:
    some kernels split reductions by thread (measured: qwen2.5-coder-0.5b's logits change at
    about 1e-6 relative between 1 and 2 threads; smollm2-135m's do not).
    """
    import sys

    torch = sys.modules.get("torch")  # a stage that never imported torch ran no torch kernel
    if torch is None:
        return {"torch_version": "not used", "torch_num_threads": "not used"}
    return {"torch_version": torch.__version__, "torch_num_threads": str(torch.get_num_threads())}


@contextlib.contextmanager
def stage_run(stage: str, model: str | None, params: dict, tags: dict[str, object]):
    """An MLflow run for one stage invocation, with the provenance every run carries."""
    import mlflow

    with FileLock(LOCK_FILE):
        mlflow.set_tracking_uri(tracking_uri())
    exp_id = _experiment_id(mlflow, stage)
    name = f"{stage}:{model}" if model else stage
    with _retry(mlflow.start_run, experiment_id=exp_id, run_name=name) as active:
        run = StageRun(mlflow, active.info.run_id)
        base = {"stage": stage, "git_commit": git_commit(), **compute_provenance()}
        if model:
            base["model"] = model
        exp_name = os.environ.get("DVC_EXP_NAME")
        if exp_name:
            base["dvc_exp_name"] = exp_name
        run.set_tags({**base, **tags})
        run.log_params(params)
        yield run
