"""Zero-ablation of heads: it removes exactly the heads asked for, and leaves no trace after."""

import torch

from scalelens.interventions import ablate_heads


def _logits(lm, ids):
    with torch.no_grad():
        return lm.model(ids).logits


def test_ablation_zeroes_only_the_given_heads_and_restores_exactly(tiny_lm):
    lm = tiny_lm("qwen3")
    g = lm.geometry
    ids = torch.randint(3, 250, (2, 6), generator=torch.Generator().manual_seed(0))
    before = _logits(lm, ids)
    seen = {}
    # a forward hook sees the projection's input after every pre-hook (the ablation) has run
    hook = g.o_module(1).register_forward_hook(
        lambda m, a, out: seen.__setitem__("x", a[0].clone()))
    flat = [1 * g.n_heads + 2]  # layer 1, head 2
    try:
        with ablate_heads(lm, flat):
            during = _logits(lm, ids)
    finally:
        hook.remove()
    x = seen["x"]
    assert torch.all(x[..., g.head_slice(2)] == 0)
    for h in (0, 1, 3):
        assert torch.any(x[..., g.head_slice(h)] != 0)
    assert not torch.equal(during, before)
    after = _logits(lm, ids)
    assert torch.equal(after, before)  # bit-identical
    assert not g.o_module(1)._forward_pre_hooks


def test_ablating_every_head_of_a_layer_removes_its_attention(tiny_lm):
    """With all heads of layer 0 ablated, its output projection sees zeros (bias only)."""
    lm = tiny_lm("gpt2")
    g = lm.geometry
    ids = torch.randint(3, 250, (1, 5), generator=torch.Generator().manual_seed(1))
    seen = {}
    hook = g.o_module(0).register_forward_hook(lambda m, a, out: seen.__setitem__("y", out))
    try:
        with ablate_heads(lm, range(g.n_heads)):
            _logits(lm, ids)
    finally:
        hook.remove()
    bias = g.o_module(0).bias
    torch.testing.assert_close(seen["y"], bias.expand_as(seen["y"]))
