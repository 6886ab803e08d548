"""Shared fixtures: tiny models are cached per session; MLflow and caches go to temp folders."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # helpers such as phiid_reference

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_lm():
    """Load (once per session) a tiny model by architecture."""
    from scalelens.models import load_model

    cache = {}

    def get(arch: str = "llama", seed: int = 0):
        key = f"tiny:{arch}:{seed}"
        if key not in cache:
            cache[key] = load_model(key)
        return cache[key]

    return get


@pytest.fixture()
def mlflow_tmp(tmp_path, monkeypatch):
    """An isolated MLflow store: sqlite in tmp_path, run from tmp_path."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def ladder_repo(tmp_path_factory):
    """The tiny pipeline, every stage, run once per session with `dvc repro` (minutes): an
    offline hub id and a local checkpoint folder. (root, model keys). Tests that change it
    work on a clone."""
    from tiny_pipeline import build_ladder_repo

    return build_ladder_repo(tmp_path_factory.mktemp("ladder"))
