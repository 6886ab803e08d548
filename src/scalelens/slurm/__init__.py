"""Run the pipeline on a SLURM cluster: the DVC stage graph as sbatch jobs chained by afterok.

    python -m scalelens.slurm submit [TARGET ...] [--config slurm/cluster.yaml] [--dry-run]
    python -m scalelens.slurm status [RUN_DIR] [--wait]
    python -m scalelens.slurm cancel [RUN_DIR]
    python -m scalelens.slurm record RUN_DIR          (what the last job of a submission runs)

The graph comes from `scalelens.pipeline.build_dvc_yaml` (the same mapping as dvc.yaml, which
must be current): each stage instance is a job running its dvc.yaml command with the project's
interpreter, after the jobs whose outputs it reads. Stages `dvc status` reports up to date are
skipped (--force runs them all). PhiID with `phiid.shards` = N > 1 is an array of N shard jobs
and a merge job. The last job records every finished stage in dvc.lock; no other job runs DVC.
See docs/slurm.md.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from scalelens.errors import ScalelensError
from scalelens.slurm.cluster import (
    active_runs,
    cancel,
    read_manifest,
    record,
    release,
    sbatch,
    stale_stages,
    wait,
    which_python,
    write_manifest,
    write_scripts,
)
from scalelens.slurm.config import ClusterConfig, Resources
from scalelens.slurm.graph import Stage, downstream_closure, select, stage_graph
from scalelens.slurm.plan import Job, job_table, plan_jobs, record_command

__all__ = ["ClusterConfig", "Job", "Resources", "Stage", "Submission", "plan", "record",
           "stage_graph", "submit", "wait"]

TEMPLATE = "slurm/job.sbatch.in"
DEFAULT_CONFIG = "slurm/cluster.yaml"


@dataclass
class Submission:
    repo: Path
    params_path: Path
    config: ClusterConfig
    python: str
    graph: dict[str, Stage]
    run: set[str]  # addresses that get a job
    skipped: set[str]  # selected but up to date
    jobs: list[Job]
    run_dir: Path | None = None

    def table(self, show_ids: bool = False) -> str:
        return job_table(self.jobs, self.python, show_ids)


def load_config(repo: Path, path: str | Path | None) -> ClusterConfig:
    if path is None:
        default = repo / DEFAULT_CONFIG
        return ClusterConfig.load(default) if default.is_file() else ClusterConfig()
    path = Path(path)
    return ClusterConfig.load(path if path.is_absolute() else Path.cwd() / path)


def plan(repo: str | Path = ".", params: str | Path | None = None,
         config: ClusterConfig | None = None, targets: list[str] | None = None,
         force: bool = False, python: str | None = None, record_results: bool = True,
         run_dir: str | None = None) -> Submission:
    """The jobs a submission would create (nothing is submitted)."""
    from scalelens.params import load_params
    from scalelens.pipeline import build_dvc_yaml, render

    repo = Path(repo).resolve()
    if not (repo / "dvc.yaml").is_file():
        raise ScalelensError(f"{repo} has no dvc.yaml: run the submitter in the repository root "
                             f"(or pass --repo)")
    params_path = Path(params).resolve() if params else repo / "params.yaml"
    is_default = params_path == (repo / "params.yaml").resolve()
    config = config or ClusterConfig()
    python = which_python(python or config.python)
    with contextlib.chdir(repo):
        p = load_params(params_path)
        stages = build_dvc_yaml(p)["stages"]
        if is_default and (repo / "dvc.yaml").read_text(encoding="utf-8") != render(p):
            raise ScalelensError("dvc.yaml is out of date with params.yaml: run "
                                 "`python -m scalelens.pipeline` first (make dvc.yaml)")
    if not is_default and record_results:
        raise ScalelensError(f"--params {params}: DVC records params.yaml only, so results "
                             f"computed with another file cannot go into dvc.lock; pass "
                             f"--no-record to run them anyway")
    graph = stage_graph(stages)
    selected = select(graph, list(targets or []))
    if force or not is_default:
        run = set(selected)
    else:
        stale = stale_stages(repo, python) & selected
        run = downstream_closure(graph, stale) & selected
    jobs = plan_jobs(graph, run, p, config, python, run_dir or "<run folder>",
                     params_arg=None if is_default else str(params_path),
                     record=record_results)
    return Submission(repo, params_path, config, python, graph, run, selected - run, jobs)


def submit(sub: Submission) -> Submission:
    """Write the scripts into a new run folder, sbatch every job held, then release them."""
    from scalelens.slurm.cluster import new_run_dir

    if not sub.jobs:
        return sub
    root = sub.repo / sub.config.run_dir
    busy = active_runs(root)
    if busy:
        raise ScalelensError(
            "an earlier submission in this workspace still has jobs queued or running ("
            + ", ".join(f"{k}: {n}" for k, n in busy.items())
            + "); two graphs would write the same outputs: wait for it, or run "
              "`python -m scalelens.slurm cancel <folder>`")
    template_path = Path(sub.config.template) if sub.config.template else sub.repo / TEMPLATE
    if not template_path.is_absolute():
        template_path = sub.repo / template_path
    if not template_path.is_file():
        raise ScalelensError(f"sbatch template {template_path} not found")
    run_dir = new_run_dir(root)
    record_job = next((j for j in sub.jobs if j.kind == "record"), None)
    if record_job is not None:  # plan() did not know the folder yet
        record_job.command = record_command(sub.python, str(run_dir))
    write_scripts(sub.jobs, run_dir, sub.repo, template_path.read_text(encoding="utf-8"),
                  sub.config.env, sub.config.job_prefix)
    sbatch(sub.jobs)
    try:  # the record job reads the manifest: written before anything runs
        write_manifest(run_dir, sub.jobs, repo=str(sub.repo), params=str(sub.params_path),
                       python=sub.python, config=sub.config.source,
                       skipped=sorted(sub.skipped))
        release(sub.jobs)
    except BaseException:
        cancel(sub.jobs)
        raise
    sub.run_dir = run_dir
    return sub


def latest_run(repo: Path, config: ClusterConfig) -> Path:
    root = repo / config.run_dir
    runs = sorted(p.parent for p in root.glob("*/manifest.json")) if root.is_dir() else []
    if not runs:
        raise ScalelensError(f"no submission under {root}")
    return runs[-1]


__all__ += ["read_manifest", "latest_run", "load_config"]
