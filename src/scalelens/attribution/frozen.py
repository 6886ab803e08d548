"""The frozen model: one prompt's forward pass made affine in its leaves, by module hooks.

Frozen at their values on the prompt (recorded once, in the record pass, then constants):

- every normalisation's scale (input norms, Gemma's pre- and post- sandwich norms, the final norm,
  and any query/key norms), see ``scalelens.attribution.norms``;
- attention patterns: attention runs through transformers' ``AttentionInterface`` under the name
  ``FROZEN_ATTENTION``, which calls the architecture's own eager attention with the recorded
  (detached) queries and keys, so the pattern (with its masks, sliding windows and soft-capping)
  is a constant and the output is linear in the values;
- MLP gains: gated units ``m = act(gate) * up`` keep ``act(gate)``; plain units ``m = act(pre)``
  keep ``act(pre) / pre`` (``act'(0)`` where ``pre == 0``, the limit of the ratio);
- Gemma 2's final-logit soft-capping ``c * tanh(z / c)``, kept as the gain ``c * tanh(z / c) / z``
  (1 where ``z == 0``).

Leaves: the input-embedding module's output (one vector per position; GPT-2's absolute position
embeddings are added after it and are therefore a constant, part of every target's bias) and every
MLP's down-projection input (the units). In the record pass the down projection's OUTPUT becomes
the autograd leaf (same values; a unit's effect is read off its gradient through the unit's
down-projection column, see ``scalelens.attribution.rows``) and every MLP gets its input detached;
in replays the down projection's input is replaced. Since each MLP's output is a leaf, no path in
the frozen model runs through another MLP unit: targets depend on the leaves only through the
residual stream and the attention value/output paths (and the frozen norms on the way).

``FrozenModel.record`` runs the frozen pass with the real leaf values (checking that every frozen
norm and every unit's ``gain * linear_input`` reproduce the real module's output);
``FrozenModel.replay`` runs it again with other leaf values (zeros by default: the bias pass) under
the same frozen constants.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

from scalelens.attribution.architecture import (
    FUSED_GATED,
    GATED,
    ModelParts,
    UnsupportedModelError,
)
from scalelens.attribution.norms import frozen_norm, match_tolerance, norm_scale
from scalelens.batching import last_logits_only
from scalelens.errors import ScalelensError

FROZEN_ATTENTION = "scalelens_frozen_eager"
RECORD = "record"
REPLAY = "replay"


class FrozenModelError(ScalelensError):
    """The frozen model does not reproduce the real one (a module changed under us)."""


_ACTIVE: list[_FreezeState] = []


def _eager_attention_of(module: nn.Module) -> Callable:
    """The eager attention function of the module's own modelling file."""
    fn = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if fn is None:
        raise UnsupportedModelError(
            f"{type(module).__name__}: its modelling module has no eager_attention_forward"
        )
    return fn


def _frozen_attention(module, query, key, value, attention_mask, **kwargs):
    """Eager attention with queries and keys held at their recorded values (detached)."""
    if not _ACTIVE:
        raise FrozenModelError(f"attention implementation {FROZEN_ATTENTION!r} used outside "
                               f"a FrozenModel block")
    query, key = _ACTIVE[-1].attention_qk(module, query, key)
    return _eager_attention_of(module)(module, query, key, value, attention_mask, **kwargs)


def _register_attention() -> None:
    AttentionInterface.register(FROZEN_ATTENTION, _frozen_attention)
    AttentionMaskInterface.register(FROZEN_ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["eager"])


def _limit_at_zero(act: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """act'(0): the limit of act(x) / x at 0 for activations with act(0) = 0."""
    x = torch.zeros((), dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(act(x), x)
    return grad.to(dtype)


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a - b| / max|b| (max|a - b| when b is all zeros)."""
    diff = float((a.detach() - b.detach()).abs().max()) if a.numel() else 0.0
    scale = float(b.detach().abs().max()) if b.numel() else 0.0
    return diff / scale if scale > 0 else diff


@dataclass
class FrozenPass:
    """The record pass: leaves, the tensors targets read from, and the frozen constants.

    Shapes: T positions, d hidden size, m units per layer, L layers, V vocabulary.
    """

    emb_leaf: torch.Tensor  # [1, T, d], requires grad
    mlp_out_leaves: tuple[torch.Tensor, ...]  # L x [1, T, d]: down-projection outputs, grad
    mlp_inputs: tuple[torch.Tensor, ...]  # L x [1, T, d]: each MLP's input, in the graph
    final_hidden: torch.Tensor  # [1, P, d]: the unembedding's input (P = 1 or T), in the graph
    gains: torch.Tensor  # [L, T, m] frozen unit gains
    unit_values: torch.Tensor  # [L, T, m] gain * linear_input = the units' activations
    logits: torch.Tensor  # [V] frozen logits (gain * z) at the last position, detached
    logit_gains: torch.Tensor | None  # [V] soft-capping gains (last position), None without
    norm_mismatch: float  # largest max|frozen - real| / max|real| over the norms, relative
    unit_mismatch: float  # largest max|gain * lin - m| / max|m| over layers


@dataclass
class ReplayValues:
    """Target values of a replay: units' gain * linear input and the frozen logits."""

    unit_values: torch.Tensor  # [L, T, m]
    logits: torch.Tensor  # [V], last position


class _FreezeState:
    """What the hooks record in the record pass and read back in replays."""

    def __init__(self, parts: ModelParts):
        self.parts = parts
        self.mode = RECORD
        self.calls: dict[int, int] = {}
        self.norm_scales: dict[tuple[int, int], torch.Tensor] = {}
        self.qk: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        n = parts.n_layers
        self.gains: list[torch.Tensor | None] = [None] * n
        self.lin: list[torch.Tensor | None] = [None] * n
        self.mlp_inputs: list[torch.Tensor | None] = [None] * n
        self.out_leaves: list[torch.Tensor | None] = [None] * n
        self.emb_leaf: torch.Tensor | None = None
        self.final_hidden: torch.Tensor | None = None
        self.z: torch.Tensor | None = None
        self.logit_gains: torch.Tensor | None = None
        self.replay_emb: torch.Tensor | None = None
        self.replay_units: list[torch.Tensor] | None = None
        self.norm_mismatch = 0.0
        self.unit_mismatch = 0.0

    def start(self, mode: str) -> None:
        self.mode = mode
        self.calls = {}

    def call_key(self, module: nn.Module) -> tuple[int, int]:
        count = self.calls.get(id(module), 0)
        self.calls[id(module)] = count + 1
        return id(module), count

    def attention_qk(self, module, query, key):
        k = self.call_key(module)
        if self.mode == RECORD:
            self.qk[k] = (query.detach(), key.detach())
        elif k not in self.qk:
            raise FrozenModelError(f"attention call {k} was not seen in the record pass")
        return self.qk[k]


class FrozenModel:
    """Context manager: hooks that turn the forward pass on `input_ids` into the frozen model.

    Inside the block the model's parameters do not require grad, the model is in eval mode and
    its attention implementation is ``FROZEN_ATTENTION``; all of it is restored on exit. Every
    forward pass of the model inside the block is a frozen pass: run nothing else with it there.
    """

    def __init__(self, model: nn.Module, parts: ModelParts, input_ids: torch.Tensor):
        self.model = model
        self.parts = parts
        self.input_ids = input_ids.reshape(1, -1)
        self.state = _FreezeState(parts)
        self._stack = contextlib.ExitStack()

    # ----------------------------------------------------------------------------- install
    def __enter__(self) -> FrozenModel:
        _register_attention()
        stack = self._stack
        try:
            stack.callback(self.model.train, self.model.training)
            self.model.eval()
            params = [p for p in self.model.parameters() if p.requires_grad]
            for p in params:
                p.requires_grad_(False)
            stack.callback(lambda: [p.requires_grad_(True) for p in params])
            configs = {id(m.config): m.config for m in self.model.modules()
                       if hasattr(getattr(m, "config", None), "_attn_implementation")}
            for cfg in configs.values():
                stack.callback(setattr, cfg, "_attn_implementation", cfg._attn_implementation)
                cfg._attn_implementation = FROZEN_ATTENTION
            _ACTIVE.append(self.state)
            stack.callback(_ACTIVE.remove, self.state)
            self._install_hooks()
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _hook(self, handle) -> None:
        self._stack.callback(handle.remove)

    def _install_hooks(self) -> None:
        parts = self.parts
        self._hook(parts.embedding.register_forward_hook(self._embedding_hook))
        for module, kind in parts.norms:
            self._hook(module.register_forward_hook(self._norm_hook(kind), with_kwargs=True))
        for layer in range(parts.n_layers):
            self._hook(parts.mlps[layer].register_forward_pre_hook(
                self._mlp_input_hook(layer), with_kwargs=True))
            self._hook(parts.gate(layer).register_forward_hook(self._gate_hook(layer)))
            if parts.layout.kind == GATED:
                self._hook(parts.up(layer).register_forward_hook(self._up_hook(layer)))
            self._hook(parts.down(layer).register_forward_pre_hook(self._down_hook(layer)))
            self._hook(parts.down(layer).register_forward_hook(self._down_output_hook(layer)))
        self._hook(parts.unembedding.register_forward_hook(self._unembedding_hook))

    # ------------------------------------------------------------------------------- hooks
    def _embedding_hook(self, module, args, output):
        st = self.state
        if st.mode == RECORD:
            st.emb_leaf = output.detach().clone().requires_grad_(True)
            return st.emb_leaf
        return st.replay_emb

    def _norm_hook(self, kind: str):
        st = self.state

        def hook(module, args, kwargs, output):
            x = args[0] if args else next(iter(kwargs.values()))
            key = st.call_key(module)
            if st.mode == RECORD:
                scale = norm_scale(kind, module, x)
                st.norm_scales[key] = scale
                y = frozen_norm(kind, module, x, scale)
                rel = _max_rel(y, output)
                st.norm_mismatch = max(st.norm_mismatch, rel)
                if not rel <= match_tolerance(kind, x):
                    raise FrozenModelError(
                        f"frozen {kind} norm {type(module).__name__} differs from the module by "
                        f"{rel:.3g} (relative); the norm's formula changed in this transformers "
                        f"version"
                    )
                return y
            if key not in st.norm_scales:
                raise FrozenModelError(f"norm call {key} was not seen in the record pass")
            return frozen_norm(kind, module, x, st.norm_scales[key])

        return hook

    def _mlp_input_hook(self, layer: int):
        st = self.state

        def hook(module, args, kwargs):
            """Keep the MLP input (targets read from it); the MLP itself gets it detached."""
            if args:
                st.mlp_inputs[layer] = args[0]
                return (args[0].detach(), *args[1:]), kwargs
            name, x = next(iter(kwargs.items()))
            st.mlp_inputs[layer] = x
            return args, {**kwargs, name: x.detach()}

        return hook

    def _gate_hook(self, layer: int):
        """Gate (gated), gate_up (fused) or pre (plain) projection output: gain and lin."""
        st, parts = self.state, self.parts
        kind = parts.layout.kind

        def hook(module, args, output):
            out = output.detach()
            if kind == FUSED_GATED:
                gate, lin = out.chunk(2, dim=-1)
                st.lin[layer] = lin
            elif kind == GATED:
                gate = out
            else:
                gate = lin = out
                st.lin[layer] = lin
            if st.mode != RECORD:
                return
            act = parts.act(layer)
            if kind in (GATED, FUSED_GATED):
                st.gains[layer] = act(gate)
            else:
                ratio = act(gate) / torch.where(gate == 0, torch.ones_like(gate), gate)
                st.gains[layer] = torch.where(gate == 0, _limit_at_zero(act, gate.dtype), ratio)

        return hook

    def _up_hook(self, layer: int):
        st = self.state

        def hook(module, args, output):
            st.lin[layer] = output.detach()

        return hook

    def _down_hook(self, layer: int):
        """Down-projection input: checked against gain * lin (record), replaced (replay)."""
        st = self.state

        def hook(module, args):
            if st.mode == RECORD:
                real = args[0]
                rel = _max_rel(st.gains[layer] * st.lin[layer], real)
                st.unit_mismatch = max(st.unit_mismatch, rel)
                if not rel <= 256 * torch.finfo(real.dtype).eps:
                    raise FrozenModelError(
                        f"layer {layer}: gain * linear input differs from the MLP activation by "
                        f"{rel:.3g} (relative); the {self.parts.model_type} MLP changed"
                    )
                return None
            return (st.replay_units[layer], *args[1:])

        return hook

    def _down_output_hook(self, layer: int):
        """Record pass: the down projection's output becomes a leaf (same values).

        The units are the sources; their effects are read off this leaf's gradient g as
        ``unit * (W_down[:, unit] . g)``, so autograd never forms the m-wide unit gradient.
        """
        st = self.state

        def hook(module, args, output):
            if st.mode != RECORD:
                return None
            leaf = output.detach().clone().requires_grad_(True)
            st.out_leaves[layer] = leaf
            return leaf

        return hook

    def _unembedding_hook(self, module, args, output):
        st = self.state
        st.final_hidden = args[0]
        z = output.detach()
        st.z = z
        cap = self.parts.final_logit_softcap
        if st.mode == RECORD and cap is not None:
            safe = torch.where(z == 0, torch.ones_like(z), z)
            capped = cap * torch.tanh(z / cap) / safe
            st.logit_gains = torch.where(z == 0, torch.ones_like(z), capped)

    # ------------------------------------------------------------------------------ passes
    def _run(self) -> None:
        self.model(input_ids=self.input_ids, use_cache=False, **last_logits_only(self.model))
        missing = [i for i, x in enumerate(self.state.lin) if x is None]
        if missing or self.state.z is None:
            raise FrozenModelError(f"the frozen pass did not reach MLP layers {missing} or the "
                                   f"unembedding")

    def _frozen_logits(self) -> torch.Tensor:
        z = self.state.z[0, -1]
        gains = self.state.logit_gains
        return z if gains is None else gains[0, -1] * z

    def record(self) -> FrozenPass:
        """The frozen pass with the real leaf values; records every frozen constant."""
        st = self.state
        st.start(RECORD)
        with torch.enable_grad():
            self._run()
        gains = torch.stack([g[0] for g in st.gains])
        lin = torch.stack([x[0] for x in st.lin])
        lg = st.logit_gains
        return FrozenPass(
            emb_leaf=st.emb_leaf,
            mlp_out_leaves=tuple(st.out_leaves),
            mlp_inputs=tuple(st.mlp_inputs),
            final_hidden=st.final_hidden,
            gains=gains,
            unit_values=gains * lin,
            logits=self._frozen_logits(),
            logit_gains=None if lg is None else lg[0, -1],
            norm_mismatch=st.norm_mismatch,
            unit_mismatch=st.unit_mismatch,
        )

    def replay(self, emb: torch.Tensor | None = None,
               units: torch.Tensor | None = None) -> ReplayValues:
        """The frozen pass with other leaf values (zeros where None) and the recorded constants.

        `emb` is [1, T, d] (or [T, d]), `units` [L, T, m]. Returns the targets' values.
        """
        st = self.state
        if st.emb_leaf is None:
            raise FrozenModelError("replay before record")
        st.replay_emb = (torch.zeros_like(st.emb_leaf) if emb is None
                         else emb.reshape(st.emb_leaf.shape).to(st.emb_leaf.dtype))
        st.replay_units = [torch.zeros_like(lin) if units is None
                           else units[i].reshape(lin.shape).to(lin.dtype)
                           for i, lin in enumerate(st.lin)]
        st.start(REPLAY)
        try:
            with torch.no_grad():
                self._run()
            gains = torch.stack([g[0] for g in st.gains])
            lin = torch.stack([x[0] for x in st.lin])
            return ReplayValues(unit_values=gains * lin, logits=self._frozen_logits())
        finally:
            st.replay_emb = None
            st.replay_units = None


def real_forward(model: nn.Module, parts: ModelParts, input_ids: torch.Tensor,
                 down_pre_hooks: dict[int, Callable] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The real (unfrozen) model: (last-position logits [B, V], unit activations [B, L, T, m]).

    `input_ids` is [T] or [B, T]. `down_pre_hooks` maps a layer to a function of its units
    ([B, T, m] -> [B, T, m]) applied before the down projection (ablations); the activations
    returned are the ones after it.
    """
    ids = input_ids.reshape(-1, input_ids.shape[-1])
    acts: list[torch.Tensor | None] = [None] * parts.n_layers
    handles = []

    def make(layer):
        edit = (down_pre_hooks or {}).get(layer)

        def hook(module, args):
            x = args[0] if edit is None else edit(args[0])
            acts[layer] = x.detach()
            return None if edit is None else (x, *args[1:])

        return hook

    try:
        for layer in range(parts.n_layers):
            handles.append(parts.down(layer).register_forward_pre_hook(make(layer)))
        with torch.no_grad():
            logits = model(input_ids=ids, use_cache=False, **last_logits_only(model)).logits
    finally:
        for h in handles:
            h.remove()
    return logits[:, -1].detach(), torch.stack(acts, dim=1)
