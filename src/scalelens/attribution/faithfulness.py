"""Faithfulness of a graph on the real (unfrozen) model, by ablating every unit outside it.

A unit is one feature of an MLP's down-projection input at one position. Ablation is a forward
pre-hook on the down projection that replaces the ablated units by 0 ("zero") or by their mean
("mean": per (layer, unit), over every real position of a set of reference prompts, see
`unit_means`); nothing else in the model changes.

For each target logit t (real logits, at the last position):

    f_t = (z_graph,t - z_none,t) / (z_full,t - z_none,t)

z_full: no unit ablated; z_none: every unit ablated; z_graph: every unit not in the graph
ablated. f_t = 1 when keeping the graph's units restores the full logit, 0 when they add
nothing over the ablated model; undefined (NaN) when z_full,t == z_none,t. The headline is the
probability-weighted mean over targets, ``sum_t p_t f_t / sum_t p_t`` (over defined f_t).

Random baseline: the same per-(layer, position) numbers of units as the graph keeps, drawn
uniformly without replacement from that layer and position (numpy ``default_rng(seed)``), so
it matches the graph's spread over layers and positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from scalelens.attribution.architecture import ModelParts
from scalelens.attribution.frozen import real_forward
from scalelens.errors import ScalelensError
from scalelens.models.loading import LoadedModel


class FaithfulnessError(ScalelensError):
    pass


@dataclass(frozen=True)
class Faithfulness:
    """Target logits with and without the graph's units, and the fractions kept."""

    z_full: np.ndarray  # float64 [n_targets]
    z_none: np.ndarray
    z_graph: np.ndarray
    z_random: np.ndarray
    probabilities: np.ndarray

    @staticmethod
    def _fraction(z: np.ndarray, full: np.ndarray, none: np.ndarray) -> np.ndarray:
        span = full - none
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(span != 0, (z - none) / np.where(span != 0, span, 1.0), np.nan)

    def _weighted(self, per_target: np.ndarray) -> float:
        ok = np.isfinite(per_target)
        p = self.probabilities[ok]
        return float((p * per_target[ok]).sum() / p.sum()) if p.sum() > 0 else float("nan")

    @property
    def per_target(self) -> np.ndarray:
        return self._fraction(self.z_graph, self.z_full, self.z_none)

    @property
    def per_target_random(self) -> np.ndarray:
        return self._fraction(self.z_random, self.z_full, self.z_none)

    @property
    def graph(self) -> float:
        """Probability-weighted fraction of the target logits the graph's units keep."""
        return self._weighted(self.per_target)

    @property
    def random(self) -> float:
        return self._weighted(self.per_target_random)


def random_like(keep: np.ndarray, seed: int) -> np.ndarray:
    """A random keep mask [L, T, m] with as many units per (layer, position) as `keep`."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(keep, dtype=bool)
    n_layers, n_pos, n_units = keep.shape
    for layer in range(n_layers):
        for pos in range(n_pos):
            count = int(keep[layer, pos].sum())
            if count:
                out[layer, pos, rng.choice(n_units, size=count, replace=False)] = True
    return out


def ablated_forward(model: torch.nn.Module, parts: ModelParts, input_ids: torch.Tensor,
                    keeps: np.ndarray, fill: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Last-position real logits [R, V] and unit activations [R, L, T, m] (after the
    ablation), one batched run with one row per keep mask in `keeps` [R, L, T, m].

    Units where the mask is False are replaced by `fill` [L, m] (zeros when None).
    """
    runs = keeps.shape[0]
    ids = input_ids.reshape(1, -1).expand(runs, -1)
    masks = torch.as_tensor(keeps)

    def make(layer):
        def edit(x):
            keep = masks[:, layer].to(x.device)
            base = (torch.zeros((), dtype=x.dtype, device=x.device) if fill is None
                    else fill[layer].to(x.device, x.dtype))
            return torch.where(keep, x, base)
        return edit

    hooks = {layer: make(layer) for layer in range(parts.n_layers)}
    return real_forward(model, parts, ids, down_pre_hooks=hooks)


def measure_faithfulness(model: torch.nn.Module, parts: ModelParts, input_ids: torch.Tensor,
                         keep: np.ndarray, target_ids: np.ndarray, probabilities: np.ndarray,
                         fill: torch.Tensor | None, seed: int
                         ) -> tuple[Faithfulness, torch.Tensor, torch.Tensor]:
    """f for the graph's units `keep` [L, T, m] and for the random baseline, in one batched run
    beside the intact model (z_full) and the fully ablated one (z_none).

    Also returns the intact row's last-position logits [V] and unit activations [L, T, m]: the
    real model's, against which the frozen pass is checked (one forward pass fewer per graph).
    """
    keeps = np.stack([np.ones_like(keep, dtype=bool), np.zeros_like(keep, dtype=bool),
                      keep.astype(bool), random_like(keep, seed)])
    logits, acts = ablated_forward(model, parts, input_ids, keeps, fill)
    z = logits.to("cpu", torch.float64).numpy()
    ids = np.asarray(target_ids, dtype=np.int64)
    faith = Faithfulness(z_full=z[0, ids], z_none=z[1, ids], z_graph=z[2, ids],
                         z_random=z[3, ids],
                         probabilities=np.asarray(probabilities, dtype=np.float64))
    return faith, logits[0], acts[0]


def unit_means(lm: LoadedModel, texts: Sequence[str]) -> np.ndarray:
    """Mean activation of every MLP unit, float64 [n_layers, n_units], for ``ablation="mean"``.

    The mean is over every position of every prompt in `texts`. Prompts run one at a time:
    no padding can leak into the means (left padding yields NaN at padded positions in float64,
    which attention then spreads).
    """
    from scalelens.attribution.architecture import model_parts

    texts = list(texts)
    if not texts:
        raise FaithfulnessError("unit_means needs at least one prompt")
    parts = model_parts(lm.model)
    total = torch.zeros((parts.n_layers, parts.n_units), dtype=torch.float64)
    count = 0
    for text in texts:
        ids = lm.tokenizer(text, return_tensors="pt")["input_ids"][0].to(lm.device)
        _, acts = real_forward(lm.model, parts, ids)
        total += acts[0].to(torch.float64).sum(1).cpu()
        count += ids.numel()
    return (total / count).numpy()
