"""scalelens: a reproducibility-locked pipeline for cross-scale experiments on transformer internals."""
