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


def last_logits_only(model: torch.nn.Module) -> dict:
    """``logits_to_keep=1`` where the model takes it, else nothing: for a pass that needs the
    logits of the last position at most, the output head then sees one position (it is the
    largest matrix of a small model with a large vocabulary: Gemma 3 270M's is 168M of 268M)."""
    return {"logits_to_keep": 1} if _accepts_logits_to_keep(model) else {}


def logits_tail(lm: LoadedModel, batch: dict[str, torch.Tensor], keep: int) -> torch.Tensor:
    """Logits [batch, keep, vocab] (float32) at the last `keep` positions, one forward pass.

    Only those positions go through the output head when the model accepts `logits_to_keep`
    (a large saving for big vocabularies).
    """
    kwargs = {"logits_to_keep": keep} if _accepts_logits_to_keep(lm.model) else {}
    with torch.inference_mode():
        out = lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=position_ids_from_mask(batch["attention_mask"]),
                       use_cache=False, **kwargs)
    return out.logits[:, -keep:, :].float()


def last_position_logits(lm: LoadedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits [batch, vocab] (float32) at the last position of a left-padded batch."""
    return logits_tail(lm, batch, 1)[:, -1, :]


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Token-id rows of different lengths as a left-padded batch with its attention mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, width - len(r):] = torch.tensor(list(r), dtype=torch.long)
        mask[k, width - len(r):] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
