"""The cluster user's path: every registry architecture loads by hub id from a pre-filled hub
cache with HF_HUB_OFFLINE=1, in the layout `hf download` produces.

The models are tiny random ones shaped like the real checkpoints (head_dim != hidden / heads,
the real GQA ratios, Gemma 3 4B's multimodal wrapper). The loads run in a fresh interpreter,
since huggingface_hub reads HF_HOME once, at import.
"""

import json
import os
import subprocess
import sys

import torch
from hub_cache import save_as_hub_download

from scalelens.models import get_spec, load_model

# registry key -> tiny model with its architecture (and the real checkpoint's shape where known)
CASES = {
    "pythia-70m": "gpt_neox",
    "phi-1.5": "phi",
    "phi-3-medium": "phi3_medium",
    "gemma2-2b": "gemma2",
    "gemma3-1b": "gemma3_text_1b",
    "gemma3-4b": "gemma3",
    "qwen3-4b": "qwen3_4b",
}
# architectures whose only registry models are packaged GGUFs: loaded by their hub id instead
HUB_IDS = {"HuggingFaceTB/SmolLM2-135M-Instruct": "llama",
           "Qwen/Qwen2.5-Coder-0.5B-Instruct": "qwen2"}
IDS = [[1, 40, 72, 101, 108, 108, 111, 33]]


def test_every_registry_architecture_loads_offline_by_hub_id(tmp_path):
    hf = tmp_path / "hf"
    expected = {}
    for key, arch in {**CASES, **HUB_IDS}.items():
        lm = load_model(f"tiny:{arch}:7")
        hub_id = get_spec(key).hub_id if key in CASES else key
        snap = save_as_hub_download(hf, hub_id, lm)
        assert (snap / "config.json").is_symlink()
        with torch.no_grad():
            expected[key] = lm.model(torch.tensor(IDS)).logits[0].tolist()
    archs = {get_spec(k).architecture for k in CASES} | set(HUB_IDS.values())
    assert {"gpt_neox", "phi", "phi3", "gemma2", "gemma3_text", "gemma3", "qwen3", "llama",
            "qwen2"} <= archs  # every architecture the registry lists
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    code = f"""
import json, torch
from scalelens.models import load_model
expected = json.load(open({str(tmp_path / 'expected.json')!r}))
out = {{}}
for key, logits in expected.items():
    lm = load_model(key)
    with torch.no_grad():
        got = lm.model(torch.tensor({IDS!r})).logits[0]
    g = lm.geometry
    out[key] = {{"source": lm.source, "max_diff": float((got - torch.tensor(logits)).abs().max()),
                "type": type(lm.model).__name__,
                "geometry": [g.n_layers, g.n_heads, g.n_kv_heads, g.head_dim]}}
print(json.dumps(out))
"""
    env = {**os.environ, "HF_HOME": str(hf), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(got) == set(expected)
    for key, r in got.items():
        assert r["source"] == "hub" and r["max_diff"] < 1e-5, (key, r)
    assert got["gemma3-4b"]["type"] == "Gemma3ForConditionalGeneration"
    assert got["gemma3-4b"]["geometry"] == [3, 8, 4, 16]  # head_dim 16 != 40 / 8
    assert got["qwen3-4b"]["geometry"] == [3, 8, 2, 16]  # GQA 4:1, head_dim 16 != 40 / 8
    assert got["phi-3-medium"]["geometry"][1:3] == [8, 2]


def test_a_model_missing_from_the_offline_cache_is_one_line_naming_it(tmp_path):
    code = ("from scalelens.models import load_model\n"
            "from scalelens.errors import ScalelensError\n"
            "try:\n    load_model('gemma3-4b')\n"
            "except ScalelensError as e:\n    print('ERR', e)\n")
    env = {**os.environ, "HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("ERR model 'google/gemma-3-4b-pt' is not in the local Hugging Face "
                           "cache"), out.stdout + out.stderr[-2000:]
    assert "hf download google/gemma-3-4b-pt" in line and "HF_HUB_OFFLINE=1" in line
