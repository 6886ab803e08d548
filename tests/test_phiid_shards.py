"""Sharded, resumable PhiID: checkpoints, resume after interruption, merge and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

import scalelens.phiid.shards as shards_module
from scalelens.phiid import (
    CheckpointMismatchError,
    ShardMergeError,
    compute_shard,
    load_result,
    merge_shards,
    pairwise_phiid,
    save_result,
)


def _series(seed: int = 0) -> np.ndarray:
    """[3 prompts, 7 heads, 40 steps] of autocorrelated, mutually coupled series."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((3, 7, 40))
    series = np.cumsum(noise, axis=2) * 0.3 + noise
    series[:, 3] += 0.5 * series[:, 1]
    return series


LENGTHS = np.array([40, 33, 37])
CATEGORIES = ["a", "b", "a"]


def _run_all_shards(directory, n_shards=3, **kwargs):
    settings = {"lengths": LENGTHS, "categories": CATEGORIES, "chunk_pairs": 4}
    settings.update(kwargs)
    series = settings.pop("series", _series())
    return [
        compute_shard(series, shard=f"{k}/{n_shards}", checkpoint_dir=directory, **settings)
        for k in range(n_shards)
    ]


@pytest.mark.parametrize("estimator,redundancy", [("gaussian", "MMI"), ("discrete", "MMI")])
def test_merged_shards_equal_the_in_memory_run(tmp_path, estimator, redundancy):
    runs = _run_all_shards(tmp_path, estimator=estimator, redundancy=redundancy, return_atoms=True)
    assert sum(r.pair_stop - r.pair_start for r in runs) == 21
    merged = merge_shards(tmp_path)
    direct = pairwise_phiid(
        _series(), lengths=LENGTHS, categories=CATEGORIES, estimator=estimator,
        redundancy=redundancy, return_atoms=True,
    )  # fmt: skip
    np.testing.assert_allclose(merged.sts, direct.sts, rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.rtr, direct.rtr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.atoms, direct.atoms, rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.sts_by_category, direct.sts_by_category, atol=1e-12)
    assert np.array_equal(merged.n_prompts_defined, direct.n_prompts_defined)
    assert merged.settings == direct.settings and merged.input_hash == direct.input_hash
    assert merged.categories == ("a", "b") and merged.unit == direct.unit


def test_interrupted_shard_resumes_from_last_completed_chunk(tmp_path, monkeypatch):
    series = _series(1)
    real = shards_module.compute_pair_chunk
    calls = {"n": 0}

    def crash_on_third_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(shards_module, "compute_pair_chunk", crash_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        compute_shard(series, shard="0/1", checkpoint_dir=tmp_path, chunk_pairs=4)
    assert len(list(tmp_path.glob("phiid_*.npz"))) == 2
    assert not list(tmp_path.glob(".*tmp*"))
    monkeypatch.setattr(shards_module, "compute_pair_chunk", real)
    run = compute_shard(series, shard="0/1", checkpoint_dir=tmp_path, chunk_pairs=4)
    assert (run.n_chunks, run.n_resumed, run.n_computed) == (6, 2, 4)
    again = compute_shard(series, shard="0/1", checkpoint_dir=tmp_path, chunk_pairs=4)
    assert again.n_computed == 0
    np.testing.assert_allclose(merge_shards(tmp_path).sts, pairwise_phiid(series).sts, atol=1e-12)


def test_merge_refuses_a_missing_shard(tmp_path):
    series = _series()
    for k in (0, 2):
        compute_shard(series, shard=f"{k}/3", checkpoint_dir=tmp_path, chunk_pairs=4)
    with pytest.raises(ShardMergeError, match=r"shard 1/3 missing"):
        merge_shards(tmp_path)


def test_merge_refuses_an_incomplete_shard(tmp_path):
    _run_all_shards(tmp_path)
    max(tmp_path.glob("phiid_shard00002of00003_chunk*.npz")).unlink()
    with pytest.raises(ShardMergeError, match=r"shard 2/3 incomplete"):
        merge_shards(tmp_path)


def test_merge_refuses_shards_with_different_settings(tmp_path):
    series = _series()
    compute_shard(series, shard="0/2", checkpoint_dir=tmp_path, tau=1)
    compute_shard(series, shard="1/2", checkpoint_dir=tmp_path, tau=2)
    with pytest.raises(CheckpointMismatchError, match="tau"):
        merge_shards(tmp_path)


def test_merge_refuses_shards_of_different_data(tmp_path):
    compute_shard(_series(0), shard="0/2", checkpoint_dir=tmp_path)
    compute_shard(_series(5), shard="1/2", checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointMismatchError, match="input_hash"):
        merge_shards(tmp_path)


def test_resume_refuses_checkpoints_of_another_run(tmp_path):
    compute_shard(_series(), shard="0/2", checkpoint_dir=tmp_path, estimator="gaussian")
    with pytest.raises(CheckpointMismatchError, match="estimator"):
        compute_shard(_series(), shard="0/2", checkpoint_dir=tmp_path, estimator="discrete")


def test_merge_of_empty_directory_raises(tmp_path):
    with pytest.raises(ShardMergeError, match="no PhiID checkpoint"):
        merge_shards(tmp_path)


def test_checkpoints_and_results_load_without_pickle(tmp_path):
    series = _series()
    series[0, 2] = 4.0  # a constant head in prompt 0
    _run_all_shards(tmp_path / "ckpt", series=series, return_atoms=True)
    for path in (tmp_path / "ckpt").glob("*.npz"):
        with np.load(path, allow_pickle=False) as data:
            assert str(data["meta_estimator"]) == "gaussian"
    merged = merge_shards(tmp_path / "ckpt")
    assert merged.degeneracy.head_reasons == {"constant": 1}
    path = save_result(merged, tmp_path / "result.npz")
    loaded = load_result(path)
    np.testing.assert_array_equal(loaded.sts, merged.sts)
    np.testing.assert_array_equal(loaded.atoms, merged.atoms)
    np.testing.assert_array_equal(loaded.rtr_by_category, merged.rtr_by_category)
    assert loaded.settings == merged.settings and loaded.unit == "nats"
    assert loaded.degeneracy.head_reasons == merged.degeneracy.head_reasons
    assert loaded.degeneracy.pair_reasons == merged.degeneracy.pair_reasons
    assert loaded.degeneracy.n_degenerate_pairs == merged.degeneracy.n_degenerate_pairs == 6


def test_saved_result_bytes_are_identical_across_saves(tmp_path):
    """DVC hashes the result file: the same result must always give the same bytes."""
    result = pairwise_phiid(_series(), lengths=LENGTHS, categories=CATEGORIES)
    first = save_result(result, tmp_path / "a.npz").read_bytes()
    second = save_result(result, tmp_path / "b").read_bytes()
    assert (tmp_path / "b.npz").is_file()
    assert first == second
