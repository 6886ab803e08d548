"""The seeds' capture pitfalls, proven on tiny models of every architecture family in the registry.

* Which hidden state is which: hidden_states[i] is block i-1's output for 1 <= i < n_layers and
  hidden_states[-1] is the FINAL NORM applied to the last block's output (so the seed's
  G_seed = |h[-2]| / |h[-3]| is the second-to-last block's gain).
* use_cache is off in every capture path.
* Padding: SI attention is captured per prompt alone; a padded batch read the seed's way
  ([:valid_len, :valid_len]) would give other entropies.
* BOS: position 0 is skipped in the pooling only where it is the BOS token.
"""

import dataclasses

import numpy as np
import pytest
import torch
from tests_paths import stage_module
from tokenizers import processors

from scalelens.capture import attention_patterns, forward_states, forward_states_batch
from scalelens.models import REGISTRY, load_model
from scalelens.models.tiny import TINY_CONFIGS, byte_tokenizer
from scalelens.sweeps import gain
from scalelens.sweeps import si as S
from scalelens.sweeps import uniformity as U

# The registry's gemma3 entries (4B+) are multimodal wrappers around gemma3_text.
# every registry architecture, plus the tiny models shaped like the real checkpoints
FAMILIES = sorted({s.architecture for s in REGISTRY.values()} | {"qwen3_4b", "gemma3_text_1b"})
FINAL_NORMS = ("model.norm", "model.language_model.norm", "model.final_layernorm",
               "gpt_neox.final_layer_norm", "transformer.ln_f")
TEXTS = ["which hidden state is which?", "a short one", "and a third, longer statement here"]


@pytest.fixture(scope="module")
def tiny():
    cache = {}

    def get(arch):
        if arch not in cache:
            cache[arch] = load_model(f"tiny:{arch}")
        return cache[arch]

    return get


def final_norm(model):
    for path in FINAL_NORMS:
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            return obj
    raise AssertionError(f"no final norm found on {type(model).__name__}")


def block_inputs(lm, text):
    """The hidden states entering each block, read with pre-hooks (independent of the capture)."""
    seen = {}

    def grab(i):
        def hook(module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            seen[i] = x[0].float().numpy().copy()
        return hook

    handles = [b.register_forward_pre_hook(grab(i), with_kwargs=True)
               for i, b in enumerate(lm.geometry.blocks)]
    try:
        with torch.no_grad():
            lm.model(**lm.tokenizer(text, return_tensors="pt"), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return np.stack([seen[i] for i in range(len(seen))])


def test_every_registry_family_has_a_tiny_model():
    assert set(FAMILIES) <= set(TINY_CONFIGS)
    assert {"gpt_neox", "llama", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi",
            "phi3"} <= set(FAMILIES)


@pytest.mark.parametrize("arch", FAMILIES)
def test_which_hidden_state_is_which(tiny, arch):
    lm = tiny(arch)
    fs = forward_states(lm, TEXTS[0])
    h, b = fs.hidden_states, fs.block_outputs
    n = lm.geometry.n_layers
    assert h.shape[0] == n + 1 and b.shape[0] == n
    ins = block_inputs(lm, TEXTS[0])
    # h[0] is what enters block 0 (gemma's scaled embeddings included); h[i] = block i-1's output
    np.testing.assert_allclose(h[0], ins[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h[1:n], b[:n - 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ins[1:], b[:n - 1], rtol=1e-5, atol=1e-6)
    # h[-1] is the final norm applied to the last block's output, not the raw output
    with torch.no_grad():
        normed = final_norm(lm.model)(torch.from_numpy(b[-1])[None])[0].numpy()
    np.testing.assert_allclose(h[-1], normed, rtol=1e-4, atol=1e-5)
    assert not np.allclose(h[-1], b[-1], rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("arch", FAMILIES)
def test_seed_gain_is_the_second_to_last_block_and_g_last_the_last(tiny, arch):
    lm = tiny(arch)
    states = [forward_states(lm, t) for t in TEXTS]
    hidden = np.stack([np.linalg.norm(s.hidden_states[:, -1], axis=-1) for s in states])
    blocks = np.stack([np.linalg.norm(s.block_outputs[:, -1], axis=-1) for s in states])
    curve = gain.block_gain_curve(hidden, blocks)  # |block i output| / |block i input|
    np.testing.assert_allclose(gain.g_seed_per_prompt(hidden), curve[:, -2], rtol=1e-5)
    np.testing.assert_allclose(gain.g_last_per_prompt(hidden, blocks), curve[:, -1], rtol=1e-5)
    assert not np.allclose(gain.g_with_ln_per_prompt(hidden), curve[:, -1], rtol=1e-3)
    layout = gain.hidden_state_layout(hidden, blocks)
    assert layout.intermediate_match_block_outputs and not layout.last_hidden_is_raw_last_block


@pytest.mark.parametrize("arch", FAMILIES)
def test_use_cache_is_off_in_every_capture_path(tiny, arch):
    lm = tiny(arch)
    calls = []
    handle = lm.model.register_forward_pre_hook(
        lambda m, args, kwargs: calls.append(kwargs.get("use_cache")), with_kwargs=True)
    try:
        attention_patterns(lm, TEXTS[0], max_length=16)
        forward_states(lm, TEXTS[0])
        forward_states_batch(lm, TEXTS)
    finally:
        handle.remove()
    assert calls == [False, False, False]


@pytest.mark.parametrize("arch", FAMILIES)
def test_batched_statement_passes_equal_one_pass_per_statement(tiny, arch):
    lm = tiny(arch)
    batched = forward_states_batch(lm, TEXTS)
    for text, fb in zip(TEXTS, batched):
        alone = forward_states(lm, text)
        np.testing.assert_array_equal(fb.input_ids, alone.input_ids)
        np.testing.assert_allclose(fb.hidden_states, alone.hidden_states, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(fb.block_outputs, alone.block_outputs, rtol=1e-4, atol=1e-5)
        assert fb.nll_nats == pytest.approx(alone.nll_nats, rel=1e-5)


@pytest.mark.parametrize("arch", FAMILIES)
def test_passes_without_nll_send_one_position_through_the_head_and_keep_the_states(tiny, arch):
    lm = tiny(arch)
    head_rows = []
    handle = lm.model.get_output_embeddings().register_forward_hook(
        lambda m, args, out: head_rows.append(args[0].shape[-2]))
    try:
        full = forward_states_batch(lm, TEXTS)
        lean = forward_states_batch(lm, TEXTS, with_nll=False)
        one_full, one_lean = forward_states(lm, TEXTS[0]), forward_states(lm, TEXTS[0],
                                                                          with_nll=False)
        attention_patterns(lm, TEXTS[0], max_length=16)
    finally:
        handle.remove()
    width = max(fs.input_ids.size for fs in full)
    assert head_rows == [width, 1, full[0].input_ids.size, 1, 1]
    for a, b in zip(full + [one_full], lean + [one_lean]):
        np.testing.assert_array_equal(a.hidden_states, b.hidden_states)
        np.testing.assert_array_equal(a.block_outputs, b.block_outputs)
        assert np.isfinite(a.nll_nats) and np.isnan(b.nll_nats)


def test_si_attention_is_per_prompt_alone_and_padding_would_change_it(tiny):
    lm = tiny("llama")
    short, long_ = "short prompt", "a considerably longer prompt that forces padding"
    alone = attention_patterns(lm, short, max_length=128)
    ids = lm.tokenizer(short, return_tensors="pt")["input_ids"]
    assert alone.shape[-1] == alone.shape[-2] == ids.shape[1]  # no pad position anywhere
    with torch.no_grad():
        manual = lm.model(ids, output_attentions=True, use_cache=False).attentions
    np.testing.assert_allclose(alone, torch.stack([a[0] for a in manual]).numpy(), atol=1e-6)

    enc = lm.tokenizer([short, long_], return_tensors="pt", padding=True)  # left padding
    with torch.no_grad():
        out = lm.model(**enc, output_attentions=True, use_cache=False)
    padded = torch.stack([a[0] for a in out.attentions]).numpy()  # row 0 = the short prompt
    valid = int(enc["attention_mask"][0].sum())
    ent_alone = S.normalized_attention_entropy(alone)
    ent_seed_slice = S.normalized_attention_entropy(padded, valid)  # [:valid, :valid]: pads
    assert not np.allclose(ent_alone, ent_seed_slice, atol=1e-3)
    real = padded[:, :, -valid:, -valid:]  # the real rows/keys: the same distribution
    np.testing.assert_allclose(S.normalized_attention_entropy(real), ent_alone, atol=1e-4)


def test_si_stage_measures_each_prompt_alone(tiny):
    lm = tiny("qwen3")
    texts = ["first prompt", "the second prompt is longer", "third"]
    ents, lengths = stage_module("si").prompt_entropies(lm, texts, 8, "test")
    assert lengths.tolist() == [min(8, len(lm.tokenizer(t)["input_ids"])) for t in texts]
    for t, e in zip(texts, ents):
        np.testing.assert_allclose(e, S.normalized_attention_entropy(
            attention_patterns(lm, t, 8)), atol=1e-12)


@pytest.mark.parametrize("arch", ["qwen3", "gemma3", "gpt2"])
def test_gain_stage_batches_equal_one_pass_per_prompt(tiny, arch):
    lm = tiny(arch)
    texts = TEXTS + ["x y", "a fifth prompt, the longest of them all by some way"]
    norms = stage_module("gain").last_token_norms
    hidden1, blocks1, n1 = norms(lm, texts, 1)
    for batch_size in (2, 8):
        hidden, blocks, n = norms(lm, texts, batch_size)
        assert n.tolist() == n1.tolist() == [len(lm.tokenizer(t)["input_ids"]) for t in texts]
        np.testing.assert_allclose(hidden, hidden1, rtol=1e-5)
        np.testing.assert_allclose(blocks, blocks1, rtol=1e-5)
    fs = forward_states(lm, texts[1])  # row 1 is prompt 1's own last token, whatever the order
    np.testing.assert_allclose(hidden1[1], np.linalg.norm(
        fs.hidden_states[:, -1].astype(np.float64), axis=-1), rtol=1e-12)


def no_bos_tokenizer(keep_bos_token: bool):
    """Byte tokenizer not prepending BOS; with keep_bos_token it still defines one (Pythia)."""
    tok = byte_tokenizer()
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="$A", pair="$A $B", special_tokens=[])
    if not keep_bos_token:
        tok.bos_token = None
    return tok


@pytest.mark.parametrize("variant", ["bos", "no_bos_token", "bos_token_not_prepended"])
def test_bos_rule_in_the_uniformity_pooling(tiny, variant):
    base = tiny("gpt_neox")
    tok = base.tokenizer if variant == "bos" else no_bos_tokenizer(
        keep_bos_token=variant == "bos_token_not_prepended")
    lm = dataclasses.replace(base, tokenizer=tok)
    texts = ["statement one is here", "two"]
    layers = (0, 1, 2)
    stage = stage_module("uniformity")
    emb, nll, rules = stage.pooled_states(lm, texts, ["a", "b"], layers, batch_size=2)
    for i, text in enumerate(texts):
        fs = forward_states(lm, text)
        first_is_bos = fs.input_ids[0] == tok.bos_token_id
        assert first_is_bos == (variant == "bos")
        start = 1 if variant == "bos" else 0  # a tokenizer without BOS keeps position 0
        expected = fs.hidden_states[list(layers), start:].mean(axis=1)
        np.testing.assert_allclose(emb[:, i], expected, rtol=1e-4, atol=1e-5)
        assert nll[i] == pytest.approx(fs.nll_nats, rel=1e-5)
    assert rules[0].startswith("skipped" if variant == "bos" else "kept")
    assert rules[0] == U.bos_rule(lm.tokenizer(texts[0])["input_ids"][0], tok.bos_token_id).rule
