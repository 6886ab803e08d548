"""`dvc repro` through every stage for a hub id (offline, from the hub cache) and a local folder.

The two kinds of key a cluster user lists besides registry keys: `org/name` hub ids and
checkpoint directories. Both must get their own slug-named outputs in every stage, and a
second `dvc repro` must find nothing to do.
"""

import json

import pytest
from tiny_pipeline import HUB_ID, dvc

from scalelens.paths import LadderPaths, model_paths
from scalelens.pipeline import STAGES

pytestmark = pytest.mark.xdist_group("ladder")  # one worker: tests share its fixtures


@pytest.fixture()
def repo(ladder_repo):
    return ladder_repo


def test_every_stage_ran_for_both_keys_under_their_slugs(repo):
    root, models = repo
    lock = (root / "dvc.lock").read_text()
    slugs = ["google--gemma-3-4b-tiny", "qwen3-shaped"]
    assert [model_paths(m).slug for m in models] == slugs
    for spec in STAGES:
        if spec.scope == "model":
            for slug in slugs:
                assert f"{spec.name}@{slug}:" in lock, (spec.name, slug)
                for path in (*spec.outs(model_paths(models[slugs.index(slug)])),
                             *spec.metrics(model_paths(models[slugs.index(slug)]))):
                    assert (root / path).exists(), path
        elif spec.scope == "ladder":
            assert f"  {spec.name}:" in lock, spec.name
    facts = json.loads((root / model_paths(HUB_ID).activations_json).read_text())
    assert facts["source"] == "hub" and facts["model"] == HUB_ID
    local = json.loads((root / model_paths(models[1]).activations_json).read_text())
    assert local["source"] == "local" and local["n_heads"] == 8
    verdict = json.loads((root / LadderPaths.verdict_json("gain")).read_text())
    assert set(verdict["inputs"]) == set(models)


def test_a_second_repro_finds_nothing_to_do(repo):
    root, _ = repo
    out = dvc(root, "status")
    assert "Data and pipelines are up to date" in out.stdout, out.stdout[-3000:]
