"""Same code, params and machine give the same bytes. Two independent runs of the tiny pipeline,
the session's own and a fresh clone of its committed set-up (run side by side with it under
pytest-xdist), write byte-identical outs (equal dvc.lock hashes) and git-tracked metrics; a
forced rerun of model stages over their existing outs changes nothing again."""

import pytest
import yaml
from tiny_pipeline import clone, dvc, run

pytestmark = pytest.mark.xdist_group("determinism")

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
    dvc(fresh, "repro")

    request.getfixturevalue("ladder_repo")  # the session's own run (built beside this one)
    reference = _outs(root)
    assert len(reference) > 40
    assert _outs(fresh) == reference
    metrics = _metrics(root)
    assert len(metrics) > 20
    assert {p: (fresh / p).read_bytes() for p in metrics} == metrics

    # a forced rerun over existing outs (outputs written aside, then swapped in) of the local
    # model's generation, attribution and weight-noise stages
    forced = [f"{stage}@qwen3-shaped" for stage in ("extract", "attribute", "perturb")]
    assert set(forced) <= set(yaml.safe_load((fresh / "dvc.lock").read_text())["stages"])
    dvc(fresh, "repro", "-f", "-s", *forced)
    assert _outs(fresh) == reference
