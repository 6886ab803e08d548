"""Same code, params and machine give the same bytes. Two independent runs of the tiny pipeline,
the session's own and a fresh clone of its committed set-up (built on the other pytest-xdist
worker, after SLURM's run: see conftest.PIPELINE_GROUPS), write byte-identical outs (equal
dvc.lock hashes) and git-tracked metrics; a forced rerun of model stages over their existing outs
changes nothing again.

The fresh clone runs every per-model stage of the local model (extract to perturb and the motif
census: every stage that runs a model or draws random numbers for one), not the cross-model
stages, which combine those outputs; that halves the test's time."""

import pytest
import yaml
from tiny_pipeline import LOCAL_NAME, clone, dvc, run

pytestmark = pytest.mark.xdist_group("determinism")

# the per-model stages and the ones among them no other per-model stage reads
PER_MODEL_STAGES = ("extract", "phiid", "rank", "si", "gain", "uniformity", "attribute",
                    "motif_census", "ablate", "graph_cores", "perturb")
PER_MODEL_LEAVES = ("si", "gain", "uniformity", "motif_census", "ablate", "graph_cores",
                    "perturb")

# outputs that hold run ids and timings by design (the report page), compared by presence only
VOLATILE = ("results/report/",)


def _outs(repo) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values()
            for out in stage.get("outs", []) if not out["path"].startswith(VOLATILE)}


def _metrics(repo) -> dict[str, bytes]:
    tracked = run(["git", "ls-files", "results"], repo).stdout.split()
    return {p: (repo / p).read_bytes() for p in tracked if not p.startswith(VOLATILE)}


def test_two_fresh_runs_and_a_forced_rerun_give_byte_identical_outs(ladder_prepared, request,
                                                                    tmp_path):
    root, models, setup_commit = ladder_prepared
    fresh = clone(root, tmp_path / "fresh")
    run(["git", "checkout", "-q", setup_commit], fresh)  # the set-up, before any result
    assert not (fresh / "dvc.lock").exists()
    dvc(fresh, "repro", *(f"{stage}@{LOCAL_NAME}" for stage in PER_MODEL_LEAVES))

    request.getfixturevalue("ladder_repo")  # the session's own run (built beside this one)
    reference = _outs(root)
    assert len(reference) > 40
    outs = _outs(fresh)
    stages = set(yaml.safe_load((fresh / "dvc.lock").read_text())["stages"])
    assert stages == {f"{s}@{LOCAL_NAME}" for s in PER_MODEL_STAGES}
    assert len(outs) > 15 and outs == {p: reference[p] for p in outs}
    metrics = _metrics(root)
    assert len(metrics) > 20
    ran = {p: data for p, data in metrics.items()  # DVC's .gitignores list every model's outs
           if (fresh / p).exists() and not p.endswith(".gitignore")}
    assert len(ran) > 8
    assert {p: (fresh / p).read_bytes() for p in ran} == ran

    # a forced rerun over existing outs (outputs written aside, then swapped in) of the local
    # model's generation, attribution and weight-noise stages
    forced = [f"{stage}@{LOCAL_NAME}" for stage in ("extract", "attribute", "perturb")]
    assert set(forced) <= set(yaml.safe_load((fresh / "dvc.lock").read_text())["stages"])
    dvc(fresh, "repro", "-f", "-s", *forced)
    assert _outs(fresh) == outs
