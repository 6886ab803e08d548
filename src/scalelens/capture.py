"""What heads and layers do, read off a running model.

- `capture_head_norms`: the L2 norm of every query head's output at every generated token during
  greedy generation (the synergy study's time series). A head's output is its slice of the input of
  the attention output projection. Prompts are batched with left padding; at each step only the
  newest position is read, which is always a real token, and steps after a prompt's end-of-sequence
  are NaN, so padding never enters a series.
- `attention_patterns`, `forward_states`: eager attention per head; hidden states per layer with the
  raw block outputs taken before the final norm, and per-sequence NLL from the same pass.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria

from scalelens.batching import last_logits_only
from scalelens.errors import ScalelensError
from scalelens.models.geometry import HeadGeometry
from scalelens.models.loading import LoadedModel

log = logging.getLogger(__name__)


class CaptureError(ScalelensError):
    pass


@dataclass(frozen=True)
class HeadSeries:
    """Per-head output norms over generation. Flat head = layer * n_heads + head."""

    norms: np.ndarray  # float32 [prompt, head, step]; NaN after a prompt's end
    lengths: np.ndarray  # int64 [prompt]: valid steps (the end-of-sequence step included)
    tokens: np.ndarray  # int64 [prompt, step]: generated ids (pad id after the end)
    final_logits: np.ndarray  # float32 [prompt, vocab]: logits at each prompt's last valid step
    prompt_texts: tuple[str, ...]
    generated_texts: tuple[str, ...]
    n_layers: int
    n_heads: int


def format_prompts(tokenizer, texts, chat_template: bool) -> list[str]:
    """Raw prompts, or the tokenizer's chat template with a generation prompt when asked."""
    if not chat_template:
        return list(texts)
    if not getattr(tokenizer, "chat_template", None):
        raise CaptureError("chat_template is true but this tokenizer has no chat template")
    return [tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False,
                                          add_generation_prompt=True) for t in texts]


class _HeadNormRecorder:
    """Forward pre-hooks on every output projection: per call, the newest position's head norms."""

    def __init__(self, geometry: HeadGeometry):
        self.geometry = geometry
        self.steps: list[list[torch.Tensor]] = [[] for _ in range(geometry.n_layers)]
        self.handles = []

    def _hook(self, layer: int):
        g = self.geometry

        def pre_hook(module, args):
            x = args[0][:, -1, :]  # [batch, n_heads * head_dim], newest position
            per_head = x.reshape(x.shape[0], g.n_heads, g.head_dim)
            self.steps[layer].append(torch.linalg.vector_norm(per_head.float(), dim=-1))

        return pre_hook

    def __enter__(self):
        for layer in range(self.geometry.n_layers):
            mod = self.geometry.o_module(layer)
            self.handles.append(mod.register_forward_pre_hook(self._hook(layer)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def stacked(self) -> torch.Tensor:
        """[batch, n_layers * n_heads, steps]."""
        per_layer = [torch.stack(s, dim=-1) for s in self.steps]  # each [batch, n_heads, steps]
        return torch.cat(per_layer, dim=1)


class _LastLogits(LogitsProcessor):
    """Keeps, per row, the raw logits of the newest step of rows that have not ended yet."""

    def __init__(self, n_prompt_tokens: int, eos_ids: set[int], lm_head: torch.nn.Module):
        self.n_prompt_tokens = n_prompt_tokens
        self.eos_ids = torch.tensor(sorted(eos_ids), dtype=torch.long)
        self.final: torch.Tensor | None = None
        self.raw: torch.Tensor | None = None
        self.handle = lm_head.register_forward_hook(self._grab)

    def _grab(self, module, args, output):
        self.raw = output[:, -1, :].float()

    def __call__(self, input_ids, scores):
        generated = input_ids[:, self.n_prompt_tokens:]
        if self.eos_ids.numel():
            ended = torch.isin(generated, self.eos_ids.to(generated.device)).any(dim=1)
        else:
            ended = torch.zeros(generated.shape[0], dtype=torch.bool, device=generated.device)
        if self.final is None:
            self.final = self.raw.clone()
        else:
            self.final[~ended] = self.raw[~ended]
        return scores

    def close(self):
        self.handle.remove()


class _Progress(StoppingCriteria):
    def __init__(self, bar):
        self.bar = bar

    def __call__(self, input_ids, scores, **kwargs):
        self.bar.update(1)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def _eos_ids(lm: LoadedModel) -> set[int]:
    ids = lm.model.generation_config.eos_token_id
    if ids is None:
        ids = lm.tokenizer.eos_token_id
    if ids is None:
        return set()
    return {int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids])}


def _valid_lengths(tokens: torch.Tensor, eos_ids: set[int]) -> torch.Tensor:
    """Steps up to and including the first end-of-sequence token, else all steps."""
    n_steps = tokens.shape[1]
    if not eos_ids:
        return torch.full((tokens.shape[0],), n_steps, dtype=torch.long)
    is_eos = torch.isin(tokens, torch.tensor(sorted(eos_ids), device=tokens.device))
    first = torch.where(is_eos.any(1), is_eos.float().argmax(1) + 1,
                        torch.full_like(is_eos[:, 0], n_steps, dtype=torch.long))
    return first.long().cpu()


def generate_batch(lm: LoadedModel, texts: list[str], max_new_tokens: int, min_new_tokens: int,
                   record: bool = True, bar=None):
    """Greedy generation for one left-padded batch; head norms recorded when `record`."""
    tok = lm.tokenizer
    enc = tok(texts, return_tensors="pt", padding=True).to(lm.device)
    n_prompt = enc["input_ids"].shape[1]
    eos = _eos_ids(lm)
    last = _LastLogits(n_prompt, eos, lm.model.get_output_embeddings())
    stopping = [_Progress(bar)] if bar is not None else []
    recorder = _HeadNormRecorder(lm.geometry) if record else contextlib.nullcontext()
    try:
        with torch.inference_mode(), recorder:
            out = lm.model.generate(
                **enc, do_sample=False, max_new_tokens=max_new_tokens,
                min_new_tokens=min_new_tokens, pad_token_id=tok.pad_token_id,
                logits_processor=LogitsProcessorList([last]), stopping_criteria=stopping,
                temperature=None, top_p=None, top_k=None,
            )
    finally:
        last.close()
    generated = out[:, n_prompt:]
    norms = recorder.stacked() if record else None
    return generated, norms, last.final, eos


def capture_head_norms(lm: LoadedModel, texts, max_new_tokens: int, min_new_tokens: int = 0,
                       batch_size: int = 8, chat_template: bool = False,
                       progress: bool = True) -> HeadSeries:
    """Per-head output norms at every generated token for every prompt (greedy decoding)."""
    if max_new_tokens < 1:
        raise CaptureError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not 0 <= min_new_tokens <= max_new_tokens:
        raise CaptureError(f"min_new_tokens must be in 0..max_new_tokens, got {min_new_tokens}")
    prompts = format_prompts(lm.tokenizer, texts, chat_template)
    g = lm.geometry
    n, steps = len(prompts), max_new_tokens
    norms = np.full((n, g.n_heads_total, steps), np.nan, dtype=np.float32)
    tokens = np.full((n, steps), lm.tokenizer.pad_token_id, dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    final_logits = None
    n_batches = -(-n // batch_size)
    with tqdm(total=n_batches * steps, desc=f"generate {lm.key}", unit="step",
              disable=not progress) as bar:
        for start in range(0, n, batch_size):
            batch = prompts[start:start + batch_size]
            gen, batch_norms, batch_logits, eos = generate_batch(
                lm, batch, max_new_tokens, min_new_tokens, bar=bar)
            got = gen.shape[1]  # generate stops early when every row has ended
            lens = _valid_lengths(gen, eos)
            bn = batch_norms.cpu().numpy()
            for i, length in enumerate(lens.tolist()):
                row = start + i
                lengths[row] = length
                norms[row, :, :length] = bn[i, :, :length]
                tokens[row, :got] = gen[i].cpu().numpy()
            if final_logits is None:
                final_logits = np.zeros((n, batch_logits.shape[-1]), dtype=np.float32)
            final_logits[start:start + len(batch)] = batch_logits.cpu().numpy()
            bar.update(steps - got)  # steps skipped when every row ended early
    decoded = tuple(lm.tokenizer.decode(tokens[i, :lengths[i]], skip_special_tokens=True)
                    for i in range(n))
    return HeadSeries(norms, lengths, tokens, final_logits, tuple(prompts), decoded,
                      g.n_layers, g.n_heads)


def _require_eager(lm: LoadedModel) -> None:
    impl = getattr(lm.model.config, "_attn_implementation", None)
    if impl != "eager":
        raise CaptureError(
            f"attention patterns need eager attention, but {lm.key} runs {impl!r}; load it with "
            f"attn_implementation='eager'"
        )


def attention_patterns(lm: LoadedModel, text: str, max_length: int | None = None) -> np.ndarray:
    """Attention of every head for one prompt alone (no padding, no cache): [layer, head, q, k]."""
    _require_eager(lm)
    enc = lm.tokenizer(text, return_tensors="pt", truncation=max_length is not None,
                       max_length=max_length).to(lm.device)
    with torch.inference_mode():
        out = lm.model(**enc, output_attentions=True, use_cache=False,
                       **last_logits_only(lm.model))
    if not out.attentions or any(a is None for a in out.attentions):
        raise CaptureError(f"{lm.key} returned no attention weights")
    return torch.stack([a[0] for a in out.attentions]).float().cpu().numpy()


@dataclass(frozen=True)
class ForwardStates:
    """One sequence's pass: transformers' hidden states, raw block outputs, NLL."""

    input_ids: np.ndarray  # [seq]
    hidden_states: np.ndarray  # [n_layers + 1, seq, d]: embeddings, blocks..., final norm applied
    block_outputs: np.ndarray  # [n_layers, seq, d]: every block's output, before any final norm
    nll_nats: float  # mean next-token negative log-likelihood of the sequence


def forward_states(lm: LoadedModel, text: str, max_length: int | None = None,
                   with_nll: bool = True) -> ForwardStates:
    """Hidden states, block outputs (hooked, before the final norm) and NLL from one pass.
    Without `with_nll` the output head sees the last position only and `nll_nats` is NaN."""
    enc = lm.tokenizer(text, return_tensors="pt", truncation=max_length is not None,
                       max_length=max_length).to(lm.device)
    blocks = lm.geometry.blocks
    grabbed: list[torch.Tensor | None] = [None] * len(blocks)

    def grab(i):
        def hook(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            grabbed[i] = out[0].float().cpu()
        return hook

    handles = [b.register_forward_hook(grab(i)) for i, b in enumerate(blocks)]
    try:
        with torch.inference_mode():
            head = {"labels": enc["input_ids"]} if with_nll else last_logits_only(lm.model)
            out = lm.model(**enc, output_hidden_states=True, use_cache=False, **head)
    finally:
        for h in handles:
            h.remove()
    hidden = torch.stack([h[0].float().cpu() for h in out.hidden_states]).numpy()
    return ForwardStates(enc["input_ids"][0].cpu().numpy(), hidden,
                         torch.stack(grabbed).numpy(),
                         float(out.loss) if with_nll else float("nan"))


def forward_states_batch(lm: LoadedModel, texts, max_length: int | None = None,
                         with_block_outputs: bool = True,
                         with_nll: bool = True) -> list[ForwardStates]:
    """`forward_states` for several sequences in one right-padded pass; one result per text.

    Each text is tokenised alone (as `forward_states` does) and padded on the right, so every
    real token keeps its position and, under causal attention, never sees a pad token; states
    are cut back to each text's own length and the NLL is computed over its real tokens only.
    Equal to one `forward_states` call per text up to float rounding. Without
    `with_block_outputs`, no hooks run and `block_outputs` has zero blocks; without `with_nll`,
    the output head sees the last position only and `nll_nats` is NaN.
    """
    texts = list(texts)
    if not texts:
        return []
    tok = lm.tokenizer
    ids = [tok(t, truncation=max_length is not None, max_length=max_length)["input_ids"]
           for t in texts]
    lengths = [len(x) for x in ids]
    if min(lengths) < 2:
        short = texts[lengths.index(min(lengths))]
        raise CaptureError(f"{short!r} has {min(lengths)} token(s); the NLL of a sequence needs "
                           f"at least 2")
    width = max(lengths)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, :len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, :len(x)] = 1
    input_ids, mask = input_ids.to(lm.device), mask.to(lm.device)
    blocks = lm.geometry.blocks if with_block_outputs else []
    grabbed: list[torch.Tensor | None] = [None] * len(blocks)

    def grab(i):
        def hook(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            grabbed[i] = out.float().cpu()
        return hook

    handles = [b.register_forward_hook(grab(i)) for i, b in enumerate(blocks)]
    try:
        with torch.inference_mode():
            out = lm.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True,
                           use_cache=False, **({} if with_nll else last_logits_only(lm.model)))
    finally:
        for h in handles:
            h.remove()
    hidden = torch.stack([h.float().cpu() for h in out.hidden_states], dim=1)  # [b, L+1, T, d]
    block_out = torch.stack(grabbed, dim=1) if blocks else None
    results = []
    for i, n in enumerate(lengths):
        b = (block_out[i, :, :n].numpy() if block_out is not None
             else np.zeros((0, n, hidden.shape[-1]), dtype=np.float32))
        nll = float("nan")
        if with_nll:
            z = out.logits[i, :n - 1].float()  # row by row: a [batch, seq, vocab] copy is large
            nll = float((torch.logsumexp(z, dim=-1)
                         - z.gather(-1, input_ids[i, 1:n, None])[:, 0]).mean())
        results.append(ForwardStates(input_ids[i, :n].cpu().numpy(), hidden[i, :, :n].numpy(), b,
                                     nll))
    return results
