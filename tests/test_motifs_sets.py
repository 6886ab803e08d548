"""Graph-set facts (metadata, registry, the error when missing, SYNTHETIC) and the census of a set
under two null models (the layer null keeps every layer-pair edge count; Z differs between the
nulls where it should)."""

import json

import numpy as np
import pytest

from scalelens.motifs.census import CONNECTED_LABELS, TRIAD_LABELS, label_index, triad_census
from scalelens.motifs.loader import graph_from_edges, parse_attribution_graph
from scalelens.motifs.nulls import layer_pair_classes, null_spec_for_graph, sample_null_batch
from scalelens.motifs.set_census import CensusSettings, SetCensus, census_graph_set
from scalelens.motifs.sets import GraphSetError, graph_quality, resolve_set_facts

QUALITY = {"completeness_max_rel_error": 2e-6, "influence_kept": 0.8, "faithfulness": 0.6,
           "faithfulness_random": 0.1, "n_nodes": 40, "n_edges": 300, "seconds": 1.0}


def md(scan="", **scalelens):
    out = {"slug": "g", "scan": scan}
    if scalelens:
        out["scalelens"] = scalelens
    return out


# -- facts -------------------------------------------------------------------------------------

def test_facts_from_metadata_scalelens_with_quality_means():
    q2 = {**QUALITY, "faithfulness": 0.2, "faithfulness_random": None, "influence_kept": 0.9,
          "completeness_max_rel_error": 8e-6, "n_edges": 500}
    metas = [md("qwen2.5-coder-0.5b", model={"key": "qwen2.5-coder-0.5b"},
                family="qwen2.5-coder", n_params=494e6, synthetic=False, quality=q)
             for q in (QUALITY, q2)]
    f = resolve_set_facts("qwen2.5-coder-0.5b", "attribution", metas, ["a", "b"])
    assert (f.model_key, f.family, f.n_params, f.source) == (
        "qwen2.5-coder-0.5b", "qwen2.5-coder", 494e6, "attribution")
    assert not f.family_inferred and not f.synthetic and f.synthetic_reason == ""
    assert f.tasks == ("a", "b") and f.n_graphs == 2 and f.n_graphs_with_quality == 2
    assert f.quality["faithfulness"] == pytest.approx(0.4)
    assert f.quality["faithfulness_random"] == pytest.approx(0.1)  # the one graph that has it
    assert f.quality["influence_kept"] == pytest.approx(0.85)
    assert f.quality["completeness_max_rel_error"] == pytest.approx(5e-6)
    assert f.quality["completeness_max_rel_error_max"] == pytest.approx(8e-6)
    assert f.quality["n_edges"] == pytest.approx(400)
    assert "seconds" not in f.quality  # timings are not quality
    assert type(f).from_dict(json.loads(json.dumps(f.to_dict()))) == f


def test_tiny_model_family_from_config_is_marked_inferred():
    metas = [md(model={"key": "tiny:llama"}, family="llama", n_params=12345.0)]
    f = resolve_set_facts("tiny-llama", "attribution", metas, ["t"])
    assert (f.family, f.n_params, f.family_inferred) == ("llama", 12345.0, True)


@pytest.mark.parametrize(("name", "scan", "key", "family", "n_params"), [
    ("gemma3-1b", "", "gemma3-1b", "gemma3", 1.0e9),  # registry key as the set's name
    ("haiku-export", "gemma-2-2b", "gemma2-2b", "gemma2", 2.6e9),  # Neuronpedia scan
    ("my-set", "Qwen/Qwen3-4B", "qwen3-4b", "qwen3", 4.0e9),  # hub id scan
])
def test_facts_from_the_registry(name, scan, key, family, n_params):
    f = resolve_set_facts(name, "imported", [md(scan)] * 2, ["t"])
    assert (f.family, f.n_params, f.family_inferred) == (family, n_params, False)
    assert f.family_source.startswith(f"registry entry {key}")
    assert f.quality["faithfulness"] is None and f.n_graphs_with_quality == 0


def test_missing_facts_are_a_one_line_error_saying_what_to_add():
    with pytest.raises(GraphSetError) as info:
        resolve_set_facts("haiku-99", "imported", [md("claude-3-haiku")], ["t"])
    msg = str(info.value)
    assert "\n" not in msg and "graph set 'haiku-99'" in msg
    assert "add 'family', 'n_params' to metadata.scalelens" in msg and "gemma3-1b" in msg
    with pytest.raises(GraphSetError, match="add 'n_params'"):
        resolve_set_facts("x", "imported", [md(family="f")], ["t"])
    base = resolve_set_facts("haiku-99", "imported", [md("claude-3-haiku")], ["t"],
                             require_size=False)  # a baseline needs no size
    assert (base.family, base.n_params) == ("unknown", None)


def test_graphs_that_disagree_are_an_error():
    metas = [md(family="a", n_params=1e9), md(family="b", n_params=1e9)]
    with pytest.raises(GraphSetError, match="disagree on metadata.scalelens.family"):
        resolve_set_facts("s", "imported", metas, ["t"])


def test_synthetic_by_name_or_by_any_graph():
    real = md(family="f", n_params=1e9)
    assert not resolve_set_facts("s", "imported", [real], ["t"]).synthetic
    by_name = resolve_set_facts("synthetic-s", "imported", [real], ["t"])
    assert by_name.synthetic and "name starts with 'synthetic-'" in by_name.synthetic_reason
    top = {**md(family="f", n_params=1e9), "synthetic": True}
    one = resolve_set_facts("s", "imported", [real, top], ["t"])
    assert one.synthetic and "1 of its 2 graphs" in one.synthetic_reason
    inner = md(family="f", n_params=1e9, synthetic=True)
    assert resolve_set_facts("s", "attribution", [inner], ["t"]).synthetic


def test_graph_quality_reads_the_quality_block():
    assert graph_quality(md(family="f")) is None
    q = graph_quality(md(quality={**QUALITY, "faithfulness": None}))
    assert q["faithfulness"] is None and q["influence_kept"] == 0.8 and q["n_nodes"] == 40.0


# -- census under two nulls --------------------------------------------------------------------

def layered_graph(seed=3, per_layer=5, n_layers=4, p=0.45):
    """A layered DAG: edges from layer l to l+1 and l+2 with probability p (seeded)."""
    rng = np.random.default_rng(seed)
    layers = np.repeat(np.arange(n_layers), per_layer)
    n = layers.size
    src, dst = [], []
    for u in range(n):
        for v in range(n):
            if 1 <= layers[v] - layers[u] <= 2 and rng.random() < p:
                src.append(u)
                dst.append(v)
    return graph_from_edges(n, np.array(src), np.array(dst), layers=layers, graph_id="lay",
                            model="set", task="t")


def pair_counts(layers, src, dst):
    pairs, counts = np.unique(np.column_stack([layers[src], layers[dst]]), axis=0,
                              return_counts=True)
    return {tuple(p): c for p, c in zip(pairs.tolist(), counts)}


def test_layer_null_keeps_every_layer_pair_edge_count():
    g = layered_graph()
    observed = pair_counts(g.layers, g.src, g.dst)
    rngs = [np.random.default_rng(k) for k in range(12)]
    layer_nulls = sample_null_batch(null_spec_for_graph(g, "layer", 10.0), rngs)
    config_nulls = sample_null_batch(null_spec_for_graph(g, "config", 10.0), rngs)
    for src, dst in layer_nulls:
        assert pair_counts(g.layers, src, dst) == observed
        assert np.all(g.layers[src] < g.layers[dst])  # still a DAG along the layers
    assert any(pair_counts(g.layers, s, d) != observed for s, d in config_nulls)
    assert layer_pair_classes(g.layers, g.src, g.dst).max() + 1 == len(observed)


def test_set_census_under_two_nulls_z_by_definition():
    g = layered_graph()
    settings = CensusSettings(("config", "layer"), 40, 10.0, True, 0.0, 2.0, 7)
    census = census_graph_set("set", [g], "imported", settings, require_size=False)
    (entry,) = census.graphs
    observed = triad_census(g.n_nodes, g.src, g.dst)
    for null in ("config", "layer"):
        r = entry.results[null]
        np.testing.assert_array_equal(r.observed, observed)
        mean = r.null_counts.mean(axis=0)
        std = r.null_counts.std(axis=0, ddof=1)
        ok = std > 0
        np.testing.assert_allclose(r.z[ok], ((observed - mean) / np.where(ok, std, 1))[ok])
        assert np.all(r.z[~ok] == 0) and np.all(r.zero_variance == ~ok)
    config, layer = entry.results["config"], entry.results["layer"]
    # the layer null keeps the graph a DAG along the layers: no null graph has a cycle or a
    # mutual dyad, so those classes have zero variance and Z = 0; the config null can rewire an
    # edge downwards and close a cycle
    cyclic = [lab for lab in CONNECTED_LABELS if lab not in ("021D", "021U", "021C", "030T")]
    k = [label_index(lab) for lab in cyclic]
    assert np.all(layer.null_counts[:, k] == 0) and np.all(layer.zero_variance[k])
    assert np.all(layer.z[k] == 0)
    assert config.null_counts[:, label_index("030C")].max() > 0
    ffl = label_index("030T")
    assert layer.z[ffl] != pytest.approx(config.z[ffl])
    # on a DAG kept a DAG, sum C(k_out, 2) = 021D + 030T, sum C(k_in, 2) = 021U + 030T and
    # sum k_out k_in = 021C + 030T are fixed by the degrees: each open class moves by -030T,
    # so its Z is exactly -Z(030T) (one free number per graph under the layer null)
    for lab in ("021D", "021U", "021C"):
        assert layer.z[label_index(lab)] == pytest.approx(-layer.z[ffl])
        assert config.z[label_index(lab)] != pytest.approx(-config.z[ffl])
    # views: one csv row per (graph, null); npz per (null, graph); json round trip
    rows = census.table()
    assert [r["null_model"] for r in rows] == ["config", "layer"]
    assert all(r["graph_set"] == "set" and r["synthetic"] is False for r in rows)
    arrays = census.null_arrays()
    assert arrays["layer__t__lay"].shape == (40, 16) and not arrays["synthetic"]
    back = SetCensus.from_json_dict(json.loads(json.dumps(census.to_json_dict())))
    np.testing.assert_allclose(back.results("layer")[0].z, layer.z)
    with pytest.raises(GraphSetError, match="rerun motif_census"):
        census.results("er")


def test_same_seed_same_census_and_nulls_draw_independent_streams():
    g = layered_graph(seed=5)
    settings = CensusSettings(("config",), 6, 5.0, True, 0.0, 2.0, 1)
    a = census_graph_set("set", [g], "imported", settings, require_size=False)
    b = census_graph_set("set", [g], "imported", settings, require_size=False)
    np.testing.assert_array_equal(a.graphs[0].results["config"].null_counts,
                                  b.graphs[0].results["config"].null_counts)
    with pytest.raises(ValueError, match="distinct"):
        CensusSettings(("config", "config"), 6, 5.0, True, 0.0, 2.0, 1)
    with pytest.raises(GraphSetError, match="at least 2 null graphs"):
        CensusSettings(("config",), 1, 5.0, True, 0.0, 2.0, 1)


def test_real_schema_graph_keeps_its_quality_and_synthetic_mark():
    data = {"metadata": {"slug": "m-t-0", "scalelens": {
        "model": {"key": "gemma3-1b"}, "family": "gemma3", "n_params": 1e9, "task": "t",
        "synthetic": True, "quality": QUALITY}},
        "nodes": [{"node_id": "E_1_0", "layer": "E", "feature_type": "embedding"},
                  {"node_id": "0_5_0", "layer": "0", "feature_type": "mlp neuron"},
                  {"node_id": "1_7_0", "layer": "1", "feature_type": "mlp neuron"},
                  {"node_id": "3_9_0", "layer": "3", "feature_type": "logit"}],
        "links": [{"source": "E_1_0", "target": "0_5_0", "weight": 1.0},
                  {"source": "0_5_0", "target": "1_7_0", "weight": 0.5},
                  {"source": "E_1_0", "target": "1_7_0", "weight": 0.2},
                  {"source": "1_7_0", "target": "3_9_0", "weight": 2.0}]}
    g = parse_attribution_graph(data, model="m", task="t")
    census = census_graph_set("m", [g], "attribution",
                              CensusSettings(("config", "layer"), 3, 2.0, True, 0.0, 2.0, 0))
    assert census.synthetic and census.graphs[0].synthetic
    assert census.graphs[0].quality["faithfulness"] == 0.6
    row = census.table()[0]
    assert row["synthetic"] is True and row["quality_faithfulness"] == 0.6
    assert row["census_030T"] == 1 and sum(row[f"census_{lab}"] for lab in TRIAD_LABELS) == 4
