"""The registry of benchmark file formats: each format module registers one :class:`Loader`."""

from __future__ import annotations

import dataclasses
from typing import Callable

from ragsafe.corpora.schema import Benchmark
from ragsafe.registry import Registry


@dataclasses.dataclass(frozen=True)
class Loader:
    """One benchmark file format."""

    name: str
    load: Callable[..., Benchmark]
    """``load(files: list[Path], name: str | None, **options) -> Benchmark``."""
    files: str
    """The files it takes, for help texts (e.g. ``UNIFIED.jsonl+LABELS.json``)."""
    options: tuple[str, ...] = ()
    """Keyword options a manifest may set (e.g. ``columns``)."""
    doc: str = ""


loaders: Registry[Loader] = Registry("benchmark format", modules=("ragsafe.corpora.formats.*",))
