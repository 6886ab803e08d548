"""Same code, params and machine give the same bytes: a fresh clone of the tiny pipeline's
repository recomputes every out byte for byte (its dvc.lock equals the committed one), and a
forced `dvc repro -f` there changes nothing again."""

import yaml
from tiny_pipeline import clone, dvc, run

# outputs that hold run ids and timings by design (the report page), compared by presence only
VOLATILE = ("results/report/",)


def _outs(repo) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values()
            for out in stage.get("outs", []) if not out["path"].startswith(VOLATILE)}


def test_a_fresh_clone_and_a_forced_rerun_give_byte_identical_outs(ladder_repo, tmp_path):
    root, _ = ladder_repo
    reference = _outs(root)
    assert len(reference) > 40
    fresh = clone(root, tmp_path / "fresh")
    dvc(fresh, "repro")
    assert _outs(fresh) == reference
    dvc(fresh, "repro", "-f")
    assert _outs(fresh) == reference
    changed = run(["git", "status", "--porcelain", "--untracked-files=no"], fresh).stdout
    # every git-tracked metric and verdict json is byte-identical too
    assert [ln for ln in changed.splitlines() if not any(v in ln for v in VOLATILE)] in (
        [], [" M dvc.lock"]), changed
