import pytest
from tests_paths import ROOT

from scalelens.params import ParamsError, load_params, parse_params


def test_repository_params_load():
    p = load_params(ROOT / "params.yaml")
    assert p.models == ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    assert p.extract.min_new_tokens <= p.extract.max_new_tokens
    assert p.dtype_for("cpu") == "float32"


@pytest.mark.parametrize("data, message", [
    ({"models": ["a"], "extract": {"batch_sizee": 3}}, "extract.batch_sizee: unknown key"),
    ({"models": ["a"], "extract": {"batch_size": "16"}},
     "extract.batch_size: expected int, got str '16'"),
    ({"models": ["a"], "extract": {"batch_size": True}}, "extract.batch_size: expected int"),
    ({"models": "a"}, "models: expected a list"),
    ({"models": ["a"], "prompts": {"x": {"set": "s"}}}, "prompts.x.md5: missing required key"),
    ({"models": ["a"], "si": {"references": {"r": {"si": "high", "size_b": 1}}}},
     "si.references.r.si: expected float"),
    ({"modelz": ["a"]}, "modelz: unknown key"),
    ({}, "models: missing required key"),
])
def test_errors_name_the_key_path(data, message):
    with pytest.raises(ParamsError, match=message.replace(".", r"\.").replace("'", ".")):
        parse_params(data)


def test_ints_are_accepted_as_floats():
    p = parse_params({"models": ["a"], "uniformity": {"peak_std_threshold_pct": 10}})
    assert p.uniformity.peak_std_threshold_pct == 10.0


def test_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
