"""`dvc repro` through every stage for a hub id (offline, from the hub cache) and a local folder.

The two kinds of key a cluster user lists besides registry keys: `org/name` hub ids and
checkpoint directories. Both must get their own slug-named outputs in every stage, and a
second `dvc repro` must find nothing to do.
"""

import json

import pytest
from hub_cache import save_as_hub_download
from tiny_pipeline import dvc, make_repo

from scalelens.models import load_model
from scalelens.paths import LadderPaths, model_paths
from scalelens.pipeline import STAGES

HUB_ID = "google/gemma-3-4b-tiny"  # the multimodal wrapper, as gemma-3-4b-pt loads


@pytest.fixture(scope="module")
def repo(tmp_path_factory, monkeypatch_module):
    base = tmp_path_factory.mktemp("cluster")
    hf = base / "hf"
    save_as_hub_download(hf, HUB_ID, load_model("tiny:gemma3:3"))
    local = base / "checkpoints" / "qwen3-shaped"
    lm = load_model("tiny:qwen3_4b:5")
    lm.model.save_pretrained(local)
    lm.tokenizer.save_pretrained(local)
    monkeypatch_module.setenv("HF_HOME", str(hf))
    monkeypatch_module.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch_module.delenv("HF_HUB_CACHE", raising=False)
    root = make_repo(base / "repo", [HUB_ID, str(local)])
    dvc(root, "repro")
    return root, [HUB_ID, str(local)]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


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
