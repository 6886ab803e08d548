"""Attribution settings: which targets, how many rows, how rows are stored, pruning, ablation."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from scalelens.errors import ScalelensError

ABLATIONS: tuple[str, ...] = ("zero", "mean")


class AttributionSettingsError(ScalelensError, ValueError):
    """A setting is out of range; the message names it and what it accepts."""


def _int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise AttributionSettingsError(f"{name} must be an integer {bound}, got {value!r}")
    return int(value)


def _fraction(name: str, value, open_low: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > 1 or value < 0 or (open_low and value == 0):
        rng = "(0, 1]" if open_low else "[0, 1]"
        raise AttributionSettingsError(f"{name} must be a number in {rng}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class AttributionSettings:
    """Every knob of `attribute_prompt`.

    Defaults: a 20-token SmolLM2-135M graph (384 unit rows, ~190 units kept) takes ~7 s on 2
    idle cores; rows cost about L * T * d * (m + d) flops each (layers, tokens, hidden size, MLP
    width), so Gemma 3 270M costs about the same and Qwen2.5 0.5B about 3-4 times as much per
    row: give bigger models a smaller `max_feature_nodes` (bench/bench_attribution.py).

    Targets (as circuit-tracer): the top `max_logits` next-token logits at the last position,
    cut where their cumulative probability first reaches `logit_prob`.

    Rows: the logit rows, then up to `max_feature_nodes` MLP-unit rows, chosen in rounds of
    `update_interval` batches of `batch_size` by their current influence on the logits
    (`scalelens.attribution.influence`). Each row keeps its `row_top_k` largest unit entries by
    |effect|, all embedding entries, its exact sum and its exact L1 mass.

    Pruning (as circuit-tracer's `prune_graph`): nodes carrying `node_threshold` of the
    cumulative influence, edges carrying `edge_threshold` of the edge influence, then at most
    `max_nodes` units (most influential first; 0 = no cap).

    Faithfulness: every unit outside the graph is ablated in the real model, to 0 (`ablation`
    "zero") or to its mean over reference prompts ("mean", needs `means`); the random baseline
    keeps the same number of units per (layer, position), drawn with `random_seed`.

    Completeness errors are relative to ``max(|value|, completeness_floor * rms)``, rms the
    root mean square of the values of the targets of the same kind (all the prompt's units, or
    the selected logits). A largest error above `max_completeness_error` stops the call: the
    frozen model is then not the affine map it should be (float32 rounding gives ~1e-5).
    """

    max_logits: int = 10
    logit_prob: float = 0.95
    max_feature_nodes: int = 384
    batch_size: int = 64
    update_interval: int = 2
    row_top_k: int = 1024
    node_threshold: float = 0.8
    edge_threshold: float = 0.98
    max_nodes: int = 1000
    ablation: str = "zero"
    random_seed: int = 0
    completeness_floor: float = 1e-3
    max_completeness_error: float = 1e-2

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "max_logits", _int("max_logits", self.max_logits, 1))
        set_(self, "logit_prob", _fraction("logit_prob", self.logit_prob, open_low=True))
        set_(self, "max_feature_nodes", _int("max_feature_nodes", self.max_feature_nodes, 0))
        set_(self, "batch_size", _int("batch_size", self.batch_size, 1, 4096))
        set_(self, "update_interval", _int("update_interval", self.update_interval, 1))
        set_(self, "row_top_k", _int("row_top_k", self.row_top_k, 1))
        set_(self, "node_threshold", _fraction("node_threshold", self.node_threshold))
        set_(self, "edge_threshold", _fraction("edge_threshold", self.edge_threshold))
        set_(self, "max_nodes", _int("max_nodes", self.max_nodes, 0))
        if self.ablation not in ABLATIONS:
            raise AttributionSettingsError(
                f"ablation must be one of {', '.join(ABLATIONS)}, got {self.ablation!r}")
        set_(self, "random_seed", _int("random_seed", self.random_seed, 0))
        floor = self.completeness_floor
        if isinstance(floor, bool) or not isinstance(floor, int | float) or not (
                math.isfinite(floor) and floor > 0):
            raise AttributionSettingsError(
                f"completeness_floor must be a number > 0, got {floor!r}")
        set_(self, "completeness_floor", float(floor))
        bound = self.max_completeness_error
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not bound > 0:
            raise AttributionSettingsError(
                f"max_completeness_error must be a number > 0 (inf: never stop), got {bound!r}")
        set_(self, "max_completeness_error", float(bound))

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)
