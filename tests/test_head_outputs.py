"""What a captured head output means, recomputed from the model's own attention and values.

For every tiny model (each registry architecture and the ones shaped like real checkpoints:
head_dim != hidden / heads, GQA 4:1, the multimodal Gemma 3 wrapper), head h's slice of the
output projection's input (what capture, ablation and noise treat as head h) must equal
sum_k A_h[q, k] v_{g(h)}[k], with A_h the head's attention pattern (output_attentions), v the
value vectors read off the value projection by a hand-written layout, and g(h) = h // (heads /
kv heads) the key/value group. If a transformers release changed a layout, the head order or
the GQA grouping, this fails instead of every study silently measuring something else.
"""

import pytest
import torch

from scalelens.models import load_model
from scalelens.models.tiny import TINY_CONFIGS

# per family: module that yields values (relative to the attention module) and how to cut them
# out of its output [batch, seq, features] as [batch, kv_heads, seq, head_dim]
V_LAYOUT = {
    "separate": ("v_proj", lambda y, h, kv, d: y.view(*y.shape[:2], kv, d).transpose(1, 2)),
    # Phi-3: qkv_proj = [Q (h*d) | K (kv*d) | V (kv*d)]
    "phi3": ("qkv_proj", lambda y, h, kv, d: y[..., (h + kv) * d:].reshape(
        *y.shape[:2], kv, d).transpose(1, 2)),
    # GPT-NeoX: per head [q_h | k_h | v_h]
    "gpt_neox": ("query_key_value", lambda y, h, kv, d: y.view(*y.shape[:2], h, 3 * d)[
        ..., 2 * d:].transpose(1, 2)),
    # GPT-2: c_attn = [Q | K | V], each h*d wide
    "gpt2": ("c_attn", lambda y, h, kv, d: y[..., 2 * h * d:].reshape(
        *y.shape[:2], h, d).transpose(1, 2)),
}


def _layout(model_type: str):
    return V_LAYOUT.get(model_type, V_LAYOUT["separate"])


@pytest.mark.parametrize("arch", sorted(TINY_CONFIGS))
def test_captured_head_output_is_pattern_times_values(arch):
    lm = load_model(f"tiny:{arch}:4")
    g = lm.geometry
    v_attr, cut = _layout(g.model_type)
    ids = torch.randint(3, 250, (1, 9), generator=torch.Generator().manual_seed(5))
    seen: dict[tuple[str, int], torch.Tensor] = {}

    def keep(key):
        def hook(module, args, output):
            seen[key] = output.detach()
        return hook

    def keep_input(key):
        def hook(module, args):
            seen[key] = args[0].detach()
        return hook

    handles = []
    for layer in range(g.n_layers):
        attn = g.attn_modules[layer]
        handles.append(getattr(attn, v_attr).register_forward_hook(keep(("v", layer))))
        handles.append(g.o_module(layer).register_forward_pre_hook(keep_input(("o", layer))))
    try:
        with torch.no_grad():
            out = lm.model(ids, output_attentions=True, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    assert len(out.attentions) == g.n_layers
    group = g.n_heads // g.n_kv_heads
    for layer in range(g.n_layers):
        values = cut(seen[("v", layer)], g.n_heads, g.n_kv_heads, g.head_dim)
        pattern = out.attentions[layer][0]  # [heads, q, k]
        captured = seen[("o", layer)][0]  # [seq, heads * head_dim]
        for head in range(g.n_heads):
            expected = pattern[head] @ values[0, head // group]
            torch.testing.assert_close(captured[:, g.head_slice(head)], expected, rtol=1e-4,
                                       atol=1e-5, msg=f"{arch} layer {layer} head {head}")
