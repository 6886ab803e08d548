"""Figures of every study (matplotlib, Agg backend); one module per study."""
