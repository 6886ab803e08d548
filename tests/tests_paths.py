"""Paths and helpers tests share (kept out of conftest so tests can import them)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stage_module(name: str):
    """stages/<name>.py imported as a module (the stages folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def repo_params() -> dict:
    """The repository's params.yaml as a dict, its repository-relative paths made absolute, for
    a params.yaml written into a temporary folder (paths are validated against the folder)."""
    import yaml

    p = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    p["uniformity"]["dataset"] = str(ROOT / p["uniformity"]["dataset"])
    p["motifs"]["graphs_dir"] = str(ROOT / p["motifs"]["graphs_dir"])
    return p
