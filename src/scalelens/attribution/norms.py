"""Frozen normalisations: the per-position scale is recorded once, then treated as a constant.

Every normalisation ``y = f(x)`` the attribution hooks is written as ``y = g(x) * s`` with a scale
``s`` (one number per position, a column of shape ``[..., 1]``) that depends on ``x`` non-linearly
and a part ``g`` that is linear (plus a constant bias). Freezing keeps ``s`` at its value on the
prompt, so the frozen norm is affine in ``x``:

- ``rms`` (Llama, Qwen 2/3, Phi-3): ``s = 1 / sqrt(mean(x^2) + eps)``,
  ``y = weight * (x * s)``; the product is formed in float32 and cast back to the input dtype, as
  the modules do.
- ``gemma_rms`` (Gemma 2/3, every sandwich norm and the final norm):
  ``s = 1 / sqrt(mean(x^2) + eps)``, ``y = (x * s) * (1 + weight)``, in float32 and cast back.
- ``layernorm`` (GPT-2, GPT-NeoX, Phi-1.5/2): ``s = 1 / sqrt(var(x) + eps)`` (biased variance),
  ``y = (x - mean(x)) * s * weight + bias``, in the input dtype. The mean stays live: it is linear.

The RMS kinds compute in ``promote(input dtype, float32)``: float32 for float32, float16 and
bfloat16 models (exactly the modules' upcast), float64 for float64 models -- there the modules
themselves round to float32 inside the norm, which would make the frozen map linear only to float32
precision, so the frozen norm stays in float64 (it then differs from the real module by float32
rounding, ~1e-7 relative, which the frozen-vs-real check reports).
"""

from __future__ import annotations

import torch
from torch import nn

from scalelens.attribution.architecture import GEMMA_RMS, LAYER_NORM, RMS, UnsupportedModelError


def _eps(module: nn.Module) -> float:
    for name in ("variance_epsilon", "eps"):
        value = getattr(module, name, None)
        if value is not None:
            return float(value)
    raise UnsupportedModelError(f"{type(module).__name__} has no eps / variance_epsilon")


def compute_dtype(kind: str, x: torch.Tensor) -> torch.dtype:
    """The dtype the frozen norm computes in (see the module docstring)."""
    if kind == LAYER_NORM:
        return x.dtype
    return torch.promote_types(x.dtype, torch.float32)


def norm_scale(kind: str, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The scale s of the normalisation at input x (detached), shape [..., 1]."""
    h = x.detach().to(compute_dtype(kind, x))
    if kind == LAYER_NORM:
        h = h - h.mean(-1, keepdim=True)
    elif kind not in (RMS, GEMMA_RMS):
        raise UnsupportedModelError(f"unknown normalisation kind {kind!r}")
    return torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + _eps(module))


def frozen_norm(kind: str, module: nn.Module, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The normalisation of x with the scale held at `scale`: affine in x."""
    cd = compute_dtype(kind, x)
    if kind == RMS:
        return module.weight * (x.to(cd) * scale).to(x.dtype)
    if kind == GEMMA_RMS:
        return ((x.to(cd) * scale) * (1.0 + module.weight.to(cd))).type_as(x)
    if kind == LAYER_NORM:
        y = (x - x.mean(-1, keepdim=True)) * scale
        if module.weight is not None:
            y = y * module.weight
        if module.bias is not None:
            y = y + module.bias
        return y
    raise UnsupportedModelError(f"unknown normalisation kind {kind!r}")


def match_tolerance(kind: str, x: torch.Tensor) -> float:
    """Largest |frozen - real| / max|real| accepted when the frozen norm is checked on the prompt.

    256 units in the last place of the coarser of the module's own compute dtype and the input
    dtype (float32: 3.1e-5; float64 LayerNorm: 5.7e-14), capped at 0.05 for half precisions.
    """
    coarsest = x.dtype if kind == LAYER_NORM else torch.promote_types(x.dtype, torch.float32)
    if kind != LAYER_NORM and x.dtype == torch.float64:
        coarsest = torch.float32  # the module itself computes in float32
    return min(256 * torch.finfo(coarsest).eps, 0.05)
