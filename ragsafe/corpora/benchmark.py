"""Benchmark questions in the RadSaFE schema, loading and validation.

A question has 4–5 options lettered contiguously from A, the correct letter, clean and conflict
evidence, and per-option ``high_risk`` / ``unsafe`` / ``contradicts`` labels (optional: metrics
that need labels report "n/a" when a benchmark has none). Validation never drops a record
silently: every problem names the file, the line, the record id and the field.
"""

from __future__ import annotations

from typing import Callable

from ragsafe.corpora.documents import DATA_DIR
from ragsafe.corpora.formats.ragsafe import load_ragsafe_jsonl
from ragsafe.corpora.schema import Benchmark
from ragsafe.registry import Registry

"""Fewest and most options a valid question may have (graphs that call the LLM per option bound their
calls with these)."""

benchmarks: Registry[Callable[[], "Benchmark"]] = Registry("benchmark")


@benchmarks.register("demo")
def demo_benchmark() -> Benchmark:
    """Demo MCQs written for ragsafe in the RadSaFE schema (not clinician-validated; not RadSaFE-200)."""
    files = sorted((DATA_DIR / "demo_benchmark").glob("*.jsonl"))
    return load_ragsafe_jsonl(files, name="demo")


def load_benchmark(spec: str) -> Benchmark:
    """A registered benchmark name, or a file spec for :func:`ragsafe.corpora.loaders.load_any`.

    File specs: a path (format detected), ``FORMAT:PATH`` (e.g. ``mcq:mirage.json``),
    ``radsafe:UNIFIED.jsonl+LABELS.json``, or a YAML manifest (see ``ragsafe/corpora/README.md``).
    """
    if str(spec) in benchmarks:
        return benchmarks.get(str(spec))()
    from ragsafe.corpora.loaders import is_file_spec, load_any
    if is_file_spec(str(spec)):
        return load_any(str(spec))
    return benchmarks.get(str(spec))()
