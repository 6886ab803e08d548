"""The SLURM path (scalelens.slurm, slurm/): the job graph, then the tiny pipeline through SLURM.

The first tests need no SLURM: the stage graph derived from the dvc.yaml mapping, the job plan
(PhiID as a shard array + merge, one record job at the end), resources from the cluster config,
the rendered sbatch script (which must pass SIGTERM on to the stage) and the --dry-run table.

The last test runs a real single-node SLURM (tests/slurm_cluster.py: installed by
slurm/install-local.sh when missing, started from a temp folder by slurm/local-cluster.sh). In a
temp copy of the repository with a params.yaml for tiny:gemma3_text (tiny:llama has 2 layers, and
rank needs layer thirds) and phiid.shards: 2 it submits the whole pipeline with sbatch, sends
SIGTERM to one PhiID shard while it runs, checks that the record job commits exactly the stages
that finished, resubmits (only the rest runs; the other shard resumes from its checkpoints), and
then checks every job COMPLETED, the outputs against the library, dvc.lock and `dvc status`.
It is skipped only where SLURM cannot be installed (SCALELENS_REQUIRE_SLURM=1 makes that a
failure). About 6 minutes on the shared 2-core development machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from slurm_cluster import SlurmUnavailable, cancel_all, local_cluster
from tests_paths import ROOT, stage_module

from scalelens.errors import ScalelensError
from scalelens.params import load_params
from scalelens.paths import LadderPaths, MotifPaths, model_paths
from scalelens.pipeline import build_dvc_yaml
from scalelens.slurm import ClusterConfig, Resources, stage_graph
from scalelens.slurm.cluster import job_states, overall, read_manifest, wait
from scalelens.slurm.graph import downstream_closure, select
from scalelens.slurm.plan import plan_jobs, render_script

pytestmark = pytest.mark.xdist_group("slurm")  # one worker: tests share its fixtures

MODEL = "tiny:gemma3_text"  # 3 layers x 4 heads: the smallest tiny model rank can place in thirds
SLUG = "tiny-gemma3_text"
MP = model_paths(MODEL)
PER_MODEL = ["extract", "phiid", "rank", "si", "gain", "uniformity", "ablate", "graph_cores",
             "perturb", "attribute"]
LADDER = ["compare_profiles", "si_verdict", "gain_verdict", "uniformity_verdict",
          "ablate_compare", "motif_scale", "report"]
GRAPH_SETS = [SLUG]  # the model's own attribution graphs (no imported set by default)
ALL_STAGES = ({f"{s}@{SLUG}" for s in PER_MODEL} | set(LADDER)
              | {f"motif_census@{g}" for g in GRAPH_SETS})
PHIID_AND_AFTER = {f"phiid@{SLUG}", f"rank@{SLUG}", "compare_profiles", f"ablate@{SLUG}",
                   "ablate_compare", f"graph_cores@{SLUG}", f"perturb@{SLUG}", "report"}


def pairs_dataset() -> dict:
    def category(name):
        return {"description": f"{name} pairs", "expected_effect": "A preferred",
                "pairs": [[f"The {name} statement number {i} is true.",
                           f"Statement {name} {i} false is the."] for i in range(3)]}

    return {name: category(name) for name in ("alpha", "beta", "gamma")}


def tiny_params(folder: Path, shards: int = 2) -> Path:
    """params.yaml of the repository, for one tiny model and small sizes (as the stage tests),
    with the statement pairs and the graph-set folder it names beside it."""
    pairs = folder / "data/statements/tiny_pairs.json"
    pairs.parent.mkdir(parents=True, exist_ok=True)
    (folder / "data/graphs").mkdir(exist_ok=True)  # motifs.graphs_dir (no imported set)
    pairs.write_text(json.dumps(pairs_dataset()))
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["models"] = [MODEL]
    p["device"] = "cpu"
    p["extract"].update(max_new_tokens=12, min_new_tokens=12, batch_size=64)
    p["phiid"].update(chunk_pairs=16, shards=shards)  # 66 pairs: 3 chunks per shard
    p["si"].update(n_boot=40, cpu_dtype_order=["bf16", "fp16", "fp32"])  # tiny: the walk
    p["gain"].update(n_boot=40, n_perm=200)
    p["uniformity"].update(n_boot=40, layer_step=1, dataset="data/statements/tiny_pairs.json")
    p["ablation"].update(n_prompts=4, n_points=4, random_seeds=[0, 1], batch_size=4)
    p["perturb"].update(n_problems=4, n_shots=1, max_new_tokens=2, random_seeds=[0, 1],
                        batch_size=4)
    p["motifs"].update(n_random=4, n_jobs=1)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return path


def tiny_graph(tmp_path, shards=2):
    params = load_params(tiny_params(tmp_path, shards))
    cwd = os.getcwd()
    os.chdir(ROOT)  # prompt files are dvc.yaml deps relative to the repository
    try:
        return params, stage_graph(build_dvc_yaml(params)["stages"])
    finally:
        os.chdir(cwd)


# -- the graph and the plan, without SLURM ---------------------------------------------------

def test_graph_edges_are_outputs_read_as_deps(tmp_path):
    params, graph = tiny_graph(tmp_path)
    assert set(graph) == ALL_STAGES
    for stage in graph.values():
        for up in stage.upstream:
            assert set(graph[up].products) & set(stage.deps), (stage.address, up)
        for other in graph.values():  # and every output read is an edge
            if other.address != stage.address and set(other.products) & set(stage.deps):
                assert other.address in stage.upstream, (stage.address, other.address)
    up = {a: set(s.upstream) for a, s in graph.items()}
    assert up[f"extract@{SLUG}"] == set() and up[f"si@{SLUG}"] == set()
    assert up[f"phiid@{SLUG}"] == {f"extract@{SLUG}"}
    assert up[f"rank@{SLUG}"] == {f"phiid@{SLUG}", f"extract@{SLUG}"}
    assert up[f"graph_cores@{SLUG}"] == {f"phiid@{SLUG}", f"rank@{SLUG}"}
    assert up["si_verdict"] == {f"si@{SLUG}"}
    assert up["motif_scale"] == {f"motif_census@{g}" for g in GRAPH_SETS}
    assert graph[f"rank@{SLUG}"].cmd == f"sh scripts/py stages/rank.py --model '{MODEL}'"
    order = list(graph)
    assert all(order.index(u) < order.index(a) for a in graph for u in graph[a].upstream)
    # targets take what they read; a stale stage takes what reads it
    assert select(graph, ["compare_profiles"]) == {
        "compare_profiles", f"rank@{SLUG}", f"phiid@{SLUG}", f"extract@{SLUG}"}
    assert downstream_closure(graph, {f"phiid@{SLUG}"}) == PHIID_AND_AFTER
    with pytest.raises(ScalelensError, match="matches no stage"):
        select(graph, ["nonesuch"])


def test_graph_is_generic_over_the_dvc_yaml_mapping():
    stages = {
        "make": {"foreach": {"a": "key/a", "b": "key/b"},
                 "do": {"cmd": "python stages/make.py --model '${item}'",
                        "deps": ["stages/make.py"], "outs": ["out/${key}.npz"],
                        "metrics": [{"out/${key}.json": {"cache": False}}]}},
        "use": {"foreach": ["a", "b"],
                "do": {"cmd": "python stages/use.py --model ${item}",
                       "deps": ["out/${item}.json"], "outs": ["use/${item}"]}},
        "all": {"cmd": "python stages/all.py", "deps": ["use/a/x.csv", "use"],
                "plots": ["fig.png"]},
    }
    graph = stage_graph(stages)
    assert list(graph) == ["make@a", "make@b", "use@a", "use@b", "all"]
    assert graph["make@b"].cmd == "python stages/make.py --model 'key/b'"
    assert graph["use@a"].upstream == ["make@a"]  # a metrics file read as a dep
    assert set(graph["all"].upstream) == {"use@a", "use@b"}  # inside an out dir; a dir with outs
    with pytest.raises(ScalelensError, match="cycle"):
        stage_graph({"x": {"cmd": "x", "deps": ["b"], "outs": ["a"]},
                     "y": {"cmd": "y", "deps": ["a"], "outs": ["b"]}})
    with pytest.raises(ScalelensError, match="cannot resolve"):
        stage_graph({"x": {"cmd": "x ${vars.n}"}})


def test_plan_phiid_is_a_shard_array_and_a_merge_and_one_record_job_ends_it(tmp_path):
    params, graph = tiny_graph(tmp_path, shards=2)
    jobs = plan_jobs(graph, set(graph), params, ClusterConfig(), "/opt/py/bin/python", "/runs/1")
    by = {j.name: j for j in jobs}
    shards, merge = by[f"phiid@{SLUG}:shards"], by[f"phiid@{SLUG}"]
    assert shards.kind == "shards" and shards.array == 2 and shards.stage is None
    assert shards.command == ("/opt/py/bin/python stages/phiid.py --model 'tiny:gemma3_text' "
                              '--shard "${SLURM_ARRAY_TASK_ID}"/2')
    assert shards.after == [f"extract@{SLUG}"]
    assert merge.kind == "merge" and merge.after == [shards.name]
    assert merge.command.endswith("--merge") and merge.stage == f"phiid@{SLUG}"
    assert set(by[f"rank@{SLUG}"].after) == {merge.name, f"extract@{SLUG}"}
    record = jobs[-1]
    assert record.name == "record" and record.dependency_type == "afterany"
    assert set(record.after) == {j.name for j in jobs[:-1]}
    assert record.command == "/opt/py/bin/python -m scalelens.slurm record /runs/1"
    assert sum(j.kind == "record" for j in jobs) == 1
    assert {j.stage for j in jobs if j.stage} == ALL_STAGES
    # one shard: one plain job; only stale stages (and what reads them): only their jobs
    params1, graph1 = tiny_graph(tmp_path, shards=1)
    jobs1 = plan_jobs(graph1, set(graph1), params1, ClusterConfig(), "/p", "/r")
    assert [j.kind for j in jobs1 if j.name.startswith("phiid")] == ["stage"]
    part = plan_jobs(graph, downstream_closure(graph, {f"rank@{SLUG}"}), params,
                     ClusterConfig(), "/p", "/r")
    assert f"rank@{SLUG}" in {j.name for j in part} and f"phiid@{SLUG}" not in {
        j.name for j in part}
    assert by[f"rank@{SLUG}"].after and part[0].after == []  # upstream already up to date


def test_resources_from_defaults_profiles_and_patterns():
    config = ClusterConfig.from_dict({
        "defaults": {"account": "proj", "time": "01:00:00", "mem": "4G", "cpus": 2},
        "profiles": {"gpu": {"partition": "gpu", "gpus": 1, "cpus": 8, "mem": "32G"},
                     "small": {"cpus": 1, "mem": "2G", "time": "00:10:00"}},
        "stages": {"extract": "gpu", "extract@big": {"profile": "gpu", "gpus": "a100:2"},
                   "phiid": {"cpus": 16}, "phiid:merge": "small", "*_verdict": "small",
                   "record": {"profile": "small", "setup": "module load x"}},
    })
    r = config.resources(["extract@m", "extract"])
    assert (r.partition, r.gpus, r.cpus, r.mem, r.account) == ("gpu", 1, 8, "32G", "proj")
    assert config.resources(["extract@big", "extract"]).gpus == "a100:2"
    assert config.resources(["phiid@m:shards", "phiid:shards", "phiid@m", "phiid"]).cpus == 16
    assert config.resources(["phiid@m:merge", "phiid:merge", "phiid@m", "phiid"]).cpus == 1
    assert config.resources(["si_verdict"]).time == "00:10:00"
    assert config.resources(["rank@m", "rank"]) == config.defaults
    assert config.resources(["record"]).setup == ("module load x",)
    opts = r.sbatch_options()
    assert opts == ["--account=proj", "--partition=gpu", "--time=01:00:00", "--mem=32G",
                    "--cpus-per-task=8", "--gpus=1", "--signal=B:TERM@120"]
    assert Resources(time=None, mem=None, grace=0).sbatch_options() == ["--cpus-per-task=1"]
    for bad, match in (({"stages": {"x": {"gpu": 1}}}, "unknown key"),
                       ({"stages": {"x": "huge"}}, "no profile 'huge'"),
                       ({"defaults": {"cpus": 0}}, "cpus"), ({"cluster": 1}, "unknown key")):
        with pytest.raises(ScalelensError, match=match):
            ClusterConfig.from_dict(bad)


def test_rendered_script_passes_sigterm_to_the_stage(tmp_path):
    """The template run by bash alone: SIGTERM to the shell reaches the stage, which can stop
    cleanly; status 0 writes the done marker, anything else does not."""
    from scalelens.slurm.plan import Job

    template = (ROOT / "slurm" / "job.sbatch.in").read_text()
    child = ("import signal, sys, time\n"
             "signal.signal(signal.SIGTERM, lambda s, f: (print('stage got SIGTERM', "
             "flush=True), sys.exit(143)))\n"
             "print('started', flush=True)\ntime.sleep(60)\n")
    (tmp_path / "stage.py").write_text(child)
    job = Job("x@m", "stage", "x@m", f"{sys.executable} stage.py", [],
              Resources(account="a b", setup=("export FROM_SETUP=1",)))
    marker = tmp_path / "done" / "x@m"
    marker.parent.mkdir()
    text = render_script(template, job, job_name="sl:x@m", repo=tmp_path,
                         log=tmp_path / "x.log", env={"A": 'say "hi" $HOME'}, marker=marker)
    assert "#SBATCH --account=a b" in text and "#SBATCH --kill-on-invalid-dep=yes" in text
    assert "#SBATCH --signal=B:TERM@120" in text and "{{" not in text
    assert 'export A="say \\"hi\\" $HOME"' in text
    script = tmp_path / "job.sbatch"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    proc = subprocess.Popen(["bash", str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout.readline().startswith("scalelens:")  # the job banner (stderr)
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=30)[0]
    assert proc.returncode == 143, rest
    assert "SIGTERM: passing it to the stage" in rest and "stage got SIGTERM" in rest
    assert not marker.exists()
    job.command = "true"
    script.write_text(render_script(template, job, job_name="j", repo=tmp_path,
                                    log=tmp_path / "x.log", env={}, marker=marker))
    assert subprocess.run(["bash", str(script)], capture_output=True).returncode == 0
    assert marker.is_file()


def test_dry_run_prints_the_job_table_of_the_default_ladder():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-m", "scalelens.slurm", "submit", "--dry-run",
                          "--force", "--config", str(ROOT / "slurm" / "cluster.example.yaml")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if re.match(r"\| \d+ ", line)]
    params = load_params(ROOT / "params.yaml")
    n_stages = sum(1 for _ in stage_graph(build_dvc_yaml(params)["stages"]))
    assert len(rows) == n_stages + 1 + (len(params.models) if params.phiid.shards > 1 else 0)
    assert "nothing submitted" in out.stdout
    head = next(line for line in out.stdout.splitlines() if line.startswith("| # "))
    names = [c.strip() for c in head.strip("|").split("|")]
    table = {cells["job"]: cells for cells in (
        dict(zip(names, (c.strip() for c in r.strip("|").split("|")))) for r in rows)}
    extract = table["extract@smollm2-135m"]
    assert (extract["gpus"], extract["cpus"], extract["after"]) == ("1", "8", "-")  # gpu profile
    assert extract["command"] == "`python stages/extract.py --model 'smollm2-135m'`"
    assert table["si_verdict"]["gpus"] == "-" and table["si_verdict"]["time"] == "00:30:00"
    assert table["record"]["after"] == f"any: 1-{len(rows) - 1}"


# -- the tiny pipeline through a real SLURM ----------------------------------------------------

def copy_repo(dst: Path) -> Path:
    """The files git knows (tracked, or untracked and not ignored), without dvc.lock."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in names:
        src = ROOT / name
        if not name or name == "dvc.lock" or name.startswith(("slurm/runs/", "results/")):
            continue
        if src.is_file() and not src.is_symlink():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    return dst


def _own_temp_dir(prefix: str) -> Path:
    """A folder outside pytest's numbered temp folders, which a concurrent pytest session of the
    same user may delete (it keeps the newest 3) while the daemons and jobs still use them."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="module")
def cluster():
    folder = _own_temp_dir("scalelens-slurm-")
    try:
        with local_cluster(folder) as env, pytest.MonkeyPatch.context() as mp:
            mp.setenv("SLURM_CONF", env["SLURM_CONF"])  # for wait() and job_states() in here
            yield env
    except SlurmUnavailable as e:
        if os.environ.get("SCALELENS_REQUIRE_SLURM") == "1":
            pytest.fail(f"SCALELENS_REQUIRE_SLURM=1 but {e}")
        pytest.skip(f"no SLURM: {e}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def workspace(cluster):
    folder = _own_temp_dir("scalelens-slurm-repo-")
    yield folder
    cancel_all(cluster)  # a failed test may leave jobs writing here
    shutil.rmtree(folder, ignore_errors=True)


def _sh(cmd, work, env, timeout=600, check=True):
    out = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                         timeout=timeout)
    if check:
        assert out.returncode == 0, f"{cmd}: {out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


def _submit(work, env) -> Path:
    out = _sh([sys.executable, "-m", "scalelens.slurm", "submit"], work, env)
    print(out.stdout)
    return Path(re.search(r"manifest in (\S+)", out.stdout).group(1))


def _states(run_dir) -> dict[str, str]:
    jobs = read_manifest(run_dir)["jobs"]
    states = job_states([j["job_id"] for j in jobs])
    return {j["name"]: overall(states.get(j["job_id"])) for j in jobs}


def _diagnose(run_dir) -> str:
    logs = sorted((Path(run_dir) / "logs").glob("*.log"))
    return "\n".join(f"== {p.name}\n{p.read_text()[-1500:]}" for p in logs)


def _locked(work) -> set[str]:
    lock = work / "dvc.lock"
    return set(yaml.safe_load(lock.read_text())["stages"]) if lock.is_file() else set()


def test_tiny_pipeline_through_slurm_with_a_killed_shard_and_a_resubmission(cluster, workspace):
    t0 = time.monotonic()
    work = copy_repo(workspace)
    tiny_params(work, shards=2)
    (work / "slurm" / "cluster.yaml").write_text(yaml.safe_dump({
        "defaults": {"cpus": 1, "mem": "500M", "time": "00:20:00", "grace": 30},
        "env": {"OMP_NUM_THREADS": "1"},
        "stages": {"*_verdict": {"time": "00:10:00"}, "record": {"mem": "1G"}}}))
    env = {**os.environ, **cluster, "PYTHONPATH": str(work / "src"), "OMP_NUM_THREADS": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    _sh([sys.executable, "-m", "scalelens.pipeline"], work, env)  # dvc.yaml for the tiny ladder

    # 1. the whole graph; SIGTERM to PhiID shard 1 while it runs (as at a time limit)
    run1 = _submit(work, env)
    jobs1 = {j["name"]: j for j in read_manifest(run1)["jobs"]}
    assert {j["stage"] for j in jobs1.values() if j["stage"]} == ALL_STAGES
    task = f"{jobs1[f'phiid@{SLUG}:shards']['job_id']}_1"
    deadline = time.monotonic() + 600
    while _sh(["squeue", "--noheader", "-j", task, "-o", "%T"], work, env,
              check=False).stdout.strip() != "RUNNING":
        assert time.monotonic() < deadline, f"shard {task} never ran\n{_diagnose(run1)}"
        time.sleep(0.2)
    time.sleep(1.0)  # the stage is still importing: it cannot have finished
    _sh(["scancel", "--batch", "--signal=TERM", task], work, env)
    states1 = wait(run1, timeout=1200, poll=2)
    t1 = time.monotonic()
    shard_tasks = {e["task"]: e for e in job_states(
        [jobs1[f"phiid@{SLUG}:shards"]["job_id"]])[jobs1[f"phiid@{SLUG}:shards"]["job_id"]]}
    assert shard_tasks["1"]["state"] == "FAILED" and shard_tasks["1"]["exit"] == "143:0", (
        shard_tasks, _diagnose(run1))
    assert shard_tasks["0"]["state"] == "COMPLETED"
    log1 = next((run1 / "logs").glob("phiid@*:shards-*_1.log")).read_text()
    assert "SIGTERM: passing it to the stage" in log1
    cancelled = {n for n, s in states1.items() if s == "CANCELLED"}
    assert cancelled == PHIID_AND_AFTER, (states1, _diagnose(run1))  # afterok never satisfied
    finished = ALL_STAGES - PHIID_AND_AFTER
    assert all(states1[s] == "COMPLETED" for s in finished), (states1, _diagnose(run1))
    assert states1["record"] == "FAILED"  # it recorded what finished, and said what did not
    record_log = next((run1 / "logs").glob("record-*.log")).read_text()
    assert f"{len(PHIID_AND_AFTER)} stage(s) did not finish" in record_log
    assert _locked(work) == finished

    # 2. the same command again: only what did not finish runs; shard 0 resumes its chunks
    run2 = _submit(work, env)
    jobs2 = {j["name"] for j in read_manifest(run2)["jobs"]}
    assert jobs2 == PHIID_AND_AFTER | {f"phiid@{SLUG}:shards", "record"}
    states2 = wait(run2, timeout=1200, poll=2)
    t2 = time.monotonic()
    assert all(s == "COMPLETED" for s in states2.values()), (states2, _diagnose(run2))
    shard0 = next((run2 / "logs").glob("phiid@*:shards-*_0.log")).read_text()
    assert re.search(r"shard 0/2 done: .* 0 chunks computed, [1-9]\d* resumed", shard0), shard0

    # 3. recorded: dvc.lock has every stage, dvc status is clean, a third submit has nothing
    assert _locked(work) == ALL_STAGES
    status = _sh([sys.executable, "-m", "dvc", "status", "--json"], work, env).stdout
    assert json.loads(status[status.find("{"):]) == {}
    again = _sh([sys.executable, "-m", "scalelens.slurm", "submit"], work, env).stdout
    assert "nothing to submit" in again

    # 4. the outputs: the sharded PhiID equals the library's one-process result, and so on
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        _check_outputs(work)
    print(f"\nslurm test: first graph {t1 - t0:.0f} s, resubmission {t2 - t1:.0f} s, "
          f"total {time.monotonic() - t0:.0f} s")


def _check_outputs(work: Path) -> None:
    from scalelens.io import load_npz
    from scalelens.phiid import load_result, pairwise_phiid
    from scalelens.ranking import layer_profile, rank_heads

    phiid = stage_module("phiid")
    params = load_params(work / "params.yaml")
    arrays = load_npz(MP.activations_npz)
    assert arrays["norms"].shape == (64, 12, 12)  # prompts x heads x steps
    direct = pairwise_phiid(arrays["norms"], **phiid.engine_kwargs(arrays, params.phiid))
    merged = load_result(MP.phiid_npz)
    for name in ("sts", "rtr"):
        np.testing.assert_allclose(getattr(merged, name), getattr(direct, name), rtol=1e-12,
                                   atol=1e-15, err_msg=name)
    ranking = rank_heads(merged.sts, merged.rtr, 3, 4)
    frame = pd.read_csv(MP.rankings_csv)
    np.testing.assert_allclose(frame["syn_red_score"], ranking.syn_red_score, rtol=1e-9)
    compare = json.loads(LadderPaths.compare_profiles_json.read_text())
    assert compare["models"][MODEL]["peak_depth"] == layer_profile(ranking).peak_depth
    for study, key in (("si", "verdict"), ("gain", "verdict_g_seed"), ("uniformity", "verdict")):
        assert json.loads(LadderPaths.verdict_json(study).read_text())[key], study
    census = pd.read_csv(MotifPaths.census_dir(SLUG) / "census.csv")
    n_graphs = len(sorted((work / MP.graphs_dir).glob("*/*.json")))
    assert n_graphs == 16 and len(census) == n_graphs * 2  # both null models
    for path in (MP.ablation_csv, MP.graph_cores_npz, MP.perturb_metrics,
                 LadderPaths.ablate_compare_json, MotifPaths.scale_dir / "scale_analysis.json"):
        assert path.is_file(), path

    import mlflow  # every stage is an MLflow run in the one store all jobs shared

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    for stage in PER_MODEL + LADDER + ["motif_census"]:
        runs = mlflow.search_runs(experiment_names=[stage], output_format="list")
        assert runs and all(r.info.status == "FINISHED" for r in runs), stage
