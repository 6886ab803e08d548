"""Shared fixtures: tiny models are cached per session; MLflow and caches go to temp folders."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # helpers such as phiid_reference

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one torch thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")


# `make test` runs two pytest-xdist workers with --dist loadgroup --no-loadscope-reorder: each
# xdist_group goes whole to one worker, and groups are handed out in collection order.
# - The pipeline-level groups come first, in this order: SLURM's tiny pipeline and the session's
#   tiny-ladder run start side by side; the determinism test's own run is queued behind SLURM
#   (it reads the ladder run only at its end), then the experiments (which start from the ladder
#   run) go to the first worker free; the small tests fill in around them.
# - The tests of a module that share a module-scoped fixture (a stage run, a census) form a group
#   of their own, so the fixture is built once, not once per worker.
PIPELINE_GROUPS = ("slurm", "ladder", "determinism", "ladder-experiments")


def _groups(item) -> list[str]:
    return [str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")]


def _shares_a_module_fixture(item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.values() if info is not None else ()
    return any(d and d[-1].scope == "module" for d in defs)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist turns the groups into node-id suffixes
def pytest_collection_modifyitems(config, items):
    for item in items:
        if not _groups(item) and _shares_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))

    def rank(item) -> int:
        return min((PIPELINE_GROUPS.index(g) for g in _groups(item) if g in PIPELINE_GROUPS),
                   default=len(PIPELINE_GROUPS))

    items.sort(key=rank)  # stable: collection order within each rank


def pytest_configure(config):
    """--dist loadgroup under pytest 9 with pytest-xdist <= 3.8 would ignore every xdist_group
    mark (pytest 9 derives node ids from Node._id; that xdist renames tests through _nodeid)."""
    if config.getoption("dist", default="no") != "loadgroup":
        return
    from importlib.metadata import version

    def major_minor(dist: str) -> tuple[int, int]:
        return tuple(int(x) for x in version(dist).split(".")[:2])

    if major_minor("pytest") >= (9, 0) and major_minor("pytest-xdist") <= (3, 8):
        raise pytest.UsageError(
            f"pytest {version('pytest')} with pytest-xdist {version('pytest-xdist')} ignores "
            f"xdist_group marks: install the pytest that pyproject.toml's dev extra pins "
            f"(make setup does)")


@pytest.fixture(scope="session")
def tiny_lm():
    """Load (once per session) a tiny model by architecture."""
    from scalelens.models import load_model

    cache = {}

    def get(arch: str = "llama", seed: int = 0):
        key = f"tiny:{arch}:{seed}"
        if key not in cache:
            cache[key] = load_model(key)
        return cache[key]

    return get


@pytest.fixture()
def mlflow_tmp(tmp_path, monkeypatch):
    """An isolated MLflow store: sqlite in tmp_path, run from tmp_path."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _shared_once(tmp_path_factory, worker_id: str, name: str, make) -> dict:
    """`make()` (a json-able dict) once per test session, whatever the number of pytest-xdist
    workers: the first worker to ask makes it under a file lock in the folder all workers share,
    the others wait and read it. A failure is recorded, so the others fail at once with it."""
    import json

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    marker = shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if not marker.exists():
            try:
                value = {"ok": make(shared)}
            except BaseException as e:  # noqa: BLE001 - recorded for the other workers, re-raised
                marker.write_text(json.dumps({"error": f"{type(e).__name__}: {e}"[-4000:]}))
                raise
            marker.write_text(json.dumps(value))
        got = json.loads(marker.read_text())
    if "error" in got:
        pytest.fail(f"{name} failed in another worker: {got['error']}")
    return got["ok"]


@pytest.fixture(scope="session")
def worker_id(request) -> str:
    """pytest-xdist's worker name ("gw0", ...), "master" without workers (xdist's own fixture
    when the plugin is active takes precedence)."""
    return getattr(request.config, "workerinput", {}).get("workerid", "master")


@pytest.fixture(scope="session")
def ladder_prepared(tmp_path_factory, worker_id):
    """The tiny-ladder repository committed and ready for `dvc repro` (an offline hub id and a
    local checkpoint folder), before its run: (root, model keys, commit)."""
    from tiny_pipeline import prepare_ladder_repo, run

    def make(shared):
        root, models = prepare_ladder_repo(shared / "ladder")
        commit = run(["git", "rev-parse", "HEAD"], root).stdout.strip()
        return [str(root), models, commit]

    root, models, commit = _shared_once(tmp_path_factory, worker_id, "ladder-prepared", make)
    return Path(root), models, commit


@pytest.fixture(scope="session")
def ladder_repo(ladder_prepared, tmp_path_factory, worker_id):
    """The tiny pipeline, every stage, run once per session with `dvc repro` (minutes), results
    committed: (root, model keys). Tests that change it work on a clone."""
    from tiny_pipeline import run_ladder_repo

    root, models, _ = ladder_prepared

    def make(shared):
        run_ladder_repo(root)
        return True

    _shared_once(tmp_path_factory, worker_id, "ladder-run", make)
    return root, models
