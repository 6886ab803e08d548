"""Every stage run is an MLflow run: experiment = stage, run name = stage:model.

Local default: backend `sqlite:///mlflow.db` and artifacts under `mlruns/`, both in the repository
root; MLFLOW_TRACKING_URI overrides (on a cluster: one tracking server every job reaches). SQLite
with several processes races on first use (schema migration, experiment creation) and can report
"database is locked": store initialisation and experiment creation run under a file lock, and
every call retries on lock errors with backoff.

The writing is done by a child process, the tracking worker (`_Worker`, `python -m
scalelens.tracking`), so that importing MLflow and opening its store (4 to 5 s) overlap the
stage's own work instead of preceding it. The stage's calls return at once; the stage waits for
the worker only before swapping its outputs in (`StageSpan.sync`) and when the run ends.
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

from scalelens.errors import ScalelensError

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


def _experiment_id(client, name: str) -> str:
    """Get or create the experiment under the file lock (two jobs must not both create it)."""
    with FileLock(LOCK_FILE):
        exp = _retry(client.get_experiment_by_name, name)
        if exp is not None:
            if exp.tags.get("mlflow.experimentKind") is None:  # made by an older scalelens
                for key, value in EXPERIMENT_KIND.items():
                    _retry(client.set_experiment_tag, exp.experiment_id, key, value)
            return exp.experiment_id
        kwargs = {}
        if client.tracking_uri.startswith("sqlite:"):
            kwargs["artifact_location"] = (Path("mlruns") / name).resolve().as_uri()
        return _retry(client.create_experiment, name, tags=EXPERIMENT_KIND, **kwargs)


def _flatten(params: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = str(v)[:6000]
    return out


def _now_ms() -> int:
    return int(time.time() * 1000)


class StageRun:
    """Handle on one MLflow run. Every call is queued to the tracking worker (see `_Worker`) and
    returns at once; `StageSpan.sync` and `StageSpan.end` report what the worker could not do."""

    def __init__(self, worker: _Worker, files: Path):
        self._worker = worker
        self._files = files  # copies of logged artifacts, kept until the worker has stored them
        self._n_files = 0

    @property
    def run_id(self) -> str:
        return self._worker.run_id()

    def log_params(self, params: dict) -> None:
        self._worker.send("params", params=_flatten(params))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log numbers (bools as 0/1); None, NaN, inf and anything not a number are left out,
        since MLflow cannot compare or plot them (the stage's own json keeps them)."""
        clean = {k: float(v) for k, v in metrics.items()
                 if isinstance(v, int | float) and math.isfinite(float(v))}
        self._worker.send("metrics", metrics=clean, step=step or 0, timestamp=_now_ms())

    def set_tags(self, tags: dict[str, object]) -> None:
        self._worker.send("tags", tags={k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file as it is now (a copy is queued); a staged output (".staging-<pid>-<name>",
        see scalelens.stage) is logged under its final name."""
        import re
        import shutil

        path = Path(path)
        self._n_files += 1
        copy = self._files / str(self._n_files) / re.sub(r"^\.staging-\d+-", "", path.name)
        copy.parent.mkdir(parents=True)
        shutil.copyfile(path, copy)
        self._worker.send("artifact", path=str(copy), artifact_path=artifact_path)


def compute_provenance() -> dict[str, str]:
    """What, besides code and params, decides the last bits of a float32 result.

    Outs are byte-identical only for the same torch build and the same intra-op thread count:
    some kernels split reductions by thread (measured: qwen2.5-coder-0.5b's logits change at
    about 1e-6 relative between 1 and 2 threads; smollm2-135m's do not); and for the same
    CPU linear kernel (`cpu_linear`: oneDNN or MKL, see scalelens.models.cpu_linear).
    """
    import sys

    torch = sys.modules.get("torch")  # a stage that never imported torch ran no torch kernel
    if torch is None:
        return {"torch_version": "not used", "torch_num_threads": "not used",
                "cpu_linear": "not used"}
    cpu_linear = sys.modules.get("scalelens.models.cpu_linear")  # imported with every model
    return {"torch_version": torch.__version__, "torch_num_threads": str(torch.get_num_threads()),
            "cpu_linear": cpu_linear.kernel_applied() if cpu_linear else "not used"}


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


class TrackingError(ScalelensError):
    """The tracking worker could not record the run (its message says what MLflow said)."""


# The environment the worker takes from the stage at each run: where MLflow writes and with what
# credentials (a test, or a notebook, may change these between runs of one process).
_FORWARDED_ENV = ("MLFLOW_", "AWS_", "DVC_EXP_NAME")


class _Worker:
    """A child process that does the stage's MLflow writing while the stage works.

    Importing MLflow and opening its SQLite store take 4 to 5 s, single-threaded: in the stage
    process they would come before its work; in this child they run beside the stage's own
    imports, model load and computation, on the other core. The stage sends one JSON line per
    call on the child's stdin; the child answers on stdout only what the stage waits for: the
    run id after "open", and "ok" or the first error at "sync" and "end". One worker serves
    every run of its process in turn (one per stage process; several for a test session)."""

    def __init__(self):
        import json
        import subprocess

        self._json = json
        src = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (src, os.environ.get("PYTHONPATH", "")) if p)}
        # its own session: Ctrl-C in a terminal and a signal to the stage's process group do
        # not reach it (it also ignores SIGINT and SIGTERM, see `_main`)
        self._proc = subprocess.Popen([sys.executable, "-m", "scalelens.tracking"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      env=env, start_new_session=True)
        self._run_id: str | None = None
        self._pending_open = False

    def alive(self) -> bool:
        return self._proc.poll() is None

    def send(self, op: str, **fields) -> None:
        try:
            self._proc.stdin.write(self._json.dumps({"op": op, **fields}) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise TrackingError("the MLflow tracking worker has exited; "
                                "see the lines above for why") from None

    def _read(self) -> dict:
        line = self._proc.stdout.readline()
        if not line:
            raise TrackingError("the MLflow tracking worker exited without answering; "
                                "see the lines above for why")
        return self._json.loads(line)

    def open(self, **fields) -> None:
        env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_ENV)}
        self.send("open", cwd=os.getcwd(), uri=tracking_uri(), env=env, **fields)
        self._run_id, self._pending_open = None, True

    def run_id(self) -> str:
        if self._pending_open:
            self._pending_open = False
            reply = self._read()
            if "error" in reply:
                raise TrackingError(f"MLflow: {reply['error']}")
            self._run_id = reply["run_id"]
        return self._run_id

    def ask(self, op: str, **fields) -> None:
        """Send a "sync" or "end" and wait for its answer. Every answer is read exactly once,
        so answers stay matched to calls after an error."""
        self.send(op, **fields)
        errors = []
        try:
            self.run_id()
        except TrackingError as e:
            errors.append(str(e))
        reply = self._read()
        if "error" in reply:
            errors.append(f"MLflow: {reply['error']}")
        if errors:
            raise TrackingError(errors[0])

    def close(self) -> None:
        """Let the worker finish what it was sent and exit."""
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        self._proc.wait()


_WORKER: _Worker | None = None


def _worker() -> _Worker:
    global _WORKER
    if _WORKER is None or not _WORKER.alive():
        import atexit

        _WORKER = _Worker()
        atexit.register(_WORKER.close)
    return _WORKER


_SPAN: StageSpan | None = None


class StageSpan:
    """The MLflow run of one stage process, open from the stage's start to its end, so the run's
    Duration is the stage's time. `stage_run` inside the stage logs into it.

    The run is recorded by the tracking worker (`_Worker`) while the stage works: `sync` waits
    for everything sent so far to be stored (a stage calls it before swapping its outputs in),
    `end` closes the run with its status and the time it ended."""

    def __init__(self, stage: str, model: str | None):
        import tempfile

        global _SPAN
        self.stage, self.model = stage, model
        self._worker = _worker()
        self._files = tempfile.TemporaryDirectory(prefix="scalelens-mlflow-")
        name = f"{stage}:{model}" if model else stage
        self._worker.open(stage=stage, name=name, start_ms=_now_ms(),
                          tags={k: str(v) for k, v in _base_tags(stage, model).items()},
                          pip_freeze=pip_freeze())
        self.run = StageRun(self._worker, Path(self._files.name))
        _SPAN = self

    def sync(self) -> None:
        """Wait until the worker has stored all that was logged; TrackingError if it could not."""
        self._worker.ask("sync")

    def end(self, status: str) -> None:
        """Close the run as FINISHED, FAILED or KILLED (torch's provenance as it ended up) and
        wait until it is stored; TrackingError if the worker could not record the run."""
        global _SPAN
        _SPAN = None
        try:
            self._worker.ask("end", status=status, end_ms=_now_ms(), tags=compute_provenance())
        finally:
            self._files.cleanup()


@contextlib.contextmanager
def stage_run(stage: str, model: str | None, params: dict, tags: dict[str, object]):
    """The stage's MLflow run (its StageSpan's when run_stage opened one, else a new run, ended
    when the block ends), with the provenance every run carries."""
    span = _SPAN
    own = span is None or (span.stage, span.model) != (stage, model)
    if own:
        span = StageSpan(stage, model)
    span.run.set_tags({**compute_provenance(), **tags})
    span.run.log_params(params)
    if not own:
        yield span.run
        return
    try:
        yield span.run
    except BaseException:
        span.end("FAILED")
        raise
    span.end("FINISHED")


# ---- the worker's side (python -m scalelens.tracking) ---------------------------------------

def _log_tags(client, run_id: str, tags: dict[str, str]) -> None:
    from mlflow.entities import RunTag

    items = [RunTag(k, v) for k, v in tags.items()]
    for i in range(0, len(items), 100):  # MLflow's limit per batch
        _retry(client.log_batch, run_id, tags=items[i:i + 100])


def _serve(lines, reply) -> None:
    """Carry out the stage's calls in order. "open" answers with the run id, "sync" and "end"
    with "ok" or an error. After a failed call, the calls up to the next "sync" or "end" are
    skipped and that one answers with the error."""
    import json
    import tempfile

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = run_id = None
    error = None
    for line in lines:
        msg = json.loads(line)
        op = msg.pop("op")
        try:
            if op == "open":
                error = run_id = None
                os.chdir(msg["cwd"])
                for key in [k for k in os.environ if k.startswith(_FORWARDED_ENV)]:
                    del os.environ[key]
                os.environ.update(msg["env"])
                with FileLock(LOCK_FILE):  # opening a new SQLite store creates its schema
                    client = MlflowClient(tracking_uri=msg["uri"])
                exp_id = _experiment_id(client, msg["stage"])
                run_id = _retry(client.create_run, exp_id, start_time=msg["start_ms"],
                                tags=msg["tags"], run_name=msg["name"]).info.run_id
                reply({"run_id": run_id})
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "pip-freeze.txt"
                    path.write_text(msg["pip_freeze"], encoding="utf-8")
                    _retry(client.log_artifact, run_id, str(path), artifact_path="environment")
            elif error is not None and op not in ("sync", "end"):
                continue
            elif op == "params":
                items = [Param(k, v) for k, v in msg["params"].items()]
                for i in range(0, len(items), 100):
                    _retry(client.log_batch, run_id, params=items[i:i + 100])
            elif op == "metrics":
                items = [Metric(k, v, msg["timestamp"], msg["step"])
                         for k, v in msg["metrics"].items()]
                for i in range(0, len(items), 1000):
                    _retry(client.log_batch, run_id, metrics=items[i:i + 1000])
            elif op == "tags":
                _log_tags(client, run_id, msg["tags"])
            elif op == "artifact":
                _retry(client.log_artifact, run_id, msg["path"],
                       artifact_path=msg["artifact_path"])
            elif op in ("sync", "end"):
                if op == "end" and run_id is not None:
                    if error is None:
                        _log_tags(client, run_id, msg["tags"])
                    _retry(client.set_terminated, run_id, status=msg["status"],
                           end_time=msg["end_ms"])
                    run_id = None
                reply({"error": error} if error is not None else {"ok": True})
                error = None  # reported
        except Exception as e:  # noqa: BLE001 - reported to the stage, which decides
            error = f"{type(e).__name__}: {e}"
            if op in ("sync", "end") or (op == "open" and run_id is None):  # awaits an answer
                reply({"error": error})
                error = None
    if run_id is not None:  # the stage went away without ending its run
        _retry(client.set_terminated, run_id, status="KILLED", end_time=_now_ms())


def _main() -> None:
    import json
    import signal

    # Ctrl-C and a scheduler's SIGTERM reach the whole process group: the stage decides how
    # its run ends and says so; the worker records it, and ends on its own when its stage is gone
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # answers go out on the original stdout alone; anything a library prints goes to stderr
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    def reply(obj: dict) -> None:
        answers.write(json.dumps(obj) + "\n")
        answers.flush()

    logging.basicConfig(level=logging.WARNING, format="tracking worker: %(message)s")
    _serve(sys.stdin, reply)


if __name__ == "__main__":
    _main()
