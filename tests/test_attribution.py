"""Neuron-level attribution (scalelens.attribution) on tiny random float64 models of every family.

Each model gets random biases and normalisation weights (tiny models start with zeros / ones),
so bias terms, Gemma's (1 + w) norms and LayerNorm biases are all exercised.
"""

import numpy as np
import pytest
import torch

from scalelens.attribution import AttributionSettings, attribute_prompt
from scalelens.attribution.architecture import (
    SUPPORTED_ARCHITECTURES,
    UnsupportedModelError,
    model_parts,
)
from scalelens.attribution.attribute import select_logit_targets
from scalelens.attribution.frozen import FrozenModel, real_forward
from scalelens.attribution.rows import RowComputer
from scalelens.models import load_model

# every registry architecture; gemma3 is the multimodal wrapper of Gemma 3 4B and larger
ARCHS = ("llama", "qwen2", "qwen3", "gemma2", "gemma3_text", "gemma3", "phi", "phi3", "gpt_neox",
         "gpt2")
PROMPT = "Mary gave the cat to"
RMS_ARCHS = {"llama", "qwen2", "qwen3", "gemma2", "gemma3_text", "gemma3", "phi3"}

_MODELS = {}


def tiny64(arch: str):
    """A float64 tiny model with random biases and norm weights (cached per architecture)."""
    if arch not in _MODELS:
        lm = load_model(f"tiny:{arch}", dtype=torch.float64)
        gen = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for param in lm.model.parameters():
                if param.ndim == 1:
                    param.add_(0.2 * torch.randn(param.shape, generator=gen, dtype=param.dtype))
        _MODELS[arch] = lm
    return _MODELS[arch]


def prompt_ids(lm) -> torch.Tensor:
    return lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"][0]


def test_every_registry_architecture_is_covered():
    assert set(SUPPORTED_ARCHITECTURES) == set(ARCHS)


@pytest.mark.parametrize("arch", ARCHS)
def test_frozen_pass_reproduces_real_model_and_is_affine(arch):
    lm = tiny64(arch)
    parts = model_parts(lm.model)
    ids = prompt_ids(lm)
    real_logits, real_acts = real_forward(lm.model, parts, ids)
    with FrozenModel(lm.model, parts, ids) as fz:
        fp = fz.record()
        emb = fp.emb_leaf.detach()
        units = fp.unit_values.detach()
        same = fz.replay(emb, units)
        delta_e = 0.3 * torch.randn(emb.shape, generator=torch.Generator().manual_seed(1),
                                    dtype=emb.dtype)
        delta_u = torch.zeros_like(units)
        delta_u[0, 2, 5] = 0.7
        one = fz.replay(emb + delta_e, units + delta_u)
        two = fz.replay(emb + 2 * delta_e, units + 2 * delta_u)
    # frozen == real: float32 rounding inside the real RMS norms (see norms.py), exact otherwise
    tol = 1e-6 if arch in RMS_ARCHS else 1e-12
    assert torch.allclose(fp.logits, real_logits[0], rtol=0, atol=tol)
    assert torch.allclose(fp.unit_values, real_acts[0], rtol=0, atol=tol)
    # replaying the real leaves gives the record pass back
    assert torch.allclose(same.logits, fp.logits, rtol=0, atol=1e-12)
    assert torch.allclose(same.unit_values, fp.unit_values, rtol=0, atol=1e-12)
    # the frozen model is affine in the leaves: second differences vanish ...
    first = one.logits - fp.logits
    assert first.abs().max() > 1e-3  # the perturbation does reach the logits
    assert torch.allclose(two.logits - fp.logits, 2 * first, rtol=0, atol=1e-10)
    assert torch.allclose(two.unit_values - fp.unit_values, 2 * (one.unit_values - fp.unit_values),
                          rtol=0, atol=1e-10)
    # ... while the real model, perturbed the same way at its embeddings, is not
    real_one = _real_logits_with_embedding_delta(lm, parts, ids, delta_e)
    real_two = _real_logits_with_embedding_delta(lm, parts, ids, 2 * delta_e)
    curvature = (real_two - real_logits[0]) - 2 * (real_one - real_logits[0])
    assert curvature.abs().max() > 1e-6


def _real_logits_with_embedding_delta(lm, parts, ids, delta):
    handle = parts.embedding.register_forward_hook(lambda m, a, out: out + delta)
    try:
        return real_forward(lm.model, parts, ids)[0][0]
    finally:
        handle.remove()


@pytest.mark.parametrize("arch", ARCHS)
def test_edges_equal_frozen_differences(arch):
    """An edge is what the source adds to the target: the target's drop when the source is 0."""
    lm = tiny64(arch)
    parts = model_parts(lm.model)
    ids = prompt_ids(lm)
    n_pos, n_layers, m = ids.numel(), parts.n_layers, parts.n_units
    with FrozenModel(lm.model, parts, ids) as fz:
        fp = fz.record()
        computer = RowComputer(fp, parts, top_k=n_layers * n_pos * m)  # keep whole rows
        top_vocab = int(fp.logits.argmax())
        # targets: a unit of the last layer at the last position, a logit
        target_layers = np.array([n_layers - 1, n_layers])
        target_pos = np.array([n_pos - 1, n_pos - 1])
        target_index = np.array([3, top_vocab])
        batch = computer.rows(target_layers, target_pos, target_index)
        emb = fp.emb_leaf.detach()
        units = fp.unit_values.detach()
        base = fz.replay(emb, units)
        rng = np.random.default_rng(0)
        sources = rng.choice(np.flatnonzero(batch.top_index[0] >= 0), size=4, replace=False)
        for row in range(2):
            value = (base.unit_values[n_layers - 1, n_pos - 1, 3] if row == 0
                     else base.logits[top_vocab])
            effects = dict(zip(batch.top_index[row].tolist(), batch.top_value[row].tolist()))
            for column in batch.top_index[0][sources].tolist():
                layer, rest = divmod(column, n_pos * m)
                pos, unit = divmod(rest, m)
                knocked = units.clone()
                knocked[layer, pos, unit] = 0
                out = fz.replay(emb, knocked)
                after = (out.unit_values[n_layers - 1, n_pos - 1, 3] if row == 0
                         else out.logits[top_vocab])
                assert float(value - after) == pytest.approx(effects.get(column, 0.0),
                                                             rel=1e-9, abs=1e-12)
            for pos in (0, n_pos - 1):
                knocked = emb.clone()
                knocked[0, pos] = 0
                out = fz.replay(knocked, units)
                after = (out.unit_values[n_layers - 1, n_pos - 1, 3] if row == 0
                         else out.logits[top_vocab])
                assert float(value - after) == pytest.approx(batch.embedding[row, pos],
                                                             rel=1e-9, abs=1e-12)
        # the whole row plus the zero-leaf bias is the target's value (completeness)
        bias = fz.replay()
        assert batch.total[1] + float(bias.logits[top_vocab]) == pytest.approx(
            float(base.logits[top_vocab]), rel=1e-10)
        # whole rows stored: the stored mass is the full mass
        np.testing.assert_allclose(batch.stored_mass, batch.mass, rtol=1e-12)


def test_stored_entries_are_the_row_top_k():
    lm = tiny64("llama")
    parts = model_parts(lm.model)
    ids = prompt_ids(lm)
    n_pos = ids.numel()
    with FrozenModel(lm.model, parts, ids) as fz:
        fp = fz.record()
        full = RowComputer(fp, parts, top_k=parts.n_layers * n_pos * parts.n_units).rows(
            [2], [n_pos - 1], [0])
        short = RowComputer(fp, parts, top_k=10).rows([2], [n_pos - 1], [0])
    valid = full.top_index[0] >= 0
    order = np.argsort(-np.abs(full.top_value[0][valid]), kind="stable")
    np.testing.assert_array_equal(np.sort(short.top_index[0]),
                                  np.sort(full.top_index[0][valid][order[:10]]))
    assert short.mass[0] == pytest.approx(full.mass[0], rel=1e-12)
    assert short.total[0] == pytest.approx(full.total[0], rel=1e-12)
    assert short.stored_mass[0] < short.mass[0]


@pytest.mark.parametrize("arch", ARCHS)
def test_attribute_prompt_completeness_every_architecture(arch):
    result = attribute_prompt(tiny64(arch), PROMPT,
                              AttributionSettings(max_feature_nodes=40, batch_size=16))
    q = result.quality
    assert q.n_rows == q.n_logits + q.n_units_expanded == q.n_logits + 40
    assert q.completeness_max_rel_error < 1e-9
    assert q.completeness_logit_max_rel_error < 1e-9
    assert q.frozen_vs_real_max_abs < (1e-6 if arch in RMS_ARCHS else 1e-12)
    # every computed row has its error, nodes without a row (embeddings) have none
    has_row = np.isfinite(result.row_rel_error)
    assert has_row.sum() == q.n_rows
    assert np.all(result.row_mass[~has_row] == 0)
    assert q.n_units_kept <= 40 and q.n_nodes == q.n_units_kept + q.n_tokens + q.n_logits


def test_logit_target_selection():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log()
    ids, p = select_logit_targets(logits, max_logits=10, logit_prob=0.95)
    assert ids.tolist() == [0, 1, 2] and p == pytest.approx([0.5, 0.3, 0.15])
    ids, _ = select_logit_targets(logits, max_logits=2, logit_prob=0.95)
    assert ids.tolist() == [0, 1]
    ids, _ = select_logit_targets(logits, max_logits=10, logit_prob=0.5)
    assert ids.tolist() == [0]


def test_unsupported_architecture_is_a_clear_error():
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model("mistral", hidden_size=16, intermediate_size=32,
                                  num_hidden_layers=1, num_attention_heads=2,
                                  num_key_value_heads=1, vocab_size=50)
    model = AutoModelForCausalLM.from_config(config)
    with pytest.raises(UnsupportedModelError, match="does not support architecture 'mistral'"):
        model_parts(model)


def _gpt2_frozen(model, ids, patterns, frozen=None, unit_zero=None, emb_zero=None):
    """GPT-2 written out by hand from its weights, attention patterns given (from the model).

    frozen=None: the real model (returns its norm scales, MLP gains and units as `frozen`);
    otherwise the frozen model: norm scales and gains from `frozen`, and every MLP's output made
    from the recorded units (the leaves, so no path runs through another unit), with one unit
    set to 0 by unit_zero=(layer, pos, unit) or one position's token embedding by emb_zero=pos.
    Returns (last-position logits, each layer's gain * linear input, frozen).
    """
    t = model.transformer
    n_head = model.config.n_head
    record = frozen is None
    frozen = {} if record else frozen
    emb = t.wte.weight[ids].clone()
    if emb_zero is not None:
        emb[emb_zero] = 0
    h = emb + t.wpe.weight[: ids.numel()]

    def norm(name, ln, x):
        centred = x - x.mean(-1, keepdim=True)
        if record:
            frozen[name] = 1 / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + ln.eps)
        return centred * frozen[name] * ln.weight + ln.bias

    units = []
    for i, block in enumerate(t.h):
        x = norm(f"ln1_{i}", block.ln_1, h)
        qkv = x @ block.attn.c_attn.weight + block.attn.c_attn.bias
        v = qkv[:, 2 * x.shape[-1]:].reshape(ids.numel(), n_head, -1).transpose(0, 1)
        heads = (patterns[i][0] @ v).transpose(0, 1).reshape(ids.numel(), -1)
        h = h + heads @ block.attn.c_proj.weight + block.attn.c_proj.bias
        x = norm(f"ln2_{i}", block.ln_2, h)
        pre = x @ block.mlp.c_fc.weight + block.mlp.c_fc.bias
        if record:
            frozen[f"gain_{i}"] = block.mlp.act(pre) / pre
            frozen[f"unit_{i}"] = block.mlp.act(pre)
        units.append(frozen[f"gain_{i}"] * pre)
        leaf = frozen[f"unit_{i}"].clone()
        if unit_zero is not None and unit_zero[0] == i:
            leaf[unit_zero[1], unit_zero[2]] = 0
        h = h + leaf @ block.mlp.c_proj.weight + block.mlp.c_proj.bias
    x = norm("ln_f", t.ln_f, h)
    return (x @ model.lm_head.weight.T)[-1], units, frozen


def test_edges_against_a_hand_written_frozen_gpt2():
    """The frozen model built apart from the attribution's hooks, from GPT-2's weights."""
    lm = tiny64("gpt2")
    model, parts = lm.model, model_parts(lm.model)
    ids = prompt_ids(lm)
    n_pos = ids.numel()
    with torch.no_grad():
        out = model(input_ids=ids[None], output_attentions=True, use_cache=False)
        real_logits, real_units, frozen = _gpt2_frozen(model, ids, out.attentions)
    assert torch.allclose(real_logits, out.logits[0, -1], rtol=0, atol=1e-12)
    vocab = int(real_logits.argmax())
    with FrozenModel(model, parts, ids) as fz:
        fp = fz.record()
        batch = RowComputer(fp, parts, top_k=4).rows([parts.n_layers, 1], [n_pos - 1, n_pos - 1],
                                                      [vocab, 7])
    for row in range(2):
        for column, effect in zip(batch.top_index[row], batch.top_value[row]):
            layer, rest = divmod(int(column), n_pos * parts.n_units)
            pos, unit = divmod(rest, parts.n_units)
            with torch.no_grad():
                logits, units, _ = _gpt2_frozen(model, ids, out.attentions, frozen,
                                                unit_zero=(layer, pos, unit))
            before = real_logits[vocab] if row == 0 else real_units[1][n_pos - 1, 7]
            after = logits[vocab] if row == 0 else units[1][n_pos - 1, 7]
            assert float(before - after) == pytest.approx(effect, rel=1e-9, abs=1e-13)
        for pos in (0, n_pos - 1):
            with torch.no_grad():
                logits, units, _ = _gpt2_frozen(model, ids, out.attentions, frozen, emb_zero=pos)
            before = real_logits[vocab] if row == 0 else real_units[1][n_pos - 1, 7]
            after = logits[vocab] if row == 0 else units[1][n_pos - 1, 7]
            assert float(before - after) == pytest.approx(batch.embedding[row, pos], rel=1e-9,
                                                          abs=1e-13)


def test_a_nonlinearity_left_live_stops_the_call(monkeypatch):
    """Attention patterns left live (queries and keys not frozen): completeness catches it."""
    from scalelens.attribution import AttributionError
    from scalelens.attribution.frozen import _FreezeState

    monkeypatch.setattr(_FreezeState, "attention_qk", lambda self, module, q, k: (q, k))
    with pytest.raises(AttributionError, match="not affine in its leaves"):
        attribute_prompt(tiny64("qwen3"), PROMPT, AttributionSettings(max_feature_nodes=8))
    result = attribute_prompt(tiny64("qwen3"), PROMPT, AttributionSettings(
        max_feature_nodes=8, max_completeness_error=float("inf")))
    assert result.quality.completeness_max_rel_error > 1e-2
