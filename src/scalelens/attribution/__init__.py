"""Exact neuron-level attribution graphs of one forward pass, without transcoders.

``attribute_prompt(lm, text, settings)`` freezes the model on the prompt (attention patterns,
normalisation scales, MLP gains: ``scalelens.attribution.frozen``), computes rows of direct
effects between MLP units, token embeddings and the top next-token logits in batched backward
passes (``rows``, ``expansion``), prunes the graph as circuit-tracer does (``pruning``), and
scores it: completeness in the frozen model, faithfulness in the real one (``faithfulness``).
``AttributionResult.to_json_dict`` writes the circuit-tracer / Neuronpedia schema that
``scalelens.motifs.loader`` reads.
"""

from scalelens.attribution.architecture import SUPPORTED_ARCHITECTURES, UnsupportedModelError
from scalelens.attribution.attribute import AttributionError, attribute_prompt
from scalelens.attribution.faithfulness import unit_means
from scalelens.attribution.result import AttributionQuality, AttributionResult, LogitTarget
from scalelens.attribution.settings import AttributionSettings, AttributionSettingsError

__all__ = [
    "SUPPORTED_ARCHITECTURES", "AttributionError", "AttributionQuality", "AttributionResult",
    "AttributionSettings", "AttributionSettingsError", "LogitTarget", "UnsupportedModelError",
    "attribute_prompt", "unit_means",
]
