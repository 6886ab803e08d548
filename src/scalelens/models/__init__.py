"""Model registry, loading (packaged GGUF, hub, local, tiny) and per-architecture head geometry."""

from scalelens.models.geometry import HeadGeometry, UnsupportedArchitectureError, head_geometry
from scalelens.models.loading import LoadedModel, ModelLoadError, load_model
from scalelens.models.registry import DEFAULT_LADDER, REGISTRY, ModelSpec, get_spec

__all__ = [
    "DEFAULT_LADDER", "REGISTRY", "HeadGeometry", "LoadedModel", "ModelLoadError", "ModelSpec",
    "UnsupportedArchitectureError", "get_spec", "head_geometry", "load_model",
]
