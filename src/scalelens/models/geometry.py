"""Per-architecture head geometry, in one place.

For query head h of a layer, which rows of the query projection produce its queries, which columns
of the attention output projection read its output, and which module's input holds the per-head
outputs (the concatenation of all heads, before the output projection). Everything that touches a
head (capture, ablation, weight noise) goes through here.

Layouts (transformers' own modelling code is the authority):
- Llama, Qwen 2/3, Gemma 2/3, Phi-1.5/2: separate q_proj; output projection o_proj (Phi: dense);
  head h owns rows / columns [h*d, (h+1)*d).
- Phi-3: fused qkv_proj = [Q (all heads) | K | V]; head h's query rows are [h*d, (h+1)*d).
- GPT-NeoX (Pythia): fused query_key_value is laid out per head, [q_h | k_h | v_h] for each head in
  turn (the module views the output as (n_heads, 3*d) and chunks the last axis), so head h's query
  rows are [3*h*d, 3*h*d + d) -- not the first n_heads*d rows.
- GPT-2: Conv1D modules store weight as [in, out]; c_attn's output columns [h*d, (h+1)*d) are head
  h's queries, and c_proj's input rows [h*d, (h+1)*d) read head h's output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from scalelens.errors import ScalelensError


class UnsupportedArchitectureError(ScalelensError):
    pass


@dataclass(frozen=True)
class ArchLayout:
    """Where a family keeps its attention modules and how its projections are laid out."""

    attn_attr: str  # attribute of a decoder layer holding the attention module
    q_attr: str  # attribute of the attention module producing queries
    o_attr: str  # attribute of the attention module projecting the heads' outputs
    # "separate" | "fused_qkv_blocks" (Phi-3) | "fused_per_head" (NeoX) | "conv1d_qkv"
    q_layout: str
    o_is_conv1d: bool = False


LAYOUTS: dict[str, ArchLayout] = {
    "llama": ArchLayout("self_attn", "q_proj", "o_proj", "separate"),
    "mistral": ArchLayout("self_attn", "q_proj", "o_proj", "separate"),
    "qwen2": ArchLayout("self_attn", "q_proj", "o_proj", "separate"),
    "qwen3": ArchLayout("self_attn", "q_proj", "o_proj", "separate"),
    "gemma": ArchLayout("self_attn", "q_proj", "o_proj", "separate"),
    "gemma2": ArchLayout("self_attn", "q_proj", "o_proj", "separate"),
    "gemma3": ArchLayout("self_attn", "q_proj", "o_proj", "separate"),
    "gemma3_text": ArchLayout("self_attn", "q_proj", "o_proj", "separate"),
    "phi": ArchLayout("self_attn", "q_proj", "dense", "separate"),
    "phi3": ArchLayout("self_attn", "qkv_proj", "o_proj", "fused_qkv_blocks"),
    "gpt_neox": ArchLayout("attention", "query_key_value", "dense", "fused_per_head"),
    "gpt2": ArchLayout("attn", "c_attn", "c_proj", "conv1d_qkv", o_is_conv1d=True),
}


def _text_config(config):
    """Multimodal wrappers (Gemma 3 4B+) keep the language model's numbers in text_config."""
    return getattr(config, "text_config", None) or config


def model_type_of(model: nn.Module) -> str:
    return model.config.model_type


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The ModuleList of decoder blocks, wherever the family nests it."""
    for path in ("model.layers", "model.language_model.layers", "language_model.model.layers",
                 "gpt_neox.layers", "transformer.h", "model.decoder.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return obj
    raise UnsupportedArchitectureError(
        f"cannot find the decoder layers of {type(model).__name__}; supported architectures: "
        + ", ".join(sorted(LAYOUTS))
    )


@dataclass
class HeadGeometry:
    """Head slices of one loaded model. Flat head index = layer * n_heads + head."""

    model_type: str
    layout: ArchLayout
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    attn_modules: list[nn.Module]
    blocks: list[nn.Module]  # the decoder blocks, in order

    @property
    def n_heads_total(self) -> int:
        return self.n_layers * self.n_heads

    def split_flat(self, flat: int) -> tuple[int, int]:
        if not 0 <= flat < self.n_heads_total:
            raise ValueError(f"flat head index {flat} outside 0..{self.n_heads_total - 1}")
        return divmod(int(flat), self.n_heads)

    def q_module(self, layer: int) -> nn.Module:
        return getattr(self.attn_modules[layer], self.layout.q_attr)

    def o_module(self, layer: int) -> nn.Module:
        """The module whose input is the concatenation of all heads' outputs."""
        return getattr(self.attn_modules[layer], self.layout.o_attr)

    def head_slice(self, head: int) -> slice:
        """Slice of head `head` in the per-head output vector (input of the output projection)."""
        return slice(head * self.head_dim, (head + 1) * self.head_dim)

    def q_rows(self, head: int) -> slice:
        """Output features of the query projection that are head `head`'s queries."""
        d = self.head_dim
        if self.layout.q_layout == "fused_per_head":
            return slice(3 * head * d, 3 * head * d + d)
        return slice(head * d, (head + 1) * d)

    def q_weight_view(self, layer: int) -> tuple[torch.Tensor, int]:
        """(weight tensor, axis of output features) of the query projection."""
        w = self.q_module(layer).weight
        return w, (1 if self.layout.q_layout == "conv1d_qkv" else 0)

    def o_weight_view(self, layer: int) -> tuple[torch.Tensor, int]:
        """(weight tensor, axis of input features) of the output projection."""
        w = self.o_module(layer).weight
        return w, (0 if self.layout.o_is_conv1d else 1)


def head_geometry(model: nn.Module) -> HeadGeometry:
    """Geometry of a loaded transformers causal LM; a clear error for an unknown architecture."""
    mtype = model_type_of(model)
    layout = LAYOUTS.get(mtype)
    if layout is None:
        raise UnsupportedArchitectureError(
            f"no head geometry for architecture {mtype!r}; supported: {', '.join(sorted(LAYOUTS))}"
        )
    cfg = _text_config(model.config)
    n_heads = cfg.num_attention_heads
    n_kv = getattr(cfg, "num_key_value_heads", None) or n_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads
    layers = decoder_layers(model)
    attn = [getattr(block, layout.attn_attr) for block in layers]
    return HeadGeometry(mtype, layout, len(layers), n_heads, n_kv, head_dim, attn, list(layers))
