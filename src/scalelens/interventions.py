"""Interventions on heads, each undone exactly when its block exits.

- `ablate_heads`: zero the outputs of a set of heads (a forward pre-hook on the output projection
  that zeroes the heads' slices of its input). Weights are never touched.
"""

from __future__ import annotations

import contextlib

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
