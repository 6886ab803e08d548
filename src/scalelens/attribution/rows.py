"""Rows of direct effects: what every source adds to a batch of targets, in one backward pass.

Sources are indexed flat: MLP unit (layer l, position p, unit u) is column ``(l * T + p) * m + u``
(T positions, m units per layer), the embedding of position p is column ``L * T * m + p``.

A target's linear input is read off a residual-space tensor: unit (l, p, u) reads
``r_u . x_l[p]`` from its MLP's input ``x_l`` (``r_u`` the unit's row of the up / pre projection),
logit v reads ``w_v . h[T-1]`` from the unembedding's input ``h``. Its row, times the frozen gain
``g``, is

- unit source (l', p', u'): ``a[l', p', u'] * (W_down[l'][:, u'] . grad_{y_l'[p']} (g r . x))``,
  where ``y_l'`` is the down projection's output (a leaf of the frozen pass) and ``a`` the units'
  activations: exactly what the unit adds to the target in the frozen model;
- embedding source p': ``e[p'] . grad_{e[p']} (g r . x)``, summed over the embedding vector.

One autograd call (``is_grads_batched``) gives the residual-space gradients of a whole batch of
targets; the projection onto each layer's down-projection columns is then one matmul per layer,
restricted to the layers below the batch's highest target and the positions up to its last one
(the rest is exactly zero in a causal model). Each row is reduced at once to its exact sum and
exact L1 mass over ALL sources, its embedding entries (all of them) and its `top_k` unit entries
by |effect|; the full row is never stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from scalelens.attribution.architecture import FUSED_GATED, GATED, ModelParts
from scalelens.attribution.frozen import FrozenPass


def _linear_weight(module: torch.nn.Module) -> torch.Tensor:
    """The weight as [out, in] (GPT-2's Conv1D stores [in, out])."""
    w = module.weight.detach()
    return w.t() if type(module).__name__ == "Conv1D" else w


@dataclass(frozen=True)
class RowBatch:
    """Reduced rows of one batch of targets (B rows)."""

    top_index: np.ndarray  # int64 [B, k]: unit-source columns by |effect| descending; -1 pads
    top_value: np.ndarray  # float64 [B, k]: signed effects
    embedding: np.ndarray  # float64 [B, T]: effect of each position's embedding
    total: np.ndarray  # float64 [B]: sum of the full row (units and embeddings)
    mass: np.ndarray  # float64 [B]: sum of |effect| over the full row
    stored_mass: np.ndarray  # float64 [B]: sum of |effect| over the stored entries


class RowComputer:
    """Direct-effect rows of unit and logit targets in one frozen pass."""

    def __init__(self, fp: FrozenPass, parts: ModelParts, top_k: int):
        self.fp = fp
        self.parts = parts
        self.top_k = int(top_k)
        self.n_layers = parts.n_layers
        self.n_pos = fp.emb_leaf.shape[1]
        self.n_units = fp.unit_values.shape[-1]
        self.logit_layer = parts.n_layers
        self._down = [_linear_weight(parts.down(i)) for i in range(self.n_layers)]  # [d, m]
        m = self.n_units
        reads = []
        for i in range(self.n_layers):
            if parts.layout.kind == FUSED_GATED:
                reads.append(_linear_weight(parts.gate(i))[m:])  # gate_up: [gate | up] halves
            elif parts.layout.kind == GATED:
                reads.append(_linear_weight(parts.up(i)))
            else:
                reads.append(_linear_weight(parts.gate(i)))
        self._reads = reads  # [m, d] per layer
        self._unembed = _linear_weight(parts.unembedding)  # [V, d]
        self.device = fp.emb_leaf.device
        self.n_passes = 0

    @property
    def n_sources(self) -> int:
        return self.n_layers * self.n_pos * self.n_units + self.n_pos

    def _start_vectors(self, layer: np.ndarray, pos: np.ndarray, index: np.ndarray):
        """(outputs, grad_outputs): each target's gain * read vector at its position."""
        fp, n = self.fp, len(layer)
        dtype = fp.emb_leaf.dtype
        outputs, grads = [], []
        for lay in np.unique(layer):
            rows = np.flatnonzero(layer == lay)
            p = torch.as_tensor(pos[rows], device=self.device)
            idx = torch.as_tensor(index[rows], device=self.device)
            if lay == self.logit_layer:
                vecs = self._unembed[idx].to(dtype)
                if fp.logit_gains is not None:
                    vecs = vecs * fp.logit_gains[idx].unsqueeze(-1)
                source = fp.final_hidden
                p = torch.full_like(p, source.shape[1] - 1)  # the last position it holds
            else:
                vecs = self._reads[lay][idx].to(dtype) * fp.gains[lay, p, idx].unsqueeze(-1)
                source = fp.mlp_inputs[lay]
            g = torch.zeros((n, *source.shape), dtype=dtype, device=self.device)
            g[torch.as_tensor(rows, device=self.device), 0, p] = vecs
            outputs.append(source)
            grads.append(g)
        return outputs, grads

    def rows(self, layer: np.ndarray, pos: np.ndarray, index: np.ndarray) -> RowBatch:
        """Rows of targets (layer, pos, index); layer == n_layers marks a logit (index = token)."""
        layer, pos, index = (np.asarray(a, dtype=np.int64) for a in (layer, pos, index))
        fp = self.fp
        outputs, grads = self._start_vectors(layer, pos, index)
        top_layer = int(layer.max())  # sources lie strictly below every target's layer
        inputs = [fp.emb_leaf, *fp.mlp_out_leaves[:top_layer]]
        got = torch.autograd.grad(outputs, inputs, grads, retain_graph=True,
                                  is_grads_batched=True, allow_unused=True)
        self.n_passes += 1
        n = len(layer)
        emb = got[0][:, 0] if got[0] is not None else torch.zeros_like(fp.emb_leaf).expand(
            n, *fp.emb_leaf.shape[1:])
        embedding = (emb * fp.emb_leaf.detach()[0]).sum(-1).to(torch.float64)  # [B, T]
        total = embedding.sum(-1)
        mass = embedding.abs().sum(-1)
        n_pos = int(pos.max()) + 1
        k = self.top_k
        cand_val, cand_idx = [], []
        block = self.n_pos * self.n_units
        for lay in range(top_layer):
            if got[1 + lay] is None:
                continue
            g = got[1 + lay][:, 0, :n_pos]  # [B, P, d]
            eff = torch.matmul(g, self._down[lay].to(g.dtype))  # [B, P, m]
            eff.mul_(fp.unit_values[lay, :n_pos])
            flat = eff.reshape(n, -1)
            # summed in the model's dtype (a float64 accumulator is 20x slower on CPU)
            total += flat.sum(-1).to(torch.float64)
            absolute = flat.abs()
            mass += absolute.sum(-1).to(torch.float64)
            kk = min(k, absolute.shape[1])
            _, idx = torch.topk(absolute, kk, dim=1, sorted=False)
            cand_val.append(torch.gather(flat, 1, idx))
            cand_idx.append(idx + lay * block)
        top_value = torch.zeros((n, k), dtype=fp.emb_leaf.dtype, device=self.device)
        top_index = torch.full((n, k), -1, dtype=torch.int64, device=self.device)  # -1: none
        if cand_val:
            vals = torch.cat(cand_val, dim=1)
            idxs = torch.cat(cand_idx, dim=1)
            kk = min(k, vals.shape[1])
            _, order = torch.topk(vals.abs(), kk, dim=1, sorted=True)
            top_value[:, :kk] = torch.gather(vals, 1, order)
            top_index[:, :kk] = torch.gather(idxs, 1, order)
        stored = top_value.abs().sum(-1, dtype=torch.float64) + embedding.abs().sum(-1)
        return RowBatch(
            top_index=top_index.cpu().numpy().astype(np.int64),
            top_value=top_value.to("cpu", torch.float64).numpy(),
            embedding=embedding.cpu().numpy(),
            total=total.cpu().numpy(),
            mass=mass.cpu().numpy(),
            stored_mass=stored.cpu().numpy(),
        )

