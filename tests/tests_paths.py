"""Paths tests share (kept out of conftest so tests can import it)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
