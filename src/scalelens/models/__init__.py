"""Model registry, loading (packaged GGUF, hub, local, tiny) and per-architecture head geometry.

The names load lazily: `from scalelens.models.registry import ...` (or `get_spec` from here)
does not import torch or transformers, so stages that never load a model start fast.
"""

from importlib import import_module

_WHERE = {
    "HeadGeometry": "geometry", "UnsupportedArchitectureError": "geometry",
    "head_geometry": "geometry",
    "LoadedModel": "loading", "ModelLoadError": "loading", "load_model": "loading",
    "DEFAULT_LADDER": "registry", "REGISTRY": "registry", "ModelSpec": "registry",
    "get_spec": "registry",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(f"scalelens.models.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scalelens.models' has no attribute {name!r}")
