"""The cluster settings file (slurm/cluster.yaml): resources per job, profiles, job environment.

    python: null              # the jobs' interpreter; null = the one running the submitter
    job_prefix: "sl:"         # prepended to every SLURM job name
    run_dir: slurm/runs       # each submission's scripts, logs and state (relative to the repo)
    template: null            # sbatch template; null = slurm/job.sbatch.in of the repository
    defaults: {account: null, partition: null, time: "01:00:00", mem: 8G, cpus: 1, gpus: 0}
    env: {HF_HUB_OFFLINE: "1"}
    profiles: {gpu: {partition: gpu, gpus: 1, cpus: 8, mem: 32G}}
    stages:
      extract: gpu                          # a profile name, or
      phiid: {profile: cpu, cpus: 16}       # a profile and overrides, or plain overrides
      "*_verdict": small                    # fnmatch patterns, first match in file order
      phiid:merge: small                    # a sharded stage's merge job (phiid:shards: its array)
      record: small                         # the final job that writes dvc.lock

A job's resources are `defaults`, then the profile of its best-matching `stages` entry, then that
entry's own values. Candidates, most specific first: `<stage>@<key>`, then `<stage>` (for a shard
array `<stage>@<key>:shards` and `<stage>:shards` come first, for a merge job `...:merge`). An
exact key beats a pattern for the same candidate. Unknown keys are errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

from scalelens.errors import ScalelensError


@dataclass(frozen=True)
class Resources:
    """What one job asks SLURM for. None (or 0 GPUs) leaves the option out of the script."""

    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    time: str | None = "01:00:00"  # --time: minutes, HH:MM:SS or D-HH:MM:SS
    mem: str | None = "4G"  # --mem per node: 4G, 500M; a bare number is MB
    cpus: int = 1  # --cpus-per-task
    gpus: str | int | None = 0  # --gpus: a count or type:count (a100:1)
    gres: str | None = None  # --gres, for clusters that want gpu:1 there instead of --gpus
    constraint: str | None = None
    grace: int = 120  # SIGTERM this many seconds before the time limit (--signal=B:TERM@grace)
    extra: tuple[str, ...] = ()  # more sbatch options, verbatim ("--exclusive")
    setup: tuple[str, ...] = ()  # shell lines run before the stage ("module load cuda")

    def sbatch_options(self) -> list[str]:
        opts = []
        for name, flag in (("account", "account"), ("partition", "partition"), ("qos", "qos"),
                           ("time", "time"), ("mem", "mem"), ("constraint", "constraint"),
                           ("gres", "gres")):
            value = getattr(self, name)
            if value not in (None, ""):
                opts.append(f"--{flag}={value}")
        opts.append(f"--cpus-per-task={self.cpus}")
        if self.gpus not in (None, 0, "0", ""):
            opts.append(f"--gpus={self.gpus}")
        if self.grace:
            opts.append(f"--signal=B:TERM@{self.grace}")
        return opts + list(self.extra)

    def summary(self) -> dict[str, str]:
        gpus = self.gpus if self.gpus not in (None, 0, "0", "") else (self.gres or "-")
        return {"cpus": str(self.cpus), "mem": str(self.mem or "-"), "gpus": str(gpus),
                "time": str(self.time or "-"), "partition": self.partition or "-",
                "account": self.account or "-"}


RESOURCE_KEYS = {f.name for f in fields(Resources)}
TOP_KEYS = {"python", "job_prefix", "run_dir", "template", "defaults", "env", "profiles",
            "stages"}


def _check_resources(where: str, values: dict, allow_profile: bool) -> dict:
    if not isinstance(values, dict):
        raise ScalelensError(f"{where}: expected a mapping of resources, got {values!r}")
    allowed = RESOURCE_KEYS | ({"profile"} if allow_profile else set())
    unknown = set(values) - allowed
    if unknown:
        raise ScalelensError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: "
                             f"{', '.join(sorted(allowed))}")
    out = dict(values)
    for key in ("cpus", "grace"):
        if key in out and (not isinstance(out[key], int) or isinstance(out[key], bool)
                           or out[key] < (1 if key == "cpus" else 0)):
            raise ScalelensError(f"{where}.{key}: expected a whole number"
                                 f"{' >= 1' if key == 'cpus' else ' >= 0'}, got {out[key]!r}")
    for key in ("extra", "setup"):
        if key in out:
            value = out[key] or []
            if isinstance(value, str):
                value = [value]
            if not all(isinstance(v, str) for v in value):
                raise ScalelensError(f"{where}.{key}: expected a list of strings")
            out[key] = tuple(value)
    for key in ("time", "mem"):
        if out.get(key) is not None:
            out[key] = str(out[key])
    if out.get("gpus") is not None and not isinstance(out["gpus"], int):
        out["gpus"] = str(out["gpus"])
    return out


@dataclass
class ClusterConfig:
    python: str | None = None
    job_prefix: str = "sl:"
    run_dir: str = "slurm/runs"
    template: str | None = None
    defaults: Resources = field(default_factory=Resources)
    env: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, dict] = field(default_factory=dict)
    stages: dict[str, object] = field(default_factory=dict)
    source: str = "(built-in defaults)"

    @classmethod
    def load(cls, path: str | Path | None) -> ClusterConfig:
        if path is None:
            return cls()
        path = Path(path)
        if not path.is_file():
            raise ScalelensError(f"cluster config {path} not found (copy "
                                 f"slurm/cluster.example.yaml to slurm/cluster.yaml and edit it)")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = "(dict)") -> ClusterConfig:
        if not isinstance(data, dict):
            raise ScalelensError(f"{source}: expected a mapping at the top level")
        unknown = set(data) - TOP_KEYS
        if unknown:
            raise ScalelensError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; "
                                 f"allowed: {', '.join(sorted(TOP_KEYS))}")
        defaults = Resources(**_check_resources(f"{source}: defaults",
                                                data.get("defaults") or {}, False))
        profiles = {}
        for name, values in (data.get("profiles") or {}).items():
            profiles[str(name)] = _check_resources(f"{source}: profiles.{name}", values or {},
                                                   False)
        stages = {}
        for name, value in (data.get("stages") or {}).items():
            where = f"{source}: stages.{name}"
            if isinstance(value, str):
                value = {"profile": value}
            value = _check_resources(where, value or {}, True)
            if "profile" in value and value["profile"] not in profiles:
                raise ScalelensError(f"{where}: no profile {value['profile']!r} (profiles: "
                                     f"{', '.join(profiles) or 'none'})")
            stages[str(name)] = value
        env = data.get("env") or {}
        if not isinstance(env, dict):
            raise ScalelensError(f"{source}: env must be a mapping of variable: value")
        for k in env:
            if not str(k).isidentifier():
                raise ScalelensError(f"{source}: env: {k!r} is not a variable name")
        return cls(python=data.get("python"), job_prefix=str(data.get("job_prefix", "sl:")),
                   run_dir=str(data.get("run_dir") or "slurm/runs"),
                   template=data.get("template"), defaults=defaults,
                   env={str(k): "" if v is None else str(v) for k, v in env.items()},
                   profiles=profiles, stages=stages, source=source)

    def entry_for(self, candidates: list[str]) -> tuple[str | None, dict]:
        """The best `stages` entry for a job's candidate names: (its key, its values)."""
        for candidate in candidates:
            if candidate in self.stages:
                return candidate, self.stages[candidate]
            for key, value in self.stages.items():
                if any(c in key for c in "*?[") and fnmatchcase(candidate, key):
                    return key, value
        return None, {}

    def resources(self, candidates: list[str]) -> Resources:
        _, entry = self.entry_for(candidates)
        values = dict(self.profiles.get(entry.get("profile"), {})) if entry else {}
        values.update({k: v for k, v in entry.items() if k != "profile"})
        return replace(self.defaults, **values)
