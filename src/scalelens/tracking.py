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
import sys
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


# MLflow 3's UI opens an experiment of unknown kind on its GenAI overview ("No data available");
# this kind opens it on its runs table, where the stages' runs, metrics and durations are.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def _experiment_id(mlflow, name: str) -> str:
    """Get or create the experiment under the file lock (two jobs must not both create it)."""
    with FileLock(LOCK_FILE):
        exp = _retry(mlflow.get_experiment_by_name, name)
        if exp is not None:
            if exp.tags.get("mlflow.experimentKind") is None:  # made by an older scalelens
                client = mlflow.tracking.MlflowClient()
                for key, value in EXPERIMENT_KIND.items():
                    _retry(client.set_experiment_tag, exp.experiment_id, key, value)
            return exp.experiment_id
        kwargs = {}
        if tracking_uri().startswith("sqlite:"):
            kwargs["artifact_location"] = (Path("mlruns") / name).resolve().as_uri()
        return _retry(mlflow.create_experiment, name, tags=EXPERIMENT_KIND, **kwargs)


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
        """Log numbers (bools as 0/1); None, NaN, inf and anything not a number are left out,
        since MLflow cannot compare or plot them (the stage's own json keeps them)."""
        clean = {k: float(v) for k, v in metrics.items()
                 if isinstance(v, int | float) and math.isfinite(float(v))}
        _retry(self._mlflow.log_metrics, clean, step=step)

    def set_tags(self, tags: dict[str, object]) -> None:
        _retry(self._mlflow.set_tags, {k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file; a staged output (".staging-<pid>-<name>", see scalelens.stage) is
        logged under its final name."""
        import re
        import shutil
        import tempfile

        path = Path(path)
        final = re.sub(r"^\.staging-\d+-", "", path.name)
        if final == path.name:
            _retry(self._mlflow.log_artifact, str(path), artifact_path=artifact_path)
            return
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / final
            shutil.copyfile(path, copy)
            _retry(self._mlflow.log_artifact, str(copy), artifact_path=artifact_path)


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


def environment() -> dict[str, str]:
    """What machine and software ran the stage (tags of every run)."""
    import platform
    from importlib import metadata

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    return {"python_version": platform.python_version(), "platform": platform.platform(),
            "cpu_model": cpu, "cpu_count": str(os.cpu_count()),
            "transformers_version": version("transformers"), "dvc_version": version("dvc"),
            "mlflow_version": version("mlflow")}


def pip_freeze() -> str:
    """Every installed distribution as name==version lines, sorted (the run's environment).

    Reads only the Name and Version headers of each *.dist-info/METADATA (or *.egg-info/PKG-INFO)
    on sys.path, first found first, as importlib.metadata resolves them: the full metadata parse
    of some 250 distributions cost 1.2 s of every stage."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                meta = os.path.join(entry or ".", name, "METADATA")
            elif name.endswith(".egg-info"):
                meta = os.path.join(entry or ".", name, "PKG-INFO")
            else:
                continue
            head = _metadata_head(meta)
            if head and head[0].lower() not in found:
                found[head[0].lower()] = f"{head[0]}=={head[1]}"
    return "\n".join(sorted(found.values(), key=str.lower)) + "\n"


def _metadata_head(path: str) -> tuple[str, str] | None:
    """(Name, Version) from a core-metadata file's header block, or None."""
    name = version = None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # end of the header block
                if line.startswith("Name:"):
                    name = line[5:].strip()
                elif line.startswith("Version:"):
                    version = line[8:].strip()
                if name and version:
                    return name, version
    except OSError:
        return None
    return None


def _base_tags(stage: str, model: str | None) -> dict[str, object]:
    base = {"stage": stage, "git_commit": git_commit(), **environment(),
            **compute_provenance()}
    if model:
        base["model"] = model
    exp_name = os.environ.get("DVC_EXP_NAME")
    if exp_name:
        base["dvc_exp_name"] = exp_name
    return base


def _start(stage: str, model: str | None):
    import mlflow

    with FileLock(LOCK_FILE):
        mlflow.set_tracking_uri(tracking_uri())
    exp_id = _experiment_id(mlflow, stage)
    name = f"{stage}:{model}" if model else stage
    active = _retry(mlflow.start_run, experiment_id=exp_id, run_name=name)
    return mlflow, StageRun(mlflow, active.info.run_id)


_SPAN: StageSpan | None = None


class StageSpan:
    """The MLflow run of one stage process, open from the stage's start to its end, so the run's
    Duration is the stage's time. `stage_run` inside the stage logs into it."""

    def __init__(self, stage: str, model: str | None):
        global _SPAN
        self.stage, self.model = stage, model
        self._mlflow, self.run = _start(stage, model)
        self.run.set_tags(_base_tags(stage, model))
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pip-freeze.txt"
            path.write_text(pip_freeze(), encoding="utf-8")
            self.run.log_artifact(path, artifact_path="environment")
        _SPAN = self

    def end(self, status: str) -> None:
        """Close the run as FINISHED, FAILED or KILLED (torch's provenance as it ended up)."""
        global _SPAN
        _SPAN = None
        try:
            self.run.set_tags(compute_provenance())
        finally:
            _retry(self._mlflow.end_run, status=status)


@contextlib.contextmanager
def stage_run(stage: str, model: str | None, params: dict, tags: dict[str, object]):
    """The stage's MLflow run (its StageSpan's when run_stage opened one, else a new run), with
    the provenance every run carries."""
    span = _SPAN
    if span is not None and (span.stage, span.model) == (stage, model):
        span.run.set_tags({**compute_provenance(), **tags})
        span.run.log_params(params)
        yield span.run
        return
    mlflow, run = _start(stage, model)
    try:
        run.set_tags({**_base_tags(stage, model), **tags})
        run.log_params(params)
        yield run
    except BaseException:
        _retry(mlflow.end_run, status="FAILED")
        raise
    _retry(mlflow.end_run)
