"""Gaussian weight noise on heads: right slices, right size, reproducible, undone exactly."""

import pytest
import torch

from scalelens.interventions import ablate_heads, gaussian_head_noise

# Where head h's query rows / output columns live, written out by hand per layout (not taken from
# the geometry under test): head_dim, (q module path, q axis, q start(h, d)), (o module path,
# o axis). Paths are relative to the decoder layers, found by the prefix beside them.
LAYOUT = {
    "llama": (8, "self_attn.q_proj", 0, lambda h, d: h * d, "self_attn.o_proj", 1),
    "phi3": (8, "self_attn.qkv_proj", 0, lambda h, d: h * d, "self_attn.o_proj", 1),
    "gpt_neox": (8, "attention.query_key_value", 0, lambda h, d: 3 * h * d, "attention.dense", 1),
    "gpt2": (8, "attn.c_attn", 1, lambda h, d: h * d, "attn.c_proj", 0),
    # shaped like the real checkpoints: head_dim != hidden / heads, GQA 4:1, multimodal wrapper
    "qwen3_4b": (16, "self_attn.q_proj", 0, lambda h, d: h * d, "self_attn.o_proj", 1),
    "phi3_medium": (4, "self_attn.qkv_proj", 0, lambda h, d: h * d, "self_attn.o_proj", 1),
    "gemma3": (16, "self_attn.q_proj", 0, lambda h, d: h * d, "self_attn.o_proj", 1),
}
LAYERS_PREFIX = {"gemma3": "language_model.layers"}  # not the vision tower's layers
ARCHS = list(LAYOUT)


def _weights(lm):
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}


def _logits(lm, ids):
    with torch.no_grad():
        return lm.model(ids).logits


def _ids(seed=0):
    return torch.randint(3, 250, (2, 7), generator=torch.Generator().manual_seed(seed))


def _expected_mask(lm, arch, targets):
    """Boolean masks, per weight name, of the elements the noise may touch."""
    d, q_path, q_axis, q_start, o_path, o_axis = LAYOUT[arch]
    layers = LAYERS_PREFIX.get(arch, "")
    sd = lm.model.state_dict()
    masks = {k: torch.zeros_like(v, dtype=torch.bool) for k, v in sd.items()}
    for layer, head in targets:
        q_name = next(k for k in sd if k.endswith(f".{layer}.{q_path}.weight") and layers in k)
        masks[q_name].narrow(q_axis, q_start(head, d), d).fill_(True)
        o_name = next(k for k in sd if k.endswith(f".{layer}.{o_path}.weight") and layers in k)
        masks[o_name].narrow(o_axis, head * d, d).fill_(True)
    return masks


@pytest.mark.parametrize("arch", ARCHS)
def test_noise_touches_exactly_the_heads_slices_and_restores_bit_identical(tiny_lm, arch):
    lm = tiny_lm(arch)
    g = lm.geometry
    targets = [(0, 0), (1, 2)]
    flat = [layer * g.n_heads + head for layer, head in targets]
    before, ids = _weights(lm), _ids()
    logits_before = _logits(lm, ids)
    masks = _expected_mask(lm, arch, targets)
    with gaussian_head_noise(lm, flat, sigma_rel=0.5, seed=3):
        during = _weights(lm)
        logits_during = _logits(lm, ids)
    for name, w in before.items():
        changed = during[name] != w
        assert torch.equal(changed, masks[name]), f"{arch}: unexpected change pattern in {name}"
    assert not torch.equal(logits_during, logits_before)
    after = _weights(lm)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert torch.equal(_logits(lm, ids), logits_before)


@pytest.mark.parametrize("arch", ARCHS)
def test_ablation_leaves_weights_and_logits_bit_identical(tiny_lm, arch):
    lm = tiny_lm(arch)
    before, ids = _weights(lm), _ids(1)
    logits_before = _logits(lm, ids)
    with ablate_heads(lm, [0, lm.geometry.n_heads + 1]):
        assert not torch.equal(_logits(lm, ids), logits_before)
    after = _weights(lm)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert torch.equal(_logits(lm, ids), logits_before)


@pytest.mark.parametrize("arch", ["llama", "gpt_neox"])
def test_noise_std_is_sigma_times_the_weight_std(tiny_lm, arch):
    """Every head targeted: per weight tensor, std(noise) / (sigma * std(W)) ~ 1 (n >= 1024)."""
    lm = tiny_lm(arch)
    g = lm.geometry
    sigma = 0.3
    before = _weights(lm)
    with gaussian_head_noise(lm, range(g.n_heads_total), sigma_rel=sigma, seed=0) as targets:
        during = _weights(lm)
    _, q_path, _, _, o_path, _ = LAYOUT[arch]
    checked = 0
    for name, w in before.items():
        if not (name.endswith(q_path + ".weight") or name.endswith(o_path + ".weight")):
            continue
        diff = (during[name] - w).double()
        touched = diff[diff != 0]
        assert touched.numel() >= 1024
        ratio = float(touched.std() / (sigma * w.double().std()))
        assert 0.9 < ratio < 1.1, (name, ratio)
        assert abs(float(touched.mean())) < 4 * float(touched.std()) / touched.numel() ** 0.5
        checked += 1
    assert checked == 2 * g.n_layers
    assert len(targets) == 2 * g.n_heads_total


def test_noise_is_reproducible_per_seed_and_per_head(tiny_lm):
    lm = tiny_lm("phi3")
    g = lm.geometry
    q0 = g.q_weight_view(0)[0]

    def noisy(flat, seed):
        with gaussian_head_noise(lm, flat, sigma_rel=0.2, seed=seed):
            return q0.detach().clone()

    a, b, c = noisy([0], 7), noisy([0], 7), noisy([0], 8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # head 0's noise does not depend on which other heads are targeted
    both = noisy([0, 1], 7)
    d = LAYOUT["phi3"][0]
    assert torch.equal(both[:d], a[:d])


def test_zero_sigma_changes_nothing_and_bad_arguments_raise(tiny_lm):
    lm = tiny_lm("llama")
    before = _weights(lm)
    with gaussian_head_noise(lm, [1], sigma_rel=0.0, seed=0):
        assert all(torch.equal(v, before[k]) for k, v in _weights(lm).items())
    with pytest.raises(ValueError, match="sigma_rel"):
        with gaussian_head_noise(lm, [1], sigma_rel=-0.1, seed=0):
            pass
    with pytest.raises(ValueError, match="outside"):
        with gaussian_head_noise(lm, [lm.geometry.n_heads_total], sigma_rel=0.1, seed=0):
            pass


def test_weights_restored_when_the_block_raises(tiny_lm):
    lm = tiny_lm("gpt2")
    before = _weights(lm)
    with pytest.raises(RuntimeError):
        with gaussian_head_noise(lm, [0, 5], sigma_rel=1.0, seed=0):
            raise RuntimeError("boom")
    assert all(torch.equal(v, before[k]) for k, v in _weights(lm).items())
