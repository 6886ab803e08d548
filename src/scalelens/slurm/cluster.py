"""Talking to SLURM and DVC: which stages are stale, sbatch, job states, the record job.

A submission lives in its own run folder (default slurm/runs/<time>): one sbatch script and log
per job, `manifest.json` (jobs, ids, dependencies), and `done/<stage address>`, written by a job
when its stage exited with status 0. The record job commits exactly the stages with a done marker
(`dvc commit -f`), so an interrupted graph records what it finished and a resubmission skips it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from scalelens.errors import ScalelensError
from scalelens.slurm.plan import Job, render_script

MANIFEST = "manifest.json"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
            "PREEMPTED", "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"}
_LOCK_ERROR = re.compile(r"Unable to acquire lock|lock.*held", re.IGNORECASE)


def _run(cmd: list[str], cwd: Path | None = None, check: bool = True,
         what: str | None = None) -> subprocess.CompletedProcess:
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise ScalelensError(f"{cmd[0]} not found: {what or 'is SLURM installed here?'}") from None
    if check and out.returncode != 0:
        msg = (out.stderr or out.stdout).strip().splitlines()
        raise ScalelensError(f"`{shlex.join(cmd)}` failed (status {out.returncode}): "
                             f"{msg[-1] if msg else 'no output'}")
    return out


# -- DVC ---------------------------------------------------------------------------------------

def dvc(python: str, *args: str) -> list[str]:
    return [python, "-m", "dvc", *args]


def stale_stages(repo: Path, python: str) -> set[str]:
    """Addresses `dvc status` reports as changed (never run, changed deps or params, missing
    outs). One call, at submit time; it only reads."""
    out = _run(dvc(python, "status", "--json"), cwd=repo, check=False)
    if out.returncode != 0:
        raise ScalelensError(f"`dvc status` failed in {repo}: {out.stderr.strip()[-500:]} "
                             f"(pass --force to submit every stage without asking DVC)")
    text = out.stdout.strip()
    try:
        data = json.loads(text[text.index("{"):])
    except ValueError:
        raise ScalelensError(f"`dvc status --json` printed no JSON object: {text[-300:]!r} "
                             f"(pass --force to submit every stage)") from None
    return set(data)


def commit(repo: Path, python: str, stages: list[str], tries: int = 20,
           wait_s: float = 6.0) -> None:
    """`dvc commit -f` of `stages` (non-interactive), retrying while another DVC process holds
    the repository lock."""
    for attempt in range(1, tries + 1):
        out = _run(dvc(python, "commit", "--force", *stages), cwd=repo, check=False)
        if out.returncode == 0:
            return
        if not _LOCK_ERROR.search(out.stderr + out.stdout) or attempt == tries:
            raise ScalelensError(f"dvc commit failed (status {out.returncode}): "
                                 f"{(out.stderr or out.stdout).strip()[-1500:]}")
        print(f"record: the DVC lock is held by another process; retry {attempt} in "
              f"{wait_s:.0f} s", file=sys.stderr)
        time.sleep(wait_s)


# -- SLURM: submission -------------------------------------------------------------------------

def new_run_dir(root: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / stamp
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._:+-]+", "_", name)


def write_scripts(jobs: list[Job], run_dir: Path, repo: Path, template: str, env: dict,
                  prefix: str) -> None:
    (run_dir / "scripts").mkdir(exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    (run_dir / "done").mkdir(exist_ok=True)
    for job in jobs:
        safe = _safe(job.name)
        log = run_dir / "logs" / (f"{safe}-%A_%a.log" if job.array else f"{safe}-%j.log")
        marker = run_dir / "done" / job.stage if job.stage else None
        script = run_dir / "scripts" / f"{safe}.sbatch"
        script.write_text(render_script(template, job, job_name=prefix + job.name, repo=repo,
                                        log=log, env=env, marker=marker), encoding="utf-8")
        job.extra.update(script=str(script), log=str(log),
                         marker=str(marker) if marker else None)


def write_manifest(run_dir: Path, jobs: list[Job], **facts) -> None:
    doc = {**facts, "jobs": [{k: v for k, v in asdict(j).items() if k != "resources"}
                             | {"resources": j.resources.summary()} for j in jobs]}
    (run_dir / MANIFEST).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def read_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise ScalelensError(f"{path} not found: not a submission folder")
    return json.loads(path.read_text(encoding="utf-8"))


def sbatch(jobs: list[Job]) -> None:
    """Submit every job held, in order, each after its dependencies; release them all at the end.

    Held first so that a failed sbatch halfway through cancels the jobs already submitted before
    any of them starts."""
    submitted: list[str] = []
    try:
        for job in jobs:
            ids = [next(j.job_id for j in jobs if j.name == a) for a in job.after]
            cmd = ["sbatch", "--parsable", "--hold"]
            if ids:
                cmd.append(f"--dependency={job.dependency_type}:" + ":".join(ids))
            cmd.append(job.extra["script"])
            out = _run(cmd, what="sbatch is not on PATH: submit from a login node")
            job.job_id = out.stdout.strip().split(";")[0]
            submitted.append(job.job_id)
    except BaseException:
        if submitted:
            _run(["scancel", *submitted], check=False)
        raise


def release(jobs: list[Job]) -> None:
    _run(["scontrol", "release", ",".join(j.job_id for j in jobs)])


def cancel(jobs: list[Job]) -> None:
    ids = [j.job_id for j in jobs if j.job_id]
    if ids:
        _run(["scancel", *ids], check=False)


def queued_ids() -> set[str]:
    """This user's job ids still pending or running (array tasks as their array job id)."""
    out = _run(["squeue", "--me", "--noheader", "--format=%F"], check=False)
    return set(out.stdout.split()) if out.returncode == 0 else set()


def active_runs(root: Path) -> dict[str, int]:
    """Earlier submissions under `root` that still have jobs queued or running: {folder: n}."""
    if not root.is_dir():
        return {}
    queued = queued_ids()
    busy = {}
    for manifest in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            ids = {j["job_id"] for j in json.loads(manifest.read_text())["jobs"] if j["job_id"]}
        except (ValueError, KeyError):
            continue
        n = len(ids & queued)
        if n:
            busy[str(manifest.parent)] = n
    return busy


# -- SLURM: job states -------------------------------------------------------------------------

def _sacct(ids: list[str]) -> dict[str, list[dict]] | None:
    out = _run(["sacct", "--noheader", "--parsable2", "--allocations",
                "--format=JobID,State,ExitCode,Elapsed", "--jobs", ",".join(ids)], check=False)
    if out.returncode != 0 or not out.stdout.strip():
        return None
    states: dict[str, list[dict]] = {}
    for line in out.stdout.strip().splitlines():
        job, state, exit_code, elapsed = line.split("|")[:4]
        base, _, task = job.partition("_")
        states.setdefault(base, []).append({"task": task or None, "state": state.split()[0],
                                            "exit": exit_code, "elapsed": elapsed})
    return states


def _scontrol(ids: list[str]) -> dict[str, list[dict]]:
    """States from one `scontrol show job` call (every job slurmctld still remembers)."""
    wanted = set(ids)
    states: dict[str, list[dict]] = {}
    out = _run(["scontrol", "show", "job", "--oneliner"], check=False)
    for line in out.stdout.strip().splitlines():
        f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        base = f.get("ArrayJobId") or f.get("JobId")
        if base in wanted:
            states.setdefault(base, []).append({
                "task": f.get("ArrayTaskId"), "state": f.get("JobState", "?"),
                "exit": f.get("ExitCode", "?"), "elapsed": f.get("RunTime", "?")})
    return states


def job_states(ids: list[str]) -> dict[str, list[dict]]:
    """{job id: [{task, state, exit, elapsed}, ...]} from sacct, or from scontrol where there is
    no accounting (finished jobs then stay visible for MinJobAge only)."""
    ids = [i for i in ids if i]
    if not ids:
        return {}
    states = _sacct(ids)
    if states is None or any(i not in states for i in ids):
        fallback = _scontrol(ids)
        states = {**fallback, **(states or {})} if states else fallback
    return states


def overall(entries: list[dict] | None) -> str:
    """One state for a job (an array job: the worst of its tasks)."""
    if not entries:
        return "UNKNOWN"
    names = [e["state"] for e in entries]
    for bad in ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "CANCELLED", "PREEMPTED",
                "BOOT_FAIL", "DEADLINE"):
        if bad in names:
            return bad
    for busy in ("RUNNING", "COMPLETING", "PENDING", "CONFIGURING", "REQUEUED", "SUSPENDED"):
        if busy in names:
            return busy
    return names[0]


def wait(run_dir: Path, timeout: float | None = None, poll: float = 5.0) -> dict[str, str]:
    """Wait until every job of a submission has ended; {job name: state}."""
    manifest = read_manifest(run_dir)
    ids = {j["name"]: j["job_id"] for j in manifest["jobs"]}
    deadline = None if timeout is None else time.monotonic() + timeout
    unknown = 0
    while True:
        states = job_states(list(ids.values()))
        summary = {name: overall(states.get(i)) for name, i in ids.items()}
        if all(s in TERMINAL for s in summary.values()):
            return summary
        unknown = unknown + 1 if all(s == "UNKNOWN" for s in summary.values()) else 0
        if unknown >= 3:
            raise ScalelensError(f"{run_dir}: SLURM knows none of its jobs (sacct and scontrol "
                                 f"find none of {', '.join(ids.values())}): is SLURM_CONF right, "
                                 f"or were they purged after MinJobAge?")
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{run_dir}: jobs still running after {timeout:.0f} s: "
                               + ", ".join(f"{n}={s}" for n, s in summary.items()
                                           if s not in TERMINAL))
        time.sleep(poll)


# -- the record job ----------------------------------------------------------------------------

def record(run_dir: Path) -> int:
    """Commit every stage of the submission that finished (its done marker exists) into
    dvc.lock; exit status 1 (after committing) when some stage did not finish."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    repo, python = Path(manifest["repo"]), manifest.get("python") or sys.executable
    stages = [j["stage"] for j in manifest["jobs"] if j["stage"]]
    done = [s for s in stages if (run_dir / "done" / s).is_file()]
    missing = [s for s in stages if s not in done]
    if done:
        print(f"record: dvc commit -f of {len(done)} finished stage(s): {', '.join(done)}",
              flush=True)
        commit(repo, python, done)
        left = stale_stages(repo, python) & set(done)
        if left:
            raise ScalelensError("after dvc commit, dvc status still reports "
                                 + ", ".join(sorted(left)))
    (run_dir / "recorded").write_text("\n".join(done) + ("\n" if done else ""),
                                      encoding="utf-8")
    if missing:
        print(f"record: {len(missing)} stage(s) did not finish: {', '.join(missing)}; see "
              f"{run_dir / 'logs'}; submit the same graph again to resume (finished stages "
              f"are skipped, PhiID shards keep their checkpoints)", file=sys.stderr)
        return 1
    print(f"record: all {len(done)} stage(s) recorded in dvc.lock", flush=True)
    return 0


def which_python(configured: str | None) -> str:
    """The jobs' interpreter: the configured one, else this one (a venv's path, unresolved)."""
    python = configured or sys.executable
    if not os.path.isabs(python):
        raise ScalelensError(f"python: {python!r} must be an absolute path (compute nodes do not "
                             f"share your PATH)")
    return python
