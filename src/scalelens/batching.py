"""Batched forward passes over prompts of different lengths: left padding, masks, positions.

With left padding every prompt's last real token sits at position -1 of the batch, so next-token
distributions are read there. Position ids are counted over real tokens only (cumulative sum of
the attention mask), as `generate` does, so a padded prompt sees the same positions as alone --
this matters for absolute position embeddings (GPT-2) and is harmless for rotary ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
import torch

from scalelens.models.loading import LoadedModel


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (longest first), so little is padding."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def encode_left_padded(lm: LoadedModel, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    """Tokenise with left padding (whatever the tokenizer's default), on the model's device."""
    enc = lm.tokenizer(list(texts), return_tensors="pt", padding=True, padding_side="left")
    return {"input_ids": enc["input_ids"].to(lm.device),
            "attention_mask": enc["attention_mask"].to(lm.device)}


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over the real tokens of each row; padding positions get 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def last_position_logits(lm: LoadedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits [batch, vocab] (float32) at the last position of a left-padded batch, one forward."""
    kwargs = {"logits_to_keep": 1} if _accepts_logits_to_keep(lm.model) else {}
    with torch.inference_mode():
        out = lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=position_ids_from_mask(batch["attention_mask"]),
                       use_cache=False, **kwargs)
    return out.logits[:, -1, :].float()


def all_position_logits(lm: LoadedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits [batch, seq, vocab] (float32) at every position of a left-padded batch."""
    with torch.inference_mode():
        out = lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=position_ids_from_mask(batch["attention_mask"]),
                       use_cache=False)
    return out.logits.float()
