"""scalelens: a reproducibility-locked pipeline for cross-scale experiments on the internals of
transformer language models."""
