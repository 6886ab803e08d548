import json

import numpy as np
import pytest

from scalelens.io import load_npz, save_json, save_npz


def test_npz_bytes_are_deterministic(tmp_path):
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array(["x", "yy"])}
    p1 = save_npz(tmp_path / "one.npz", **arrays)
    p2 = save_npz(tmp_path / "two.npz", **arrays)
    assert p1.read_bytes() == p2.read_bytes()
    back = load_npz(p1)
    np.testing.assert_array_equal(back["a"], arrays["a"])
    assert back["b"].tolist() == ["x", "yy"]


def test_object_arrays_are_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(TypeError, match="pickle"):
        save_npz(tmp_path / "bad.npz", a=np.array([{"x": 1}], dtype=object))
    assert list(tmp_path.iterdir()) == []


def test_json_turns_nan_into_null(tmp_path):
    p = save_json(tmp_path / "x.json", {"v": float("nan"), "w": np.float32(1.5), "n": np.int64(2)})
    assert json.loads(p.read_text()) == {"n": 2, "v": None, "w": 1.5}
