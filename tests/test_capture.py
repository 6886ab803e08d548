"""Head-norm capture during generation, attention, hidden states: against manual recomputation."""

import numpy as np
import pytest
import torch

from scalelens.capture import CaptureError, attention_patterns, capture_head_norms, forward_states
from scalelens.models import load_model

PROMPTS = ["hello there", "a much longer prompt than the others", "x"]


def _manual_norms(lm, prompt, n_steps):
    """Greedy decoding one token at a time without cache; head norms of the last position."""
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    g = lm.geometry
    out = np.zeros((g.n_heads_total, n_steps), dtype=np.float32)
    for step in range(n_steps):
        seen = {}
        hooks = [g.o_module(layer).register_forward_pre_hook(
            lambda m, a, layer=layer, seen=seen: seen.__setitem__(layer, a[0][0, -1].clone()))
            for layer in range(g.n_layers)]
        with torch.no_grad():
            logits = lm.model(ids, use_cache=False).logits[0, -1]
        for h in hooks:
            h.remove()
        for layer in range(g.n_layers):
            per_head = seen[layer].reshape(g.n_heads, g.head_dim).norm(dim=-1)
            out[layer * g.n_heads:(layer + 1) * g.n_heads, step] = per_head.numpy()
        ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
    return out


@pytest.mark.parametrize("arch", ["llama", "gpt_neox", "gemma3_text", "qwen3_4b", "gemma3"])
def test_norms_match_manual_recomputation_and_ignore_padding(tiny_lm, arch):
    lm = tiny_lm(arch)
    batched = capture_head_norms(lm, PROMPTS, max_new_tokens=5, min_new_tokens=5, batch_size=3,
                                 progress=False)
    assert batched.norms.shape == (3, lm.geometry.n_heads_total, 5)
    for i, prompt in enumerate(PROMPTS):
        manual = _manual_norms(lm, prompt, 5)
        np.testing.assert_allclose(batched.norms[i], manual, rtol=1e-4, atol=1e-5)
        alone = capture_head_norms(lm, [prompt], 5, 5, batch_size=1, progress=False)
        np.testing.assert_allclose(batched.norms[i], alone.norms[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(batched.tokens[i], alone.tokens[0])


def test_steps_after_end_of_sequence_are_masked(tiny_lm):
    lm = tiny_lm("llama", 3)
    free = capture_head_norms(lm, PROMPTS[:2], 6, 0, batch_size=2, progress=False)
    eos_token = int(free.tokens[0, 2])  # make prompt 0's third generated token its end
    old = lm.model.generation_config.eos_token_id
    lm.model.generation_config.eos_token_id = eos_token
    try:
        ended = capture_head_norms(lm, PROMPTS[:2], 6, 0, batch_size=2, progress=False)
    finally:
        lm.model.generation_config.eos_token_id = old
    first = int(np.argmax(free.tokens[0] == eos_token)) + 1
    assert ended.lengths[0] == first <= 3
    assert np.isnan(ended.norms[0, :, first:]).all()
    assert np.isfinite(ended.norms[0, :, :first]).all()
    np.testing.assert_allclose(ended.norms[0, :, :first], free.norms[0, :, :first], rtol=1e-5)
    # the final logits are those of the step that produced the end token
    ids = lm.tokenizer(PROMPTS[0], return_tensors="pt")["input_ids"]
    ctx = torch.cat([ids, torch.from_numpy(free.tokens[0, :first - 1])[None]], dim=1)
    with torch.no_grad():
        expected = lm.model(ctx, use_cache=False).logits[0, -1].numpy()
    np.testing.assert_allclose(ended.final_logits[0], expected, rtol=1e-4, atol=1e-4)


def test_min_new_tokens_forces_full_length(tiny_lm):
    lm = tiny_lm("qwen2")
    eos = lm.tokenizer.eos_token_id
    lm.model.generation_config.eos_token_id = eos
    series = capture_head_norms(lm, PROMPTS, 4, 4, batch_size=2, progress=False)
    assert (series.lengths == 4).all()
    assert not (series.tokens == eos).any()


def test_same_input_same_bytes(tiny_lm, tmp_path):
    from scalelens.io import save_npz

    lm = tiny_lm("phi")
    paths = []
    for i in range(2):
        s = capture_head_norms(lm, PROMPTS, 3, 3, batch_size=2, progress=False)
        paths.append(save_npz(tmp_path / f"run{i}.npz", norms=s.norms, tokens=s.tokens))
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_attention_patterns_are_distributions(tiny_lm):
    lm = tiny_lm("gemma2")
    att = attention_patterns(lm, "the attention test", max_length=8)
    g = lm.geometry
    assert att.shape == (g.n_layers, g.n_heads, 8, 8)
    np.testing.assert_allclose(att.sum(-1), 1.0, rtol=1e-5)
    assert np.allclose(np.triu(att, k=1), 0)  # causal


def test_attention_needs_eager():
    lm = load_model("tiny:llama", attn_implementation="sdpa")
    with pytest.raises(CaptureError, match="eager"):
        attention_patterns(lm, "hi")


@pytest.mark.parametrize("arch", ["llama", "gpt_neox", "phi", "gpt2", "gemma3_text_1b", "gemma3"])
def test_forward_states_layout_and_nll(tiny_lm, arch):
    lm = tiny_lm(arch)
    fs = forward_states(lm, "which hidden state is which")
    n = lm.geometry.n_layers
    assert fs.hidden_states.shape[0] == n + 1 and fs.block_outputs.shape[0] == n
    # hidden_states[i] is block i-1's output, except the last one, which has the final norm
    np.testing.assert_allclose(fs.hidden_states[1:n], fs.block_outputs[:n - 1], rtol=1e-5,
                               atol=1e-6)
    assert not np.allclose(fs.hidden_states[n], fs.block_outputs[n - 1], atol=1e-3)
    ids = torch.tensor(fs.input_ids)[None]
    with torch.no_grad():
        logits = lm.model(ids).logits[0, :-1]
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item()
    assert fs.nll_nats == pytest.approx(nll, rel=1e-5)
