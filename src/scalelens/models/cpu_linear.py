"""Float32 linear layers on CPU through oneDNN instead of MKL's sgemm, for passes without autograd.

The stages run short prompts and small batches (a decode step of 64 rows, a prompt of 6 to 30
tokens), where MKL's sgemm repacks each weight matrix at every call. oneDNN's matmul on the same
dense weight (no copy, no new layout) is 1.3 to 2.8 times faster there; measured on the
development machine (2 cores), one 8960 x 1536 projection: 18.5 -> 7.5 ms for 6 rows, 35 -> 19 ms
for 50; a Qwen2.5-Coder-1.5B forward pass: 1.75 -> 1.04 s for 6 tokens, 12.3 -> 9.7 s for
50 x 7 tokens. The two kernels sum in different orders, so results differ in the last float32
digits (logits by about 1e-4 absolute on that model); each is deterministic for a given machine
and thread count, and every MLflow run records which one ran (tag `cpu_linear`).

Where autograd is on (attribution's frozen replay), and off CPU or float32, `F.linear` runs as
always. The layers stay `nn.Linear` (same weights, hooks and state dict; an in-place change of a
weight, as the perturbation study makes, is seen at the next call). `SCALELENS_CPU_LINEAR=mkl`
keeps MKL.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

ENV = "SCALELENS_CPU_LINEAR"
ONEDNN, MKL = "onednn", "mkl"


def _onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class OneDNNLinear(nn.Linear):
    """nn.Linear whose forward uses oneDNN for float32 on CPU without autograd."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dtype == torch.float32 and x.device.type == "cpu" and not torch.is_grad_enabled()
                and self.weight.dtype == torch.float32):
            return _onednn_linear(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


def requested_kernel() -> str:
    """The kernel the environment asks for (`SCALELENS_CPU_LINEAR`, default oneDNN)."""
    value = os.environ.get(ENV, ONEDNN).strip().lower() or ONEDNN
    if value not in (ONEDNN, MKL):
        from scalelens.errors import ScalelensError

        raise ScalelensError(f"{ENV}={value!r}: use {ONEDNN!r} (the default) or {MKL!r}")
    return value


def onednn_works() -> bool:
    """Whether this torch build runs oneDNN's linear and agrees with F.linear on a small case."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(3, 8, generator=g), torch.randn(5, 8, generator=g),
                   torch.randn(5, generator=g))
        with torch.no_grad():
            return bool(torch.allclose(_onednn_linear(x, w, b), F.linear(x, w, b), atol=1e-5))
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


_APPLIED: str | None = None


def use_onednn_linear(model: nn.Module) -> str:
    """Switch every plain nn.Linear of a CPU float32 model to `OneDNNLinear` (in place) unless
    `SCALELENS_CPU_LINEAR=mkl` or this build lacks oneDNN. Returns the kernel that will run."""
    global _APPLIED
    if requested_kernel() == MKL or not onednn_works():
        _APPLIED = MKL
        return MKL
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = OneDNNLinear
    _APPLIED = ONEDNN
    return ONEDNN


def kernel_applied() -> str:
    """The kernel the last CPU float32 model loaded in this process runs ("not used": none)."""
    return _APPLIED or "not used"
