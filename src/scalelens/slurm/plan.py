"""From the stage graph to SLURM jobs: which stages run, their commands, dependencies, resources.

Every stage instance to run is one job running its dvc.yaml command with the project's
interpreter. A sharded stage (phiid with `phiid.shards` = N > 1) is a job array of N shards plus a
merge job. One last job, after all the others whatever their outcome, records the finished stages
in dvc.lock: it is the only job that runs DVC, so DVC's repository lock is never contended.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scalelens.slurm.config import ClusterConfig, Resources
from scalelens.slurm.graph import Stage


@dataclass(frozen=True)
class Sharding:
    """A stage whose work splits into a job array: `count(params)` shards, then a merge."""

    count: Callable[[object], int]
    shard_args: str  # appended to the stage command; {count} is the shard count
    merge_args: str


ARRAY_INDEX = '"${SLURM_ARRAY_TASK_ID}"'
SHARDED: dict[str, Sharding] = {
    "phiid": Sharding(lambda params: params.phiid.shards, "--shard " + ARRAY_INDEX + "/{count}",
                      "--merge"),
}
RECORD = "record"


@dataclass
class Job:
    name: str  # unique in the plan: the stage address, `<address>:shards`, or `record`
    kind: str  # stage | shards | merge | record
    stage: str | None  # the DVC stage this job completes on success (stage and merge jobs)
    command: str  # shell command line, run in the repository root
    after: list[str]  # job names this one waits for (afterok; afterany for the record job)
    resources: Resources
    config_key: str | None = None  # the cluster.yaml `stages` entry that gave the resources
    array: int | None = None  # number of array tasks (0..array-1)
    job_id: str | None = None  # filled in by submit
    extra: dict = field(default_factory=dict)

    @property
    def dependency_type(self) -> str:
        return "afterany" if self.kind == RECORD else "afterok"


def job_command(cmd: str, python: str, params_arg: str | None = None) -> str:
    """The dvc.yaml command with its interpreter (`sh scripts/py`, or `python`) replaced by
    `python` (its quoting kept)."""
    stripped = cmd.strip()
    launcher = "sh scripts/py"
    first = stripped.split(None, 1)[0] if stripped else ""
    if stripped.startswith(launcher + " "):
        stripped = shlex.quote(python) + stripped[len(launcher):]
    elif first in ("python", "python3"):
        stripped = shlex.quote(python) + stripped[len(first):]
    if params_arg:
        stripped += " --params " + shlex.quote(params_arg)
    return stripped


def candidates(stage: Stage, kind: str) -> list[str]:
    names = [stage.address, stage.base] if stage.key is not None else [stage.base]
    if kind in ("shards", "merge"):
        return [f"{n}:{kind}" for n in names] + names
    return names


def plan_jobs(graph: dict[str, Stage], run: set[str], params, config: ClusterConfig,
              python: str, run_dir: str, params_arg: str | None = None,
              record: bool = True) -> list[Job]:
    """Jobs for the stages in `run` (graph order), then the record job."""
    jobs: list[Job] = []
    final: dict[str, str] = {}  # stage address -> the job that completes it

    def add(stage, kind, name, command, after, array=None):
        cands = candidates(stage, kind)
        key, _ = config.entry_for(cands)
        jobs.append(Job(name, kind, stage.address if kind in ("stage", "merge") else None,
                        command, after, config.resources(cands), key, array))

    for address, stage in graph.items():
        if address not in run:
            continue
        after = [final[u] for u in stage.upstream if u in final]
        cmd = job_command(stage.cmd, python, params_arg)
        sharding = SHARDED.get(stage.base)
        count = sharding.count(params) if sharding and params is not None else 1
        if sharding and count > 1:
            shards = f"{address}:shards"
            shard_args = sharding.shard_args.replace("{count}", str(count))
            add(stage, "shards", shards, f"{cmd} {shard_args}", after, array=count)
            add(stage, "merge", address, f"{cmd} {sharding.merge_args}", [shards])
        else:
            add(stage, "stage", address, cmd, after)
        final[address] = address
    if record and jobs:
        cands = [RECORD]
        key, _ = config.entry_for(cands)
        jobs.append(Job(RECORD, RECORD, None, record_command(python, run_dir),
                        [j.name for j in jobs], config.resources(cands), key))
    return jobs


def record_command(python: str, run_dir: str) -> str:
    return f"{shlex.quote(python)} -m scalelens.slurm record {shlex.quote(run_dir)}"


# -- the readable table (--dry-run, and after a submission) ------------------------------------

def _display_command(command: str, python: str) -> str:
    q = shlex.quote(python)
    return "python" + command[len(q):] if command.startswith(q) else command


def job_table(jobs: list[Job], python: str, show_ids: bool = False) -> str:
    """A markdown table: one row per job with its dependencies, resources and command."""
    index = {j.name: i + 1 for i, j in enumerate(jobs)}
    extra_cols = [c for c in ("partition", "account")
                  if any(j.resources.summary()[c] != "-" for j in jobs)]
    head = ["#", "job"] + (["job id"] if show_ids else []) + ["array", "after"] + [
        "cpus", "mem", "gpus", "time"] + extra_cols + ["command"]
    rows = []
    for i, job in enumerate(jobs, 1):
        res = job.resources.summary()
        if job.kind == RECORD:
            after = f"any: {_ranges([index[a] for a in job.after])}"
        else:
            after = ", ".join(str(index[a]) for a in job.after) or "-"
        row = [str(i), job.name] + ([job.job_id or "-"] if show_ids else []) + [
            f"0-{job.array - 1}" if job.array else "-", after,
            res["cpus"], res["mem"], res["gpus"], res["time"]] + [res[c] for c in extra_cols] + [
            "`" + _display_command(job.command, python).replace("|", "\\|") + "`"]
        rows.append(row)
    widths = [max(len(r[c]) for r in [head] + rows) for c in range(len(head))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _ranges(numbers: list[int]) -> str:
    """1, 2, 3, 5 -> '1-3, 5'."""
    numbers = sorted(numbers)
    parts, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(parts) or "-"


# -- sbatch scripts ----------------------------------------------------------------------------

def _dq(value: str) -> str:
    """A double-quoted shell word; $VAR and ${VAR} still expand in the job."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`") + '"'


def sbatch_header(job: Job, job_name: str, repo: Path, log: Path) -> list[str]:
    opts = [f"--job-name={job_name}", f"--chdir={repo}", f"--output={log}", "--open-mode=append",
            "--nodes=1", "--ntasks=1", "--kill-on-invalid-dep=yes"]
    if job.array:
        opts.append(f"--array=0-{job.array - 1}")
    opts += job.resources.sbatch_options()
    return [f"#SBATCH {o}" for o in opts]


def render_script(template: str, job: Job, *, job_name: str, repo: Path, log: Path,
                  env: dict[str, str], marker: Path | None) -> str:
    on_success = (f"  echo \"$SLURM_JOB_ID\" > {shlex.quote(str(marker))}" if marker
                  else "  :")
    values = {
        "JOB": job.name,
        "SBATCH": "\n".join(sbatch_header(job, job_name, repo, log)),
        "REPO": shlex.quote(str(repo)),
        "ENV": "\n".join(f"export {k}={_dq(v)}" for k, v in env.items()) or "# (no env)",
        "SETUP": "\n".join(job.resources.setup) or "# (no setup)",
        "COMMAND": job.command,
        "ON_SUCCESS": on_success,
    }
    text = template
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text
