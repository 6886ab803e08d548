"""Every params.yaml value is validated when a stage starts: one line naming the key path.

Includes property-based tests (hypothesis) over the params loader and the graph and
statement-pair loaders: whatever they are given, they return a valid object or raise their own
one-line error, never anything else.
"""

import copy
import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests_paths import ROOT

from scalelens.motifs.loader import GraphSchemaError, parse_attribution_graph
from scalelens.params import ParamsError, load_params, parse_params
from scalelens.params_rules import RULES, leaves
from scalelens.sweeps.uniformity import DatasetSchemaError, validate_statement_pairs

DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())


def _write(tmp_path, data) -> str:
    (tmp_path / "data" / "statements").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "statements" / "default_pairs.json").write_text(
        (ROOT / "data" / "statements" / "default_pairs.json").read_text())
    (tmp_path / "data" / "graphs").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


def _with(path: str, value):
    data = copy.deepcopy(DEFAULT)
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    node[last] = value
    return data


def test_every_leaf_has_a_rule_and_every_rule_a_leaf():
    params = parse_params(DEFAULT)
    rule_paths = {rule for rule, _, _ in leaves(params)}
    assert rule_paths == set(RULES)


def test_the_repository_params_are_valid():
    load_params(ROOT / "params.yaml")


@pytest.mark.parametrize("key, value, message", [
    ("extract.batch_size", 0, "extract.batch_size: 0 must be >= 1"),
    ("motifs.n_random", -1, "motifs.n_random: -1 must be >= 2"),
    ("phiid.tau", 0, "phiid.tau: 0 must be >= 1"),
    ("phiid.estimator", "gauss", "phiid.estimator: 'gauss' is not one of gaussian, discrete"),
    ("device", "gpu", "device: 'gpu' is not a device: auto, cpu, cuda, cuda:<index> or mps"),
    ("models", ["tiny:llama:x"], "models[0]: 'tiny:llama:x' is not tiny:<arch>[:<seed>]"),
    ("models", [], "models: the list is empty"),
    ("models", ["gpt-7"], "models[0]: unknown model key 'gpt-7'"),
    ("si.max_length", 0, "si.max_length: 0 must be >= 1"),
    ("si.n_boot", 0, "si.n_boot: 0 must be >= 2"),
    ("gain.n_boot", -5, "gain.n_boot: -5 must be >= 2"),
    ("motifs.graph_sets", ["gemma3-270m", "../../../x"],
     "motifs.graph_sets[1]: '../../../x' must be a plain folder name"),
    ("motifs.graphs_dir", "../outside", "motifs.graphs_dir: '../outside' leaves the repository"),
    ("uniformity.dataset", "data/nope.json", "uniformity.dataset: 'data/nope.json': no such file"),
    ("sigma", float("nan"), "sigma: nan is not a finite number"),
    ("perturb.fraction", 1.0, "perturb.fraction: 1.0 must lie in (0, 1)"),
    ("ablation.random_seeds", [0], "ablation.random_seeds: needs at least 2 entries"),
    ("extract.min_new_tokens", 99, "extract.min_new_tokens: 99 exceeds extract.max_new_tokens"),
    ("extract.prompt_set", "nope", "extract.prompt_set: 'nope' is not a key of prompts"),
    ("prompts.standard10_v3.md5", "abc", "prompts.standard10_v3.md5: 'abc' is not an MD5"),
    ("motifs.baseline", "elsewhere", "motifs.baseline: 'elsewhere' is not one of"),
    ("dtype.cuda", "float8", "dtype.cuda: 'float8' is not one of"),
])
def test_a_bad_value_is_one_line_naming_the_key(tmp_path, key, value, message):
    with pytest.raises(ParamsError) as e:
        load_params(_write(tmp_path, _with(key, value)))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_duplicate_key_is_an_error_naming_both_lines(tmp_path):
    text = "models: [tiny:llama]\nseed: 1\nseed: 2\n"
    with pytest.raises(ParamsError, match=r"'seed' is given twice \(lines 2 and 3\)"):
        load_params(_write(tmp_path, text))


def test_an_absolute_path_outside_the_repository_is_accepted(tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-pairs.json"
    outside.write_text((ROOT / "data" / "statements" / "default_pairs.json").read_text())
    p = load_params(_write(tmp_path, _with("uniformity.dataset", str(outside))))
    assert p.uniformity.dataset == str(outside)


# -- properties ------------------------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=8)


def _leaf_keys(node, prefix=()) -> list[tuple]:
    """Every leaf of the raw params as a tuple of keys (a key may hold a dot: '(3.8B)')."""
    if isinstance(node, dict):
        return [k for name, v in node.items() for k in _leaf_keys(v, (*prefix, name))]
    return [prefix]


LEAF_KEYS = sorted(_leaf_keys(DEFAULT))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.sampled_from(LEAF_KEYS), value=VALUES)
def test_any_value_anywhere_loads_or_is_one_params_error(tmp_path, keys, value):
    data = copy.deepcopy(DEFAULT)
    node = data
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    try:
        p = load_params(_write(tmp_path, data))
    except ParamsError as e:
        assert str(e) and "\n" not in str(e)
        return
    for rule_path, shown, leaf in leaves(p):  # what loaded satisfies every rule again
        RULES[rule_path](leaf, shown, tmp_path)


JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                                 st.text(max_size=8)),
                       lambda inner: st.one_of(st.lists(inner, max_size=5),
                                               st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=5)), max_leaves=20)
NODE = st.fixed_dictionaries({"node_id": st.one_of(st.text(max_size=4), st.integers(0, 9)),
                              "layer": st.one_of(st.sampled_from(["E", "0", "1", "2", "x"]),
                                                 st.integers(-1, 3), st.booleans()),
                              "feature_type": st.sampled_from(
                                  ["embedding", "logit", "cross layer transcoder",
                                   "mlp reconstruction error", "mlp neuron", "other"])})
GRAPH = st.fixed_dictionaries({
    "nodes": st.lists(NODE, max_size=6),
    "links": st.lists(st.fixed_dictionaries({
        "source": st.one_of(st.text(max_size=4), st.integers(0, 9)),
        "target": st.one_of(st.text(max_size=4), st.integers(0, 9)),
        "weight": st.one_of(st.floats(), st.integers(), st.text(max_size=3), st.none())}),
        max_size=8)})


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(GRAPH, JSONISH))
def test_graph_loader_returns_a_graph_or_a_schema_error(data):
    try:
        g = parse_attribution_graph(data, source="g.json")
    except GraphSchemaError as e:
        assert str(e).startswith("g.json")
        return
    assert g.src.shape == g.dst.shape == g.weights.shape
    assert (g.src != g.dst).all() and g.n_edges == len({(s, d) for s, d in zip(g.src, g.dst)})
    assert g.layers.shape == (g.n_nodes,)


PAIRS = st.dictionaries(
    st.text(max_size=6),
    st.one_of(JSONISH, st.fixed_dictionaries({
        "description": st.one_of(st.text(max_size=5), st.integers()),
        "expected_effect": st.text(max_size=5),
        "pairs": st.lists(st.one_of(st.lists(st.text(max_size=5), max_size=3), JSONISH),
                          max_size=5)})),
    max_size=5)


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(PAIRS, JSONISH))
def test_statement_pair_loader_returns_a_dataset_or_a_schema_error(raw):
    try:
        ds = validate_statement_pairs(raw, source="pairs.json")
    except DatasetSchemaError as e:
        assert str(e).startswith("pairs.json")
        return
    assert len(ds.categories) >= 3 and all(len(c.pairs) >= 3 for c in ds.categories)
    assert len(ds.statements_a()) == len(ds.statements_b()) == ds.n_pairs
    json.dumps([c.pairs for c in ds.categories])
