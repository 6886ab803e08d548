"""Loader for the circuit-tracer / Neuronpedia JSON schema."""

import json

import numpy as np
import pytest

from scalelens.motifs.loader import (
    GraphSchemaError,
    find_graph_files,
    graph_from_edges,
    load_attribution_graph,
    parse_attribution_graph,
)


def node(node_id, layer, ftype="cross layer transcoder", ctx=0):
    return {
        "node_id": node_id,
        "feature": 1,
        "layer": layer,
        "ctx_idx": ctx,
        "feature_type": ftype,
        "token_prob": 0.0,
        "is_target_logit": False,
        "clerp": "",
    }


def small_graph():
    return {
        "metadata": {
            "slug": "tiny-graph",
            "prompt": "a b",
            "prompt_tokens": ["a", "b"],
            "scan": "x",
        },
        "qParams": {},
        "nodes": [
            node("E_1_0", "E", "embedding"),
            node("0_5_0", "0"),
            node("3_7_1", "3", ctx=1),
            node("0_2_1", "2", "mlp reconstruction error", ctx=1),
            node("27_99_1", "27", "logit", ctx=1),  # circuit-tracer writes n_layers + 1
        ],
        "links": [
            {"source": "E_1_0", "target": "0_5_0", "weight": 0.5},
            {"source": "0_5_0", "target": "3_7_1", "weight": -0.2},
            {"source": "3_7_1", "target": "27_99_1", "weight": 0.01},
            {"source": "0_2_1", "target": "3_7_1", "weight": 0.9},  # touches the error node
            {"source": "E_1_0", "target": "27_99_1", "weight": 0.3},
            {"source": "E_1_0", "target": "27_99_1", "weight": -0.1},  # duplicate: merged, summed
            {"source": "3_7_1", "target": "3_7_1", "weight": 1.0},  # self-loop: dropped
        ],
    }


def write(tmp_path, data, name="g.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def edges_by_id(g):
    return {(g.node_ids[s], g.node_ids[t]): w for s, t, w in zip(g.src, g.dst, g.weights)}


def test_layers_error_nodes_duplicates_self_loops(tmp_path):
    g = load_attribution_graph(write(tmp_path, small_graph()))
    assert g.graph_id == "tiny-graph"
    assert g.node_ids == ("E_1_0", "0_5_0", "3_7_1", "27_99_1")  # error node dropped
    # embeddings -> -1; logit -> 1 + largest non-logit layer in the file (3; the error node has 2)
    assert g.layers.tolist() == [-1, 0, 3, 4]
    assert edges_by_id(g) == pytest.approx(
        {
            ("E_1_0", "0_5_0"): 0.5,
            ("0_5_0", "3_7_1"): -0.2,
            ("3_7_1", "27_99_1"): 0.01,
            ("E_1_0", "27_99_1"): 0.2,
        }
    )
    assert g.n_edges == 4
    assert g.edge_layer_pairs.tolist() == [[-1, 0], [-1, 4], [0, 3], [3, 4]]


def test_keep_error_nodes(tmp_path):
    g = load_attribution_graph(write(tmp_path, small_graph()), drop_error_nodes=False)
    assert "0_2_1" in g.node_ids and g.n_nodes == 5
    assert edges_by_id(g)[("0_2_1", "3_7_1")] == pytest.approx(0.9)
    assert g.layers[g.node_ids.index("0_2_1")] == 2


def test_threshold_and_signs(tmp_path):
    g = load_attribution_graph(write(tmp_path, small_graph()), weight_threshold=0.15)
    kept = edges_by_id(g)
    assert set(kept) == {("E_1_0", "0_5_0"), ("0_5_0", "3_7_1"), ("E_1_0", "27_99_1")}
    signs = {(g.node_ids[s], g.node_ids[t]): int(x) for s, t, x in zip(g.src, g.dst, g.signs)}
    assert signs == {("E_1_0", "0_5_0"): 1, ("0_5_0", "3_7_1"): -1, ("E_1_0", "27_99_1"): 1}
    assert g.n_nodes == 4  # nodes left without edges are kept


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("links"), "missing required key 'links'"),
        (lambda d: d["nodes"][1].pop("layer"), r"nodes\[1\] is missing required key 'layer'"),
        (lambda d: d["links"][0].pop("weight"), r"links\[0\] is missing required key 'weight'"),
        (lambda d: d["links"][0].update(target="nope"), "'nope' is not a node_id"),
        (lambda d: d["nodes"][1].update(layer="L3"), "layer 'L3'"),
        (lambda d: d["nodes"][1].update(feature_type="attention"), "feature_type 'attention'"),
        (lambda d: d["nodes"][2].update(node_id="0_5_0"), "appears more than once"),
        (lambda d: d["links"][0].update(weight="big"), "expected a finite number"),
    ],
)
def test_malformed_files_name_path_and_problem(tmp_path, mutate, message):
    data = small_graph()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(GraphSchemaError, match=message) as info:
        load_attribution_graph(path)
    assert str(path) in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(GraphSchemaError, match="file not found"):
        load_attribution_graph(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GraphSchemaError, match="not valid JSON"):
        load_attribution_graph(bad)
    with pytest.raises(GraphSchemaError, match="top level must be a JSON object"):
        parse_attribution_graph([1, 2], source="x.json")
    with pytest.raises(ValueError, match="weight_threshold"):
        parse_attribution_graph(small_graph(), weight_threshold=-1)


def test_find_graph_files_layout(tmp_path):
    for model, task in [("m1", "t1"), ("m1", "t2"), ("m2", "t1")]:
        (tmp_path / model / task).mkdir(parents=True)
        write(tmp_path / model / task, small_graph(), "a.json")
    found = find_graph_files(tmp_path)
    assert [(f.model, f.task) for f in found] == [("m1", "t1"), ("m1", "t2"), ("m2", "t1")]
    assert [f.model for f in find_graph_files(tmp_path, models=("m2",))] == ["m2"]
    with pytest.raises(GraphSchemaError, match="no graphs for model"):
        find_graph_files(tmp_path, models=("m3",))


def test_graph_from_edges_validates():
    g = graph_from_edges(3, np.array([0, 1]), np.array([1, 2]))
    assert g.n_nodes == 3 and g.n_edges == 2
    with pytest.raises(ValueError, match="self-loops"):
        graph_from_edges(3, np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="duplicate"):
        graph_from_edges(3, np.array([0, 0]), np.array([1, 1]))
