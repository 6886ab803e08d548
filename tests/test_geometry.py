"""Head geometry per architecture, checked against a manual recomputation on tiny random models."""

import pytest
import torch

from scalelens.models.geometry import UnsupportedArchitectureError, head_geometry
from scalelens.models.tiny import TINY_CONFIGS, tiny_model

ARCHS = sorted(TINY_CONFIGS)


def _capture_o_io(model, geometry, layer, input_ids):
    """Input and output of layer `layer`'s output projection for one forward pass."""
    seen = {}

    def hook(module, args, output):
        seen["x"] = args[0].detach().clone()
        seen["y"] = output.detach().clone()

    h = geometry.o_module(layer).register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(input_ids)
    finally:
        h.remove()
    return seen["x"], seen["y"]


def _project_head(geometry, layer, x, head):
    """Head `head`'s contribution: its input slice through its columns of the output weights."""
    w, in_axis = geometry.o_weight_view(layer)
    sl = geometry.head_slice(head)
    w_head = w[:, sl] if in_axis == 1 else w[sl, :].T  # as [out, head_dim]
    return x[..., sl] @ w_head.T


@pytest.mark.parametrize("arch", ARCHS)
def test_heads_sum_to_attention_output(arch):
    model = tiny_model(arch, seed=1)
    g = head_geometry(model)
    ids = torch.randint(3, 250, (2, 7), generator=torch.Generator().manual_seed(0))
    for layer in range(g.n_layers):
        x, y = _capture_o_io(model, g, layer, ids)
        total = sum(_project_head(g, layer, x, h) for h in range(g.n_heads))
        bias = g.o_module(layer).bias
        if bias is not None:
            total = total + bias
        torch.testing.assert_close(total, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_query_rows_belong_to_their_head(arch):
    """Perturbing head h's query rows changes head h's output slice and no other head's."""
    model = tiny_model(arch, seed=2)
    g = head_geometry(model)
    ids = torch.randint(3, 250, (1, 9), generator=torch.Generator().manual_seed(1))
    layer, head = g.n_layers - 1, 1
    x0, _ = _capture_o_io(model, g, layer, ids)
    w, out_axis = g.q_weight_view(layer)
    rows = g.q_rows(head)
    with torch.no_grad():
        if out_axis == 0:
            w[rows, :] += 0.5 * torch.randn_like(w[rows, :])
        else:
            w[:, rows] += 0.5 * torch.randn_like(w[:, rows])
    x1, _ = _capture_o_io(model, g, layer, ids)
    for h in range(g.n_heads):
        sl = g.head_slice(h)
        changed = not torch.allclose(x0[..., sl], x1[..., sl], atol=1e-6)
        # position 0 attends only to itself, so its output cannot depend on the query
        changed_later = not torch.allclose(x0[:, 1:, sl], x1[:, 1:, sl], atol=1e-6)
        if h == head:
            assert changed_later, f"{arch}: head {h}'s output did not react to its query rows"
        else:
            assert not changed, f"{arch}: head {h} changed when head {head}'s queries did"


def test_geometry_counts_match_config():
    model = tiny_model("gemma3_text")
    g = head_geometry(model)
    assert (g.n_layers, g.n_heads, g.n_kv_heads, g.head_dim) == (3, 4, 1, 8)
    assert g.n_heads_total == 12
    assert g.split_flat(5) == (1, 1)
    with pytest.raises(ValueError, match="outside"):
        g.split_flat(12)


def test_gpt_neox_query_rows_are_interleaved_per_head():
    g = head_geometry(tiny_model("gpt_neox"))
    d = g.head_dim
    assert g.q_rows(2) == slice(6 * d, 7 * d)


def test_unknown_architecture_is_a_clear_error():
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model("bloom", vocab_size=50, hidden_size=16, n_layer=1, n_head=2)
    model = AutoModelForCausalLM.from_config(cfg)
    with pytest.raises(UnsupportedArchitectureError, match="no head geometry for .*'bloom'"):
        head_geometry(model)
