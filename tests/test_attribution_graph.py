"""Graph-level results: faithfulness on the real model, influence kept, JSON, loader round trip."""

import json
from math import comb

import numpy as np
import pytest
import torch
from test_attribution import PROMPT, tiny64  # tests/ is on sys.path (conftest)

from scalelens.attribution import (
    AttributionSettings,
    AttributionSettingsError,
    attribute_prompt,
    unit_means,
)
from scalelens.attribution.architecture import model_parts
from scalelens.attribution.faithfulness import measure_faithfulness, random_like
from scalelens.attribution.frozen import real_forward
from scalelens.attribution.result import LOGIT, UNIT
from scalelens.io import save_json
from scalelens.motifs.census import triad_census
from scalelens.motifs.loader import (
    MLP_UNIT_FEATURE_TYPE,
    load_attribution_graph,
    parse_attribution_graph,
)

SETTINGS = AttributionSettings(max_feature_nodes=48, batch_size=16)
_CACHE = {}


def result_for(arch):
    key = ("result", arch)
    if key not in _CACHE:
        _CACHE[key] = attribute_prompt(tiny64(arch), PROMPT, SETTINGS)
    return _CACHE[key]


def mlp_outputs_replaced(lm, replacement):
    """Real last-position logits with every MLP module's output replaced by
    down_proj(replacement(layer)): written apart from the attribution's own ablation hooks."""
    parts = model_parts(lm.model)
    handles = []
    for layer, mlp in enumerate(parts.mlps):
        down = parts.down(layer)

        def hook(module, args, output, down=down, layer=layer):
            units = replacement(layer).to(output.dtype).expand(*output.shape[:-1], -1)
            return down(units)

        handles.append(mlp.register_forward_hook(hook))
    try:
        ids = lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            return lm.model(input_ids=ids, use_cache=False).logits[0, -1]
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma3_text"])
def test_faithfulness_bounds_and_embeddings_only_model(arch):
    lm = tiny64(arch)
    parts = model_parts(lm.model)
    ids = lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"][0]
    full, _ = real_forward(lm.model, parts, ids)
    target_ids = torch.topk(full[0], 3).indices.numpy()
    probs = np.array([0.5, 0.3, 0.2])
    shape = (parts.n_layers, ids.numel(), parts.n_units)
    everything, intact, units = measure_faithfulness(lm.model, parts, ids, np.ones(shape, bool),
                                                     target_ids, probs, None, seed=0)
    # the intact row is the real model (a batched run rounds a little differently from one run)
    full1, acts1 = real_forward(lm.model, parts, ids)
    np.testing.assert_allclose(intact.numpy(), full1[0].numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(units.numpy(), acts1[0].numpy(), rtol=0, atol=1e-10)
    # (batched runs round a little differently from the single full run)
    np.testing.assert_allclose(everything.per_target, np.ones(3), rtol=0, atol=1e-10)
    assert everything.graph == pytest.approx(1.0, abs=1e-10)
    assert everything.random == pytest.approx(1.0, abs=1e-10)  # same counts: every unit again
    nothing, _, _ = measure_faithfulness(lm.model, parts, ids, np.zeros(shape, bool), target_ids,
                                         probs, None, seed=0)
    np.testing.assert_array_equal(nothing.per_target, np.zeros(3))  # z_graph is z_none
    embeddings_only = mlp_outputs_replaced(lm, lambda layer: torch.zeros(parts.n_units))
    np.testing.assert_allclose(nothing.z_none, embeddings_only[target_ids].numpy(), atol=1e-12)
    assert np.abs(nothing.z_full - nothing.z_none).max() > 1e-3  # the MLPs matter at all


def test_random_baseline_matches_counts_per_layer_and_position():
    rng = np.random.default_rng(5)
    keep = rng.random((3, 4, 20)) < 0.2
    drawn = random_like(keep, seed=11)
    np.testing.assert_array_equal(drawn.sum(-1), keep.sum(-1))
    np.testing.assert_array_equal(drawn, random_like(keep, seed=11))
    assert not np.array_equal(drawn, random_like(keep, seed=12))


def test_unit_means_and_mean_ablation():
    lm = tiny64("llama")
    parts = model_parts(lm.model)
    texts = ["a short one", "a rather longer prompt than that", "xyz"]
    means = unit_means(lm, texts)
    # independently: down-projection inputs of every position of every prompt, plain mean
    seen = {layer: [] for layer in range(parts.n_layers)}
    handles = [parts.down(layer).register_forward_hook(
        lambda m, args, out, layer=layer: seen[layer].append(args[0][0]))
        for layer in range(parts.n_layers)]
    with torch.no_grad():
        for text in texts:
            lm.model(**lm.tokenizer(text, return_tensors="pt"))
    for h in handles:
        h.remove()
    expected = np.stack([torch.cat(seen[layer]).mean(0).numpy() for layer in seen])
    np.testing.assert_allclose(means, expected, rtol=1e-10, atol=1e-12)
    with pytest.raises(AttributionSettingsError, match="ablation 'mean' needs means"):
        attribute_prompt(lm, PROMPT, AttributionSettings(ablation="mean", max_feature_nodes=4))
    with pytest.raises(AttributionSettingsError, match="means must have shape"):
        attribute_prompt(lm, PROMPT, AttributionSettings(ablation="mean", max_feature_nodes=4),
                         means=means[:, :3])
    result = attribute_prompt(lm, PROMPT, AttributionSettings(ablation="mean",
                                                              max_feature_nodes=16), means=means)
    ids = result.faithfulness
    mean_model = mlp_outputs_replaced(lm, lambda layer: torch.as_tensor(means[layer]))
    target_ids = [t.token_id for t in result.logit_targets]
    np.testing.assert_allclose(ids.z_none, mean_model[target_ids].numpy(), atol=1e-12)


def test_influence_kept_is_the_kept_share_of_node_influence():
    result = result_for("gemma3_text")
    adjacency, mass = result.adjacency, result.row_mass
    safe = np.where(mass > 0, mass, 1.0)[:, None]
    normalized = np.where(mass[:, None] > 0, np.abs(adjacency) / safe, 0.0)
    weights = np.zeros(result.n_nodes)
    weights[result.node_kind == LOGIT] = [t.probability for t in result.logit_targets]
    # I = w N + w N^2 + ... = w N (1 - N)^-1
    influence = weights @ normalized @ np.linalg.inv(np.eye(result.n_nodes) - normalized)
    np.testing.assert_allclose(result.prune.node_influence, influence, rtol=1e-9, atol=1e-15)
    non_logit = result.node_kind != LOGIT
    kept = result.prune.node_mask
    expected = influence[non_logit & kept].sum() / influence[non_logit].sum()
    assert result.quality.influence_kept == pytest.approx(expected, rel=1e-12)
    assert 0 < result.quality.influence_kept <= 1


def test_max_nodes_caps_kept_units():
    lm = tiny64("gpt2")
    free = attribute_prompt(lm, PROMPT, AttributionSettings(max_feature_nodes=48, max_nodes=0))
    assert free.quality.n_units_kept > 3
    capped = attribute_prompt(lm, PROMPT, AttributionSettings(max_feature_nodes=48, max_nodes=3))
    assert 0 < capped.quality.n_units_kept <= 3
    kept_units = capped.prune.node_mask & (capped.node_kind == UNIT)
    top3 = np.argsort(-capped.prune.node_influence[capped.node_kind == UNIT])[:3]
    assert set(np.flatnonzero(kept_units)) <= set(np.flatnonzero(capped.node_kind == UNIT)[top3])


@pytest.mark.parametrize("arch", ["qwen2", "gpt_neox"])
def test_json_round_trips_through_loader_and_census(arch, tmp_path):
    result = result_for(arch)
    data = result.to_json_dict(slug=f"tiny-{arch}", weights_sha256="ab" * 32, source="tiny")
    meta = data["metadata"]
    assert meta["slug"] == f"tiny-{arch}" and meta["scan"] == f"tiny:{arch}"
    assert meta["prompt"] == PROMPT and len(meta["prompt_tokens"]) == result.quality.n_tokens
    assert (meta["node_threshold"], meta["edge_threshold"]) == (0.8, 0.98)
    block = meta["scalelens"]
    assert block["model"]["weights_sha256"] == "ab" * 32 and block["ablation"] == "zero"
    assert "seconds" not in block["quality"]
    assert block["quality"]["n_nodes"] == result.quality.n_nodes
    graph = parse_attribution_graph(json.loads(json.dumps(data)))
    assert graph.n_nodes == result.quality.n_nodes == len(data["nodes"])
    assert graph.n_edges == result.quality.n_edges == len(data["links"])
    types = dict(zip(graph.node_ids, graph.feature_types))
    n_layers = result.n_layers
    for node in data["nodes"]:
        if node["feature_type"] == MLP_UNIT_FEATURE_TYPE:
            assert node["node_id"] == f"{node['layer']}_{node['feature']}_{node['ctx_idx']}"
            assert node["clerp"].startswith(f"L{node['layer']} u{node['feature']} @ \"")
        elif node["feature_type"] == "logit":
            assert node["layer"] == str(n_layers + 1)
            assert node["node_id"].startswith(f"{n_layers + 1}_")
        else:
            assert node["node_id"].startswith("E_") and node["layer"] == "E"
        assert types[node["node_id"]] == node["feature_type"]
    logit_nodes = [n for n in data["nodes"] if n["feature_type"] == "logit"]
    assert [n["feature"] for n in logit_nodes] == [t.token_id for t in result.logit_targets]
    assert [n["is_target_logit"] for n in logit_nodes] == [True] + [False] * (len(logit_nodes) - 1)
    assert sum(n["is_target_logit"] for n in data["nodes"]) == 1
    layers = dict(zip(graph.node_ids, graph.layers.tolist()))
    assert {layers[n["node_id"]] for n in data["nodes"] if n["feature_type"] == "logit"} == {
        max(graph.layers)}
    census = triad_census(graph.n_nodes, graph.src, graph.dst)
    assert census.sum() == comb(graph.n_nodes, 3)
    path = save_json(tmp_path / "graph.json", data)
    again = load_attribution_graph(path)
    assert (again.n_nodes, again.n_edges) == (graph.n_nodes, graph.n_edges)
    np.testing.assert_array_equal(again.weights, graph.weights)
    timed = result.to_json_dict(slug="t", include_timings=True)
    assert timed["metadata"]["scalelens"]["quality"]["seconds"] > 0


def test_same_prompt_twice_gives_identical_bytes(tmp_path):
    lm = tiny64("phi3")
    one = attribute_prompt(lm, PROMPT, SETTINGS).to_json_dict(slug="s", weights_sha256="x")
    two = attribute_prompt(lm, PROMPT, SETTINGS).to_json_dict(slug="s", weights_sha256="x")
    a = save_json(tmp_path / "a.json", one).read_bytes()
    b = save_json(tmp_path / "b.json", two).read_bytes()
    assert a == b
    assert len(one["links"]) > 0


def test_loader_reads_mlp_neuron_nodes():
    data = {"metadata": {"slug": "hand"},
            "nodes": [{"node_id": "E_5_0", "layer": "E", "feature_type": "embedding"},
                      {"node_id": "0_7_0", "layer": "0", "feature_type": MLP_UNIT_FEATURE_TYPE},
                      {"node_id": "1_3_0", "layer": "1", "feature_type": MLP_UNIT_FEATURE_TYPE},
                      {"node_id": "3_9_0", "layer": "3", "feature_type": "logit"}],
            "links": [{"source": "E_5_0", "target": "0_7_0", "weight": 0.5},
                      {"source": "0_7_0", "target": "1_3_0", "weight": -0.25},
                      {"source": "1_3_0", "target": "3_9_0", "weight": 2.0}]}
    graph = parse_attribution_graph(data)
    assert graph.feature_types == ("embedding", "mlp neuron", "mlp neuron", "logit")
    assert graph.layers.tolist() == [-1, 0, 1, 2]  # logits right above the last unit layer
    assert graph.signs.tolist() == [1, -1, 1]
    data["nodes"][1]["feature_type"] = "mlp neurons"
    with pytest.raises(ValueError, match="expected one of"):
        parse_attribution_graph(data)


def test_graph_without_units():
    result = attribute_prompt(tiny64("qwen3"), PROMPT, AttributionSettings(max_feature_nodes=0))
    q = result.quality
    assert (q.n_units_expanded, q.n_units_kept, q.n_rows) == (0, 0, q.n_logits)
    assert q.n_nodes == q.n_tokens + q.n_logits and q.n_edges > 0  # embeddings -> logits
    assert q.faithfulness == 0.0  # keeping no unit is ablating every unit
    assert q.completeness_max_rel_error < 1e-9
    data = result.to_json_dict(slug="bare")
    assert parse_attribution_graph(data).n_edges == q.n_edges
