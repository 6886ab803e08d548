"""Where each supported family keeps the modules the frozen model hooks.

An MLP unit is one feature of the down projection's input (the MLP's hidden activation). Per
family the MLP computes that input as

- gated (Llama, Qwen 2/3, Gemma 2/3): ``m = act(gate_proj(x)) * up_proj(x)``;
- fused gated (Phi-3): ``gate, up = gate_up_proj(x).chunk(2)``, ``m = up * act(gate)``;
- plain (GPT-2, GPT-NeoX, Phi-1.5/2): ``m = act(pre)`` with ``pre = fc(x)``.

In the frozen model a unit is ``m = gain * linear_input``: gated units take ``gain = act(gate)``
and ``linear_input = up``; plain units take ``gain = act(pre) / pre`` and ``linear_input = pre``.

Normalisations are found by class (see ``norm_kind``); the decoder blocks by
``scalelens.models.geometry.decoder_layers``. Anything else raises ``UnsupportedModelError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from scalelens.errors import ScalelensError
from scalelens.models.geometry import decoder_layers

GATED = "gated"
FUSED_GATED = "fused_gated"
PLAIN = "plain"


class UnsupportedModelError(ScalelensError):
    """The model's architecture (or one of its modules) is not one attribution supports."""


@dataclass(frozen=True)
class MlpLayout:
    """Attribute names inside a decoder block's MLP; ``up_attr`` only for the gated kind."""

    kind: str  # GATED | FUSED_GATED | PLAIN
    down_attr: str  # module whose input holds the units
    gate_attr: str  # gated: gate projection; fused: gate_up projection; plain: pre projection
    act_attr: str  # the activation module
    up_attr: str = ""
    mlp_attr: str = "mlp"


_LLAMA_MLP = MlpLayout(GATED, "down_proj", "gate_proj", "act_fn", up_attr="up_proj")

MLP_LAYOUTS: dict[str, MlpLayout] = {
    "llama": _LLAMA_MLP,
    "qwen2": _LLAMA_MLP,
    "qwen3": _LLAMA_MLP,
    "gemma2": _LLAMA_MLP,
    "gemma3_text": _LLAMA_MLP,
    "gemma3": _LLAMA_MLP,  # Gemma 3 4B+: the multimodal wrapper around a gemma3_text model
    "phi3": MlpLayout(FUSED_GATED, "down_proj", "gate_up_proj", "activation_fn"),
    "phi": MlpLayout(PLAIN, "fc2", "fc1", "activation_fn"),
    "gpt_neox": MlpLayout(PLAIN, "dense_4h_to_h", "dense_h_to_4h", "act"),
    "gpt2": MlpLayout(PLAIN, "c_proj", "c_fc", "act"),
}
SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(sorted(MLP_LAYOUTS))

# Normalisation kinds (see scalelens.attribution.norms for the formulas).
RMS = "rms"  # weight * (x * s), computed in float32 (Llama, Qwen, Phi-3)
GEMMA_RMS = "gemma_rms"  # (x * s) * (1 + weight), computed in float32 (Gemma 2/3)
LAYER_NORM = "layernorm"  # (x - mean(x)) * s * weight + bias, in the input dtype


def norm_kind(module: nn.Module) -> str | None:
    """The normalisation kind of a module, None when it is no normalisation."""
    if isinstance(module, nn.LayerNorm):
        return LAYER_NORM
    name = type(module).__name__
    if name.endswith("RMSNorm"):
        return GEMMA_RMS if name.startswith("Gemma") else RMS
    if "norm" in name.lower() and not isinstance(module, nn.ModuleList):
        raise UnsupportedModelError(
            f"normalisation module {name} has no frozen counterpart; attribution knows "
            f"LayerNorm and the Llama / Gemma RMSNorm families"
        )
    return None


@dataclass(frozen=True)
class ModelParts:
    """The modules of one loaded model that attribution hooks, in layer order."""

    model_type: str
    layout: MlpLayout
    embedding: nn.Module
    unembedding: nn.Module
    mlps: tuple[nn.Module, ...]
    norms: tuple[tuple[nn.Module, str], ...]  # (module, kind), every normalisation in the model
    final_logit_softcap: float | None

    @property
    def n_layers(self) -> int:
        return len(self.mlps)

    @property
    def n_units(self) -> int:
        """Units per layer and position: the down projection's input width."""
        down = getattr(self.mlps[0], self.layout.down_attr)
        weight = down.weight
        # nn.Linear stores [out, in]; GPT-2's Conv1D stores [in, out]
        return int(weight.shape[0] if type(down).__name__ == "Conv1D" else weight.shape[1])

    def down(self, layer: int) -> nn.Module:
        return getattr(self.mlps[layer], self.layout.down_attr)

    def gate(self, layer: int) -> nn.Module:
        return getattr(self.mlps[layer], self.layout.gate_attr)

    def up(self, layer: int) -> nn.Module:
        return getattr(self.mlps[layer], self.layout.up_attr)

    def act(self, layer: int) -> nn.Module:
        return getattr(self.mlps[layer], self.layout.act_attr)


def model_parts(model: nn.Module) -> ModelParts:
    """Find the hooked modules; a clear error for an architecture attribution does not support."""
    mtype = getattr(model.config, "model_type", type(model).__name__)
    layout = MLP_LAYOUTS.get(mtype)
    if layout is None:
        raise UnsupportedModelError(
            f"attribution does not support architecture {mtype!r}; supported: "
            + ", ".join(SUPPORTED_ARCHITECTURES)
        )
    blocks = decoder_layers(model)
    mlps = []
    for i, block in enumerate(blocks):
        mlp = getattr(block, layout.mlp_attr, None)
        missing = [a for a in (layout.down_attr, layout.gate_attr, layout.act_attr, layout.up_attr)
                   if a and not hasattr(mlp, a)]
        if mlp is None or missing:
            raise UnsupportedModelError(
                f"{mtype} block {i}: no MLP with {missing or layout.mlp_attr}; this transformers "
                f"version lays the {mtype} MLP out differently"
            )
        mlps.append(mlp)
    # a multimodal wrapper: only the language model runs on text (the vision tower never does)
    text_model = getattr(getattr(model, "model", None), "language_model", None) or model
    norms = []
    for module in text_model.modules():
        kind = norm_kind(module)
        if kind is not None:
            norms.append((module, kind))
    embedding = model.get_input_embeddings()
    unembedding = model.get_output_embeddings()
    if embedding is None or unembedding is None:
        raise UnsupportedModelError(f"{mtype}: no input or output embedding module found")
    text_config = getattr(model.config, "text_config", None) or model.config
    softcap = getattr(text_config, "final_logit_softcapping", None)
    return ModelParts(mtype, layout, embedding, unembedding, tuple(mlps), tuple(norms),
                      float(softcap) if softcap else None)
