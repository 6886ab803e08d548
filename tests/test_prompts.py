import json

import pytest

from scalelens.prompts import PromptSetError, load_prompt_set, prompt_md5


def test_standard10_v3_hashes_to_the_seed_lock():
    ps = load_prompt_set("standard10_v3", expected_md5="715065bab181f46bf12ed471951141e2")
    assert len(ps) == 10
    assert prompt_md5(ps.texts) == "715065bab181f46bf12ed471951141e2"


def test_md5_recipe_is_join_with_triple_pipes():
    import hashlib

    assert prompt_md5(["a", "b"]) == hashlib.md5(b"a|||b").hexdigest()


def test_mismatch_stops_with_both_hashes(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"name": "p", "prompts": [{"category": "c", "text": "one"}]}))
    actual = prompt_md5(["one"])
    with pytest.raises(PromptSetError) as e:
        load_prompt_set(str(path), expected_md5="0" * 32)
    assert actual in str(e.value) and "0" * 32 in str(e.value)


def test_cognitive_task_set_size_and_categories():
    ps = load_prompt_set("cognitive_tasks")
    assert len(ps) >= 60
    assert len(set(ps.categories)) >= 6
    assert len(set(ps.texts)) == len(ps.texts)


def test_residual_gain_set_is_the_seed_25():
    ps = load_prompt_set("residual_gain_25")
    assert len(ps) == 25
    assert sorted(set(ps.categories)) == ["cliche", "factual", "nonsense", "novel", "syntactic"]
    assert ps.texts[0] == "The capital of France is"


def test_params_pins_match_the_files():
    from tests_paths import ROOT

    from scalelens.params import load_params

    params = load_params(ROOT / "params.yaml")
    for lock in params.prompts.values():
        load_prompt_set(lock.set, expected_md5=lock.md5)  # raises on mismatch


def test_unknown_set_is_a_clear_error():
    with pytest.raises(PromptSetError, match="neither a built-in set"):
        load_prompt_set("no-such-set")
