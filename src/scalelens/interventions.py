"""Interventions on heads, each undone exactly when its block exits.

- `ablate_heads`: zero the outputs of a set of heads (a forward pre-hook on the output projection
  that zeroes the heads' slices of its input). Weights are never touched.
- `gaussian_head_noise`: add Gaussian noise to the weights that belong to a set of query heads
  (their rows of the query projection, their columns of the output projection), noise std =
  sigma_rel x the std of the whole weight tensor; the originals are copied back bit for bit.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from scalelens.models.loading import LoadedModel


@contextlib.contextmanager
def ablate_heads(lm: LoadedModel, flat_heads):
    """Zero the outputs of the given heads (flat indices) inside the block; hooks removed after.

    The weights are never touched, so the model afterwards is bit-identical to before.
    """
    g = lm.geometry
    by_layer: dict[int, list[int]] = {}
    for flat in flat_heads:
        layer, head = g.split_flat(int(flat))
        by_layer.setdefault(layer, []).append(head)
    handles = []

    def make(heads):
        cols = torch.cat([torch.arange(g.head_slice(h).start, g.head_slice(h).stop)
                          for h in heads])

        def pre_hook(module, args):
            x = args[0].clone()
            x[..., cols.to(x.device)] = 0
            return (x, *args[1:])
        return pre_hook

    try:
        for layer, heads in by_layer.items():
            handles.append(g.o_module(layer).register_forward_pre_hook(make(sorted(heads))))
        yield
    finally:
        for h in handles:
            h.remove()


@dataclass(frozen=True)
class NoiseTarget:
    """One weight slice a head owns: `length` features from `start` along `axis` of `weight`."""

    layer: int
    head: int
    role: str  # "q" (query-projection rows) | "o" (output-projection columns)
    axis: int
    start: int
    length: int


def heads_by_layer(lm: LoadedModel, flat_heads: Iterable[int]) -> dict[int, list[int]]:
    """Flat head indices -> {layer: sorted unique heads}; out-of-range indices raise ValueError."""
    by_layer: dict[int, set[int]] = {}
    for flat in flat_heads:
        layer, head = lm.geometry.split_flat(int(flat))
        by_layer.setdefault(layer, set()).add(head)
    return {layer: sorted(heads) for layer, heads in sorted(by_layer.items())}


def noise_targets(lm: LoadedModel, flat_heads: Iterable[int]) -> list[NoiseTarget]:
    """The query rows and output-projection columns of every head, from the model's geometry.

    Under GQA only the query heads are touched (key/value rows are shared across query heads).
    """
    g = lm.geometry
    targets = []
    for layer, heads in heads_by_layer(lm, flat_heads).items():
        _, q_axis = g.q_weight_view(layer)
        _, o_axis = g.o_weight_view(layer)
        for head in heads:
            q, o = g.q_rows(head), g.head_slice(head)
            targets.append(NoiseTarget(layer, head, "q", q_axis, q.start, q.stop - q.start))
            targets.append(NoiseTarget(layer, head, "o", o_axis, o.start, o.stop - o.start))
    return targets


def _target_weight(lm: LoadedModel, t: NoiseTarget) -> torch.Tensor:
    g = lm.geometry
    return (g.q_weight_view(t.layer) if t.role == "q" else g.o_weight_view(t.layer))[0]


def _head_generator(seed: int, layer: int, head: int, role: str) -> torch.Generator:
    """A generator per (seed, head, role): a head's noise does not depend on the other targets."""
    state = np.random.SeedSequence([int(seed), int(layer), int(head), role == "o"]).generate_state(
        2, dtype=np.uint32)
    return torch.Generator(device="cpu").manual_seed(int(state[0]) << 32 | int(state[1]))


def weight_std(weight: torch.Tensor) -> float:
    """Std (ddof=1, torch's default) of a whole weight tensor, computed in float64."""
    return float(weight.detach().to(torch.float64).std())


@contextlib.contextmanager
def gaussian_head_noise(lm: LoadedModel, flat_heads, sigma_rel: float, seed: int):
    """Add N(0, (sigma_rel * std(W))^2) to each head's query rows and output columns in the block.

    std(W) is taken over the whole weight tensor that holds the slice (the fused QKV tensor for
    Phi-3 / GPT-NeoX / GPT-2), before any noise is added. Noise is drawn in float32 on the CPU from
    a generator seeded by (seed, layer, head, role), so it is reproducible and independent of the
    device and of the other targeted heads. Yields the list of NoiseTarget touched. The original
    slices are saved and copied back on exit, so the weights are bit-identical afterwards.
    """
    try:
        sigma_rel = float(sigma_rel)
    except (TypeError, ValueError):
        raise ValueError(f"sigma_rel must be a number >= 0 (e.g. 0.1), got {sigma_rel!r}") from None
    if not math.isfinite(sigma_rel) or sigma_rel < 0:
        raise ValueError(f"sigma_rel must be a finite number >= 0 (e.g. 0.1), got {sigma_rel!r}")
    targets = noise_targets(lm, flat_heads)
    stds: dict[int, float] = {}
    for t in targets:
        w = _target_weight(lm, t)
        stds.setdefault(id(w), weight_std(w))
    saved: list[tuple[torch.Tensor, NoiseTarget, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for t in targets:
                w = _target_weight(lm, t)
                part = w.narrow(t.axis, t.start, t.length)
                saved.append((w, t, part.detach().clone()))
                noise = torch.randn(part.shape, generator=_head_generator(seed, t.layer, t.head,
                                                                          t.role),
                                    dtype=torch.float32)
                noisy = part.to(torch.float32) + noise.to(part.device) * (sigma_rel * stds[id(w)])
                part.copy_(noisy.to(part.dtype))
        yield targets
    finally:
        with torch.no_grad():
            for w, t, original in reversed(saved):
                w.narrow(t.axis, t.start, t.length).copy_(original)
