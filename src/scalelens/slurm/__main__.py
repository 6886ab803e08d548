"""`python -m scalelens.slurm submit|status|cancel|record` (scalelens.slurm, docs/slurm.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scalelens.errors import ScalelensError


def _submit(args) -> int:
    from scalelens.slurm import load_config, plan, submit

    repo = Path(args.repo).resolve()
    config = load_config(repo, args.config)
    sub = plan(repo, args.params, config, args.targets, force=args.force, python=args.python,
               record_results=not args.no_record)
    if sub.skipped:
        print(f"up to date (dvc status), skipped: {len(sub.skipped)} stage(s); --force runs "
              f"them too")
    if not sub.jobs:
        print("nothing to submit: every selected stage is up to date")
        return 0
    print(f"config: {config.source}")
    print(f"python = {sub.python}")
    if args.dry_run:
        print(f"{len(sub.jobs)} job(s) (dry run: nothing submitted)\n")
        print(sub.table())
        return 0
    submit(sub)
    print(f"{len(sub.jobs)} job(s) submitted; scripts, logs and manifest in {sub.run_dir}\n")
    print(sub.table(show_ids=True))
    print(f"\nwatch:  python -m scalelens.slurm status {sub.run_dir} [--wait]"
          f"\ncancel: python -m scalelens.slurm cancel {sub.run_dir}")
    return 0


def _run_dir(args) -> Path:
    from scalelens.slurm import latest_run, load_config

    if args.run_dir:
        return Path(args.run_dir)
    repo = Path(args.repo).resolve()
    return latest_run(repo, load_config(repo, args.config))


def _status(args) -> int:
    from scalelens.slurm.cluster import job_states, overall, read_manifest, wait

    run_dir = _run_dir(args)
    manifest = read_manifest(run_dir)
    if args.wait:
        wait(run_dir, timeout=args.timeout, poll=args.poll)
    jobs = manifest["jobs"]
    states = job_states([j["job_id"] for j in jobs])
    rows = [("job", "job id", "state", "exit", "elapsed", "done")]
    final = {}
    for j in jobs:
        entries = states.get(j["job_id"]) or []
        state = overall(entries)
        final[j["name"]] = state
        tasks = f" ({len(entries)} tasks)" if j.get("array") else ""
        done = "-" if not j["stage"] else (
            "yes" if (run_dir / "done" / j["stage"]).is_file() else "no")
        exit_code = ",".join(sorted({e["exit"] for e in entries})) or "?"
        elapsed = max((e["elapsed"] for e in entries), default="?")
        rows.append((j["name"], j["job_id"], state + tasks, exit_code, elapsed, done))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"{run_dir}")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if args.wait:
        return 0 if all(s == "COMPLETED" for s in final.values()) else 1
    return 0


def _cancel(args) -> int:
    from scalelens.slurm.cluster import _run, read_manifest

    run_dir = _run_dir(args)
    ids = [j["job_id"] for j in read_manifest(run_dir)["jobs"] if j["job_id"]]
    _run(["scancel", *ids])
    print(f"cancelled {len(ids)} job(s) of {run_dir}")
    return 0


def _record(args) -> int:
    from scalelens.slurm.cluster import record

    return record(Path(args.run_dir))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scalelens.slurm",
                                 description="Run the DVC pipeline as SLURM jobs (docs/slurm.md).")
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("submit", help="submit the stage graph (or print it with --dry-run)")
    s.add_argument("targets", nargs="*",
                   help="stages to run with everything they read: an address "
                        "(phiid@smollm2-135m), a stage name (rank) or a glob; default: all")
    s.add_argument("--params", help="params file (default: params.yaml of the repository)")
    s.add_argument("--config", help="cluster settings (default: slurm/cluster.yaml if it "
                                    "exists, else built-in defaults)")
    s.add_argument("--dry-run", action="store_true", help="print the job graph, submit nothing")
    s.add_argument("--force", action="store_true",
                   help="run every selected stage, even those dvc status reports up to date")
    s.add_argument("--python", help="interpreter of the jobs (default: this one)")
    s.add_argument("--no-record", action="store_true",
                   help="no final job recording the results in dvc.lock")
    s.add_argument("--repo", default=".", help="repository root (default: .)")
    s.set_defaults(func=_submit)

    for name, func, text in (("status", _status, "the jobs of a submission and their states"),
                             ("cancel", _cancel, "scancel every job of a submission")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run_dir", nargs="?", help="submission folder (default: the latest)")
        p.add_argument("--repo", default=".")
        p.add_argument("--config")
        if name == "status":
            p.add_argument("--wait", action="store_true",
                           help="wait until every job has ended; exit 1 unless all COMPLETED")
            p.add_argument("--timeout", type=float, default=None)
            p.add_argument("--poll", type=float, default=10.0)
        p.set_defaults(func=func)

    r = sub.add_parser("record", help="dvc commit the finished stages of a submission "
                                      "(the last job runs this)")
    r.add_argument("run_dir")
    r.set_defaults(func=_record)

    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except ScalelensError as e:
        print(f"scalelens.slurm: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
