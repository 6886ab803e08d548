"""Fault injection: mistakes and damage on purpose. Nothing wrong is used silently, nothing good
is destroyed, and every mistake a user can fix is one line on stderr with a non-zero exit.

Cases: a de-quantised cache with two flipped bytes, a truncated safetensors and a truncated
config.json; a GGUF damaged with its size and mtime kept; a good run followed by a bad one
(extract.max_new_tokens: 0); user mistakes through a real stage process; a truncated PhiID
checkpoint; the interpreter dvc runs.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from tests_paths import ROOT, repo_params

from scalelens.models import load_model
from scalelens.models import loading as L
from scalelens.models.packaged import PackagedModelError, gguf_path
from scalelens.models.registry import REGISTRY, ModelSpec, PackagedGGUF
from scalelens.paths import model_paths

# -- the de-quantised cache --------------------------------------------------------------------


@pytest.fixture()
def fake_packaged(tmp_path, monkeypatch):
    """A registry entry whose 'GGUF' de-quantises to a tiny llama (counts the builds)."""
    monkeypatch.setenv("SCALELENS_CACHE", str(tmp_path / "cache"))
    sha = "cd" * 32
    spec = ModelSpec("fake-packaged", "none/fake", "fake", "llama", 1e6, 2, 4, 2, 8, 32,
                     gguf=PackagedGGUF(parts=(("none", "none"),), sha256=sha,
                                       file_name="fake.gguf"))
    monkeypatch.setitem(REGISTRY, spec.key, spec)
    builds = []
    source = load_model("tiny:llama:11")

    def build(spec_, target):
        builds.append(target)
        tmp = target.with_name(target.name + ".tmp")
        source.model.save_pretrained(tmp)
        source.tokenizer.save_pretrained(tmp)
        (tmp / "COMPLETE").write_text("fake\n")
        L.write_manifest(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)

    monkeypatch.setattr(L, "_build_dequant_cache", build)
    return spec, builds, source, L.dequant_dir(sha)


def _logits(lm):
    with torch.no_grad():
        return lm.model(torch.tensor([[1, 40, 50, 60, 70]])).logits


@pytest.mark.parametrize("damage", ["flip two bytes", "truncate safetensors",
                                    "truncate config.json", "delete the manifest"])
def test_a_damaged_cache_is_rebuilt_never_used(fake_packaged, damage, caplog):
    spec, builds, source, cache = fake_packaged
    first = load_model(spec.key)
    assert len(builds) == 1 and torch.equal(_logits(first), _logits(source))
    weights = cache / "model.safetensors"
    if damage == "flip two bytes":
        data = bytearray(weights.read_bytes())
        for at in (len(data) // 3, 2 * len(data) // 3):
            data[at] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "truncate safetensors":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "truncate config.json":
        (cache / "config.json").write_text((cache / "config.json").read_text()[:40])
    else:
        (cache / L.MANIFEST).unlink()
    with caplog.at_level("WARNING", logger="scalelens.models.loading"):
        again = load_model(spec.key)
    assert len(builds) == 2, "the damaged cache must be rebuilt"
    assert any("rebuilding it from the GGUF" in r.getMessage() for r in caplog.records)
    assert torch.equal(_logits(again), _logits(source))
    assert L.verify_cache(cache) is None


def test_an_intact_cache_is_verified_and_not_rebuilt(fake_packaged):
    spec, builds, _, cache = fake_packaged
    load_model(spec.key)
    load_model(spec.key)
    assert len(builds) == 1
    manifest = json.loads((cache / L.MANIFEST).read_text())
    assert manifest["model.safetensors"]["sha256"] == hashlib.sha256(
        (cache / "model.safetensors").read_bytes()).hexdigest()


def test_a_verified_cache_is_not_hashed_again_until_a_file_changes(fake_packaged, monkeypatch):
    spec, builds, source, cache = fake_packaged
    load_model(spec.key)  # builds, hashes, stamps
    stamp = json.loads((cache / L.VERIFIED).read_text())
    assert set(stamp) == set(json.loads((cache / L.MANIFEST).read_text()))
    hashed = []
    real = L._file_sha256
    monkeypatch.setattr(L, "_file_sha256", lambda p: hashed.append(p.name) or real(p))
    assert L.verify_cache(cache) is None and hashed == []  # the stamp matches: no hashing
    assert L.verify_cache(cache, full=True) is None and "model.safetensors" in hashed
    monkeypatch.setenv("SCALELENS_VERIFY", "full")
    hashed.clear()
    assert L.verify_cache(cache) is None and "model.safetensors" in hashed
    monkeypatch.delenv("SCALELENS_VERIFY")
    # damage that keeps size and mtime still changes ctime: the stamp no longer matches
    weights = cache / "model.safetensors"
    st = weights.stat()
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    hashed.clear()
    assert "does not match its sha256" in L.verify_cache(cache)
    assert "model.safetensors" in hashed and not (cache / L.VERIFIED).exists()
    load_model(spec.key)
    assert len(builds) == 2


# -- the GGUF ----------------------------------------------------------------------------------


def _parts_package(tmp_path, content: bytes, name="fault_parts") -> None:
    pkg = tmp_path / "site" / name
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    half = len(content) // 2
    (pkg / "data" / "a.bin").write_bytes(content[:half])
    (pkg / "data" / "b.bin").write_bytes(content[half:])


def test_a_gguf_damaged_with_size_and_mtime_kept_is_caught(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALELENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    content = b"GGUF" + bytes(range(256)) * 50
    _parts_package(tmp_path, content)
    spec = ModelSpec("f", "none/f", "f", "llama", 1e6, 1, 1, 1, 4, 4, gguf=PackagedGGUF(
        parts=(("fault_parts", "data/a.bin"), ("fault_parts", "data/b.bin")),
        sha256=hashlib.sha256(content).hexdigest(), file_name="f.gguf"))
    target = gguf_path(spec)
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[100] ^= 0x01
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    assert gguf_path(spec).read_bytes() == content  # re-assembled from the intact parts
    # a damaged part cannot be repaired: one line naming the file and the remedy
    part = tmp_path / "site" / "fault_parts" / "data" / "b.bin"
    part.write_bytes(b"x" + part.read_bytes()[1:])
    target.unlink()  # (an intact assembled file would still be used)
    with pytest.raises(PackagedModelError) as e:
        gguf_path(spec)
    assert "sha256" in str(e.value) and "reinstall the packages" in str(e.value)
    assert "\n" not in str(e.value)


# -- stages: one line, exit 2, earlier outputs kept ------------------------------------------


def _params(**changes):
    p = repo_params()
    p["models"] = ["tiny:llama"]
    p["extract"].update(max_new_tokens=4, min_new_tokens=4, batch_size=8)
    for key, value in changes.items():
        node = p
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return p


def _stage(work, stage, params, *args):
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    return subprocess.run([sys.executable, str(ROOT / "stages" / f"{stage}.py"), *args],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)


def _one_line(out, stage):
    assert out.returncode == 2, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{stage}: error: "), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


def test_a_bad_rerun_keeps_the_good_outputs_byte_for_byte(tmp_path):
    good = _stage(tmp_path, "extract", _params(), "--model", "tiny:llama")
    assert good.returncode == 0, good.stderr[-3000:]
    mp = model_paths("tiny:llama")
    before = {p: (tmp_path / p).read_bytes() for p in (mp.activations_npz, mp.activations_json)}
    bad = _stage(tmp_path, "extract", _params(**{"extract.max_new_tokens": 0,
                                                 "extract.min_new_tokens": 0}),
                 "--model", "tiny:llama")
    assert _one_line(bad, "extract") == (
        "extract: error: extract.max_new_tokens: 0 must be >= 1")
    assert {p: (tmp_path / p).read_bytes() for p in before} == before
    assert not list((tmp_path / "results").rglob(".staging-*"))


@pytest.mark.parametrize("stage, changes, args, message", [
    ("extract", {"extract.batch_size": 0}, ["--model", "tiny:llama"],
     "extract.batch_size: 0 must be >= 1"),
    ("extract", {"device": "gpu"}, ["--model", "tiny:llama"],
     "device: 'gpu' is not a device: auto, cpu, cuda, cuda:<index> or mps"),
    ("extract", {"models": ["tiny:llama:x"]}, ["--model", "tiny:llama:x"],
     "models[0]: 'tiny:llama:x' is not tiny:<arch>[:<seed>]"),
    ("compare_profiles", {"models": []}, [], "models: the list is empty"),
    ("phiid", {"phiid.estimator": "gauss"}, ["--model", "tiny:llama"],
     "phiid.estimator: 'gauss' is not one of gaussian, discrete"),
    ("phiid", {"phiid.tau": 0}, ["--model", "tiny:llama"], "phiid.tau: 0 must be >= 1"),
    ("si", {"si.n_boot": 0}, ["--model", "tiny:llama"], "si.n_boot: 0 must be >= 2"),
    ("gain", {"gain.n_boot": -5}, ["--model", "tiny:llama"], "gain.n_boot: -5 must be >= 2"),
    ("motif_census", {"motifs.n_random": -1}, ["--model", "tiny-llama"],
     "motifs.n_random: -1 must be >= 2"),
])
def test_a_user_mistake_is_one_line_before_any_work(tmp_path, stage, changes, args, message):
    out = _stage(tmp_path, stage, _params(**changes), *args)
    line = _one_line(out, stage)
    assert message in line
    assert not (tmp_path / "results").exists()  # nothing ran, nothing written


def test_a_truncated_phiid_checkpoint_is_recomputed_or_named(tmp_path):
    from scalelens.phiid.shards import ShardMergeError, compute_shard, merge_shards

    rng = np.random.default_rng(0)
    series = rng.standard_normal((2, 6, 30))
    lengths = np.array([30, 30])
    ckpt = tmp_path / "ckpt"
    compute_shard(series, shard=(0, 1), checkpoint_dir=ckpt, lengths=lengths, chunk_pairs=5)
    reference = merge_shards(ckpt)
    chunk = sorted(ckpt.glob("*.npz"))[1]
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    with pytest.raises(ShardMergeError, match="is damaged .*rerun its --shard job"):
        merge_shards(ckpt)
    run = compute_shard(series, shard=(0, 1), checkpoint_dir=ckpt, lengths=lengths,
                        chunk_pairs=5)
    assert run.n_computed == 1  # only the damaged chunk
    np.testing.assert_array_equal(merge_shards(ckpt).sts, reference.sts)


def test_dvc_runs_the_projects_interpreter_whatever_is_on_path(tmp_path):
    """scripts/py: SCALELENS_PYTHON, else the repository's .venv, else python3 on PATH."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    code = ["-c", "import sys; print(sys.executable)"]
    chosen = subprocess.run(["sh", "scripts/py", *code], cwd=ROOT, env={
        **env, "SCALELENS_PYTHON": sys.executable}, capture_output=True, text=True)
    assert chosen.stdout.strip() == sys.executable
    venv = ROOT / ".venv" / "bin" / "python"
    if venv.exists():  # make test always creates it
        out = subprocess.run(["sh", str(ROOT / "scripts" / "py"), *code], cwd=tmp_path,
                             env=env, capture_output=True, text=True)
        assert out.stdout.strip() == str(venv), out.stderr
    text = (ROOT / "dvc.yaml").read_text()
    assert "cmd: python " not in text and text.count("cmd: sh scripts/py stages/") >= 15
