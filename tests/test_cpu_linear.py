"""CPU float32 linear layers through oneDNN: same numbers as F.linear to float rounding, F.linear
wherever autograd is on, and MKL on request."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scalelens.errors import ScalelensError
from scalelens.models import cpu_linear
from scalelens.models.loading import load_model
from scalelens.models.registry import REGISTRY

ARCHS = sorted({s.architecture for s in REGISTRY.values()} | {"qwen3_4b", "gemma3_text_1b"})


def _layer(seed=0):
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(6, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(4, 6, generator=g))
        layer.bias.copy_(torch.randn(4, generator=g))
    layer.__class__ = cpu_linear.OneDNNLinear
    return layer


def test_a_hand_computed_product_comes_out_exact():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]]))
        layer.bias.copy_(torch.tensor([10.0, -2.0]))
    layer.__class__ = cpu_linear.OneDNNLinear
    x = torch.tensor([[[1.0, 1.0, 1.0], [2.0, 0.0, -1.0]]])  # [batch, tokens, in]
    with torch.inference_mode():
        out = layer(x)
    # row 1: 1+2+3+10 = 16, -1+0.5+4-2 = 1.5; row 2: 2-3+10 = 9, -2-4-2 = -8
    assert out.tolist() == [[[16.0, 1.5], [9.0, -8.0]]]


def test_with_autograd_on_it_is_f_linear_bit_for_bit_and_differentiable():
    layer = _layer()
    x = torch.randn(5, 6, requires_grad=True)
    out = layer(x)
    assert torch.equal(out, F.linear(x, layer.weight, layer.bias))
    out.sum().backward()
    assert torch.allclose(x.grad, layer.weight.sum(0).expand(5, 6))


def test_an_in_place_weight_change_is_seen_and_a_deep_copy_keeps_the_kernel():
    layer = _layer()
    x = torch.randn(7, 6)
    with torch.no_grad():
        layer.weight.add_(0.5)  # as the perturbation study adds noise in place
        out = layer(x)
        twin = copy.deepcopy(layer)
        twin_out = twin(x)
    expected = x @ layer.weight.detach().T + layer.bias.detach()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert type(twin) is cpu_linear.OneDNNLinear and torch.equal(twin_out, out)


@pytest.mark.parametrize("arch", ARCHS)
def test_loaded_models_give_the_logits_of_mkl_to_float_rounding(arch, monkeypatch):
    fast = load_model(f"tiny:{arch}")
    monkeypatch.setenv(cpu_linear.ENV, "mkl")
    plain = load_model(f"tiny:{arch}")
    # every plain nn.Linear is switched (subclasses, which may have their own forward, are not)
    kinds = [type(m) for m in fast.model.modules()]
    assert cpu_linear.OneDNNLinear in kinds and nn.Linear not in kinds
    assert [k is cpu_linear.OneDNNLinear for k in kinds] == [
        type(m) is nn.Linear for m in plain.model.modules()]
    assert cpu_linear.kernel_applied() == "mkl"
    ids = torch.randint(3, 200, (3, 11), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a = fast.model(input_ids=ids, use_cache=False).logits
        b = plain.model(input_ids=ids, use_cache=False).logits
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_an_unknown_kernel_name_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv(cpu_linear.ENV, "fast")
    with pytest.raises(ScalelensError, match="SCALELENS_CPU_LINEAR='fast'"):
        cpu_linear.requested_kernel()
