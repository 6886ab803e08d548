"""Tiny random models built from transformers configs: offline, seeded, for tests and dry runs.

Each covers one architecture the geometry supports, at a size that runs in milliseconds. The
tokenizer is a byte-level one built in memory, so nothing is ever downloaded.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from scalelens.models.tiny_configs import _BYTE_SPECIALS, _COMMON, TINY_CONFIGS


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (ids 3..258 are the bytes) that adds <bos> like Llama-style models."""
    vocab = {tok: i for i, tok in enumerate(_BYTE_SPECIALS)}
    for b, ch in enumerate(_byte_chars()):
        vocab[ch] = b + len(_BYTE_SPECIALS)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
         pre_tokenizers.Split(pattern="", behavior="isolated")]
    )
    tok.decoder = decoders.ByteLevel()
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                            special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                   eos_token="<eos>", padding_side="left",
                                   model_input_names=["input_ids", "attention_mask"])


def _byte_chars() -> list[str]:
    """The 256 printable stand-ins ByteLevel uses for bytes, in byte order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def tiny_model(arch: str, seed: int = 0, dtype: torch.dtype = torch.float32,
               attn_implementation: str = "eager"):
    """A randomly initialised causal LM of architecture `arch`, identical for identical seeds."""
    if arch not in TINY_CONFIGS:
        raise ValueError(f"no tiny config for {arch!r}; choose one of {', '.join(TINY_CONFIGS)}")
    kwargs = dict(TINY_CONFIGS[arch])
    model_type = kwargs.pop("model_type", arch)
    if "text_config" in kwargs:  # a multimodal wrapper: the text model gets the common fields
        kwargs["text_config"] = {**_COMMON, **kwargs["text_config"]}
    elif model_type != "gpt2":
        kwargs = {**_COMMON, **kwargs}
    config = AutoConfig.for_model(model_type, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype,
                                                 attn_implementation=attn_implementation)
    model.eval()
    return model
