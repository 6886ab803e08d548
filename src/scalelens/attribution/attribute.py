"""`attribute_prompt`: one prompt -> an exact neuron-level attribution graph with its scores.

Steps (passes over the model in brackets):

1. frozen record pass [1], numerically the real forward pass: the targets are the top
   next-token logits at the last position (``select_logit_targets``); and the zero-leaf replay
   [1] that gives every target's bias (``scalelens.attribution.frozen``);
2. rows [one batched backward per `batch_size` rows]: logit rows, then unit rows chosen by
   influence (``scalelens.attribution.expansion``); completeness of every row on its full sum;
3. the graph among expanded units, embeddings and logits, pruned
   (``scalelens.attribution.pruning``);
4. faithfulness on the real model [1 batched forward of 4 runs: intact, nothing kept, the
   graph's units kept, a random set kept] (``scalelens.attribution.faithfulness``); the intact
   run's logits and unit activations check the frozen pass (frozen_vs_real_max_abs).
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import torch

from scalelens.attribution.architecture import ModelParts, model_parts
from scalelens.attribution.expansion import LOGIT_ROW, RowStore, expand
from scalelens.attribution.faithfulness import measure_faithfulness
from scalelens.attribution.frozen import FrozenModel, FrozenPass, ReplayValues
from scalelens.attribution.pruning import prune_graph
from scalelens.attribution.result import (
    EMBEDDING,
    LOGIT,
    UNIT,
    AttributionQuality,
    AttributionResult,
    LogitTarget,
)
from scalelens.attribution.rows import RowComputer
from scalelens.attribution.settings import AttributionSettings, AttributionSettingsError
from scalelens.errors import ScalelensError
from scalelens.models.loading import LoadedModel

FROZEN_NOTE: tuple[str, ...] = (
    "attention patterns (queries and keys held at their values on the prompt)",
    "every normalisation scale (input, Gemma pre/post sandwich, query/key and final norms)",
    "MLP gains: act(gate) for gated MLPs, act(pre)/pre for plain MLPs",
    "final-logit soft-capping as the gain c*tanh(z/c)/z (Gemma 2)",
    "leaves: token embeddings (embedding-module output) and MLP units (down-projection input)",
    "constants in every target's bias: biases, absolute position embeddings (GPT-2)",
)


class AttributionError(ScalelensError):
    pass


def select_logit_targets(logits: torch.Tensor, max_logits: int,
                         logit_prob: float) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, probabilities) of the top logits, until their cumulative probability first
    reaches `logit_prob`, at most `max_logits` (as circuit-tracer)."""
    probs = torch.softmax(logits.detach().to("cpu", torch.float64), dim=-1)
    k = min(max_logits, probs.numel())
    top_p, top_i = torch.topk(probs, k)
    cutoff = int(torch.searchsorted(torch.cumsum(top_p, 0), torch.tensor(logit_prob,
                                                                          dtype=torch.float64)))
    n = min(cutoff + 1, k)
    return top_i[:n].numpy().astype(np.int64), top_p[:n].numpy()


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _reset_peak_memory() -> bool:
    """Reset the kernel's peak-RSS counter for this process (Linux); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_memory_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _check_means(means, parts: ModelParts, settings: AttributionSettings):
    if settings.ablation != "mean":
        return None
    if means is None:
        raise AttributionSettingsError(
            "ablation 'mean' needs means: pass means=unit_means(lm, reference_texts)")
    arr = torch.as_tensor(np.asarray(means, dtype=np.float64))
    if tuple(arr.shape) != (parts.n_layers, parts.n_units):
        raise AttributionSettingsError(
            f"means must have shape (n_layers, n_units) = ({parts.n_layers}, {parts.n_units}), "
            f"got {tuple(arr.shape)}")
    return arr


def _completeness(store: RowStore, fp: FrozenPass, bias: ReplayValues, logit_ids: np.ndarray,
                  n_pos: int, n_units: int, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """(relative error per row, is-logit per row), see AttributionQuality."""
    columns = store.row_columns()
    total = store.stacked("total")
    is_logit = columns == LOGIT_ROW
    values = np.empty(columns.size)
    biases = np.empty(columns.size)
    unit_values = _numpy(fp.unit_values).reshape(-1)
    unit_bias = _numpy(bias.unit_values).reshape(-1)
    values[~is_logit] = unit_values[columns[~is_logit]]
    biases[~is_logit] = unit_bias[columns[~is_logit]]
    values[is_logit] = _numpy(fp.logits)[logit_ids]
    biases[is_logit] = _numpy(bias.logits)[logit_ids]
    rms_units = float(np.sqrt(np.mean(unit_values ** 2)))
    rms_logits = float(np.sqrt(np.mean(values[is_logit] ** 2)))
    scale = np.maximum(np.abs(values), floor * np.where(is_logit, rms_logits, rms_units))
    scale = np.where(scale > 0, scale, 1.0)
    return np.abs(total + biases - values) / scale, is_logit


def _graph(store: RowStore, expanded: np.ndarray, rel_error: np.ndarray, logit_ids: np.ndarray,
           fp: FrozenPass, token_ids: np.ndarray, n_layers: int, n_units: int):
    """Node arrays, adjacency [n, n], row mass and row errors among the graph's nodes."""
    n_pos = token_ids.size
    units = np.sort(expanded)
    n_u, n_l = units.size, logit_ids.size
    n = n_u + n_pos + n_l
    layer, rest = np.divmod(units, n_pos * n_units)
    pos, unit = np.divmod(rest, n_units)
    kind = np.concatenate([np.full(n_u, UNIT), np.full(n_pos, EMBEDDING), np.full(n_l, LOGIT)])
    node_layer = np.concatenate([layer, np.full(n_pos, -1), np.full(n_l, n_layers)])
    node_pos = np.concatenate([pos, np.arange(n_pos), np.full(n_l, n_pos - 1)])
    node_index = np.concatenate([unit, token_ids, logit_ids])
    acts = _numpy(fp.unit_values).reshape(-1)
    activation = np.concatenate([acts[units], np.full(n_pos, np.nan),
                                 _numpy(fp.logits)[logit_ids]])

    col_to_node = np.full(store.n_unit_columns, -1, dtype=np.int64)
    col_to_node[units] = np.arange(n_u)
    columns = store.row_columns()
    row_node = col_to_node[np.maximum(columns, 0)]
    row_node[columns == LOGIT_ROW] = n_u + n_pos + np.arange(n_l)  # in target order
    adjacency = np.zeros((n, n))
    top_index, top_value = store.stacked("top_index"), store.stacked("top_value")
    src = np.where(top_index >= 0, col_to_node[np.maximum(top_index, 0)], -1)
    hit = src >= 0
    rows_rep = np.broadcast_to(row_node[:, None], top_index.shape)
    adjacency[rows_rep[hit], src[hit]] = top_value[hit]
    adjacency[row_node[:, None], n_u + np.arange(n_pos)[None, :]] = store.stacked("embedding")
    row_mass = np.zeros(n)
    row_mass[row_node] = store.stacked("mass")
    node_error = np.full(n, np.nan)
    node_error[row_node] = rel_error
    return kind.astype(np.int8), node_layer, node_pos, node_index, activation, adjacency, \
        row_mass, node_error


def _all_rows(computer: RowComputer, logit_ids: np.ndarray, probs: np.ndarray,
              settings: AttributionSettings) -> tuple[RowStore, np.ndarray]:
    """The logit rows, then the unit rows chosen by influence; (rows, expanded unit columns)."""
    n_layers, n_pos = computer.n_layers, computer.n_pos
    store = RowStore(n_unit_columns=n_layers * n_pos * computer.n_units, n_pos=n_pos)
    for start in range(0, logit_ids.size, settings.batch_size):
        chunk = logit_ids[start:start + settings.batch_size]
        batch = computer.rows(np.full(chunk.size, n_layers), np.full(chunk.size, n_pos - 1),
                              chunk)
        store.add(batch, np.full(chunk.size, LOGIT_ROW), probs[start:start + chunk.size])
    expanded = expand(computer, store, settings.max_feature_nodes, settings.batch_size,
                      settings.update_interval)
    return store, expanded


def attribute_prompt(lm: LoadedModel, text: str, settings: AttributionSettings | None = None,
                     means=None) -> AttributionResult:
    """The attribution graph of `text` under `lm` (see the module docstring).

    `means` [n_layers, n_units] (from ``unit_means``) is needed for ``ablation="mean"``.
    """
    settings = settings or AttributionSettings()
    t_start = time.perf_counter()
    _reset_peak_memory()
    model = lm.model
    parts = model_parts(model)
    fill = _check_means(means, parts, settings)
    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"][0].to(lm.device)
    if ids.numel() == 0:
        raise AttributionError(f"prompt {text!r} has no tokens")
    n_pos, n_layers, n_units = ids.numel(), parts.n_layers, parts.n_units
    token_ids = ids.cpu().numpy().astype(np.int64)

    with FrozenModel(model, parts, ids) as fz:
        fp = fz.record()  # equal to the real forward pass (checked against it below)
        frozen_logits = fp.logits.detach()
        frozen_units = fp.unit_values.detach()
        logit_ids, probs = select_logit_targets(frozen_logits, settings.max_logits,
                                                settings.logit_prob)
        bias = fz.replay()
        t_rows = time.perf_counter()
        computer = RowComputer(fp, parts, settings.row_top_k)
        store, expanded = _all_rows(computer, logit_ids, probs, settings)
        t_prune = time.perf_counter()
    rel_error, is_logit = _completeness(store, fp, bias, logit_ids, n_pos, n_units,
                                        settings.completeness_floor)
    if not rel_error.max() <= settings.max_completeness_error:
        raise AttributionError(
            f"{lm.key}: a row misses its target by {rel_error.max():.3g} (relative; allowed "
            f"{settings.max_completeness_error:g}): the frozen model is not affine in its "
            f"leaves, so some nonlinearity is not frozen (a transformers change?)")
    (kind, node_layer, node_pos, node_index, activation, adjacency, row_mass,
     node_error) = _graph(store, expanded, rel_error, logit_ids, fp, token_ids, n_layers, n_units)
    n_passes, norm_mismatch = computer.n_passes, fp.norm_mismatch
    del fp, computer, fz
    weights = np.zeros(kind.size)
    weights[kind == LOGIT] = probs
    pruned = prune_graph(adjacency, weights, kind == UNIT, settings.node_threshold,
                         settings.edge_threshold, settings.max_nodes, row_mass)
    t_faith = time.perf_counter()
    keep = np.zeros((n_layers, n_pos, n_units), dtype=bool)
    kept_units = pruned.node_mask & (kind == UNIT)
    keep[node_layer[kept_units], node_pos[kept_units], node_index[kept_units]] = True
    faith, real_logits, real_units = measure_faithfulness(model, parts, ids, keep, logit_ids,
                                                         probs, fill, settings.random_seed)
    frozen_gap = max(float((frozen_logits - real_logits).abs().max()),
                     float((frozen_units - real_units).abs().max()))
    t_end = time.perf_counter()

    stored = store.stacked("stored_mass") / np.where(store.stacked("mass") > 0,
                                                     store.stacked("mass"), 1.0)
    quality = AttributionQuality(
        completeness_max_rel_error=float(rel_error.max()),
        completeness_logit_max_rel_error=float(rel_error[is_logit].max()),
        frozen_vs_real_max_abs=frozen_gap,
        frozen_norm_max_rel=float(norm_mismatch),
        influence_kept=pruned.influence_kept,
        influence_kept_units=pruned.influence_kept_units,
        faithfulness=faith.graph,
        faithfulness_random=faith.random,
        row_mass_stored=float(stored.mean()),
        n_nodes=pruned.n_nodes,
        n_edges=pruned.n_edges,
        n_units_kept=int(kept_units.sum()),
        n_units_expanded=int(expanded.size),
        n_rows=store.n_rows,
        n_passes=n_passes,
        n_logits=int(logit_ids.size),
        n_tokens=n_pos,
        seconds=t_end - t_start,
        seconds_forward=t_rows - t_start,
        seconds_rows=t_prune - t_rows,
        seconds_prune=t_faith - t_prune,
        seconds_faithfulness=t_end - t_faith,
        peak_memory_mb=_peak_memory_mb(),
    )
    decode = lm.tokenizer.decode
    targets = tuple(LogitTarget(int(i), decode([int(i)]), float(p),
                                float(real_logits[int(i)]))
                    for i, p in zip(logit_ids, probs))
    return AttributionResult(
        prompt=text, token_ids=tuple(int(t) for t in token_ids),
        tokens=tuple(decode([int(t)]) for t in token_ids), model_key=lm.key,
        model_type=parts.model_type, n_layers=n_layers, n_units=n_units, logit_targets=targets,
        node_kind=kind, node_layer=node_layer, node_pos=node_pos, node_index=node_index,
        node_activation=activation, adjacency=adjacency, row_mass=row_mass,
        row_rel_error=node_error, prune=pruned, faithfulness=faith, quality=quality,
        settings=settings, frozen=FROZEN_NOTE,
    )
