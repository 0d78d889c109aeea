"""Benchmark file formats beyond the ragsafe schema (official RadSaFE release, generic MCQ)."""

from __future__ import annotations

from pathlib import Path

from .benchmark import Benchmark, load_ragsafe_jsonl


def load_any(path: Path) -> Benchmark:
    """Pick a loader from the file's shape."""
    return load_ragsafe_jsonl(path)
