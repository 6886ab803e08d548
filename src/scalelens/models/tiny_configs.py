"""The tiny models' configurations, importable without torch (params validation reads the names).

Each covers one architecture the geometry supports, at a size that runs in milliseconds; the last
four are shaped like real checkpoints. `scalelens.models.tiny` builds them.
"""

TINY_VOCAB = 300  # 256 bytes + specials, padded
_BYTE_SPECIALS = ["<pad>", "<bos>", "<eos>"]

_COMMON = {"vocab_size": TINY_VOCAB, "max_position_embeddings": 256, "pad_token_id": 0,
               "bos_token_id": 1, "eos_token_id": 2}

TINY_CONFIGS: dict[str, dict] = {
    "llama": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8},
    "qwen2": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "num_key_value_heads": 2},
    "qwen3": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8},
    "gemma2": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
                   "sliding_window": 16},
    "gemma3_text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
                        "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 8,
                        "sliding_window": 16},
    "phi": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 4, "partial_rotary_factor": 0.5},
    "phi3": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "num_key_value_heads": 2},
    "gpt_neox": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "rotary_pct": 0.25},
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 256, "vocab_size": TINY_VOCAB,
                 "bos_token_id": 1, "eos_token_id": 2},
    # Shaped like the real checkpoints: head_dim != hidden / heads and the real GQA ratios.
    # Qwen3-4B: 32 query heads over 8 kv heads (4:1), head_dim 128 against 2560 / 32 = 80.
    "qwen3_4b": {"model_type": "qwen3", "hidden_size": 40, "intermediate_size": 64,
                 "num_hidden_layers": 3, "num_attention_heads": 8, "num_key_value_heads": 2,
                 "head_dim": 16},
    # Gemma 3 1B: 4 query heads over 1 kv head, head_dim 256 against 1152 / 4 = 288.
    "gemma3_text_1b": {"model_type": "gemma3_text", "hidden_size": 36, "intermediate_size": 64,
                       "num_hidden_layers": 3, "num_attention_heads": 4,
                       "num_key_value_heads": 1, "head_dim": 12, "sliding_window": 16},
    # Phi-3-medium: fused QKV with 40 query heads over 10 kv heads (4:1).
    "phi3_medium": {"model_type": "phi3", "hidden_size": 32, "intermediate_size": 64,
                    "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2},
    # Gemma 3 4B and larger load as the multimodal Gemma3ForConditionalGeneration (the text
    # model under model.language_model): 8 query heads over 4 kv heads, head_dim 256 against
    # 2560 / 8 = 320, and a vision tower the studies never run.
    "gemma3": {"model_type": "gemma3",
               "text_config": {"hidden_size": 40, "intermediate_size": 64,
                               "num_hidden_layers": 3, "num_attention_heads": 8,
                               "num_key_value_heads": 4, "head_dim": 16, "sliding_window": 16},
               "vision_config": {"hidden_size": 16, "intermediate_size": 32,
                                 "num_hidden_layers": 1, "num_attention_heads": 2,
                                 "image_size": 28, "patch_size": 14},
               "mm_tokens_per_image": 4, "image_token_index": 299, "boi_token_index": 297,
               "eoi_token_index": 298},
}


TINY_CONFIG_NAMES: tuple[str, ...] = tuple(TINY_CONFIGS)
