"""What a run depends on: the config that is hashed into its record, and the key=value grammar of its overrides."""

from __future__ import annotations

import dataclasses

from ragsafe.config import AnswerPolicy, ConfigError, EndpointConfig
from ragsafe.defaults import BOOTSTRAP_B, BOOTSTRAP_SEED, CHUNK_OVERLAP, CHUNK_SIZE
from ragsafe.retrievers.embedders import EmbedderConfig


@dataclasses.dataclass(kw_only=True)
class RunConfig:
    """Everything a run depends on; hashed into the run record."""

    graphs: list[str]
    """Graph variants: a name, or name[key=value,...] for inline params."""
    sets: list[str] = dataclasses.field(default_factory=list)
    """Param overrides "graph.key=value" applied to every variant of that graph."""
    grids: list[str] = dataclasses.field(default_factory=list)
    """Ablation grids "graph.key=v1,v2,...": one variant per value (several grids: every combination)."""
    benchmark: str = "demo"
    """Registered benchmark name or a path to a benchmark file."""
    corpus: str = "demo"
    """Registered corpus name, a folder of .md/.txt, or a .jsonl dump."""
    split: str | None = None
    """Only questions of this split (dev/test)."""
    limit: int | None = None
    """First N questions in id order (after the split filter)."""
    endpoint: EndpointConfig = dataclasses.field(default_factory=EndpointConfig)
    """Where the model lives."""
    answer: AnswerPolicy = dataclasses.field(default_factory=AnswerPolicy)
    """How the answer call is made (mode, token budget, temperature, seed)."""
    out: str = "runs"
    """Folder that holds run folders."""
    chroma_path: str | None = None
    """PersistentClient folder (default $RAGSAFE_HOME/chroma)."""
    chroma_url: str | None = None
    """URL of a `chroma run` server; overrides chroma_path."""
    poison: str | None = None
    """Poison the corpus: "conflict" (each question's conflict evidence as one extra document) or a JSONL
    file of misleading documents; indexed into a collection of its own, never the base one."""
    chunk_size: int = CHUNK_SIZE
    """Chunk length in embedder tokens."""
    chunk_overlap: int = CHUNK_OVERLAP
    """Tokens shared by consecutive chunks."""
    chunk_tokenizer: str = "embedder"
    """What counts chunk tokens: "embedder", "tiktoken:cl100k_base" (the paper's) or "hf:PATH"."""
    embedder: EmbedderConfig = dataclasses.field(default_factory=EmbedderConfig)
    """The index's embedder (a graph's ``embedder=`` param picks another for its variant)."""
    concurrency: int = 1
    """Questions in flight at once (in total: ``procs`` processes share them)."""
    procs: int = 1
    """Worker processes the questions are split over (1: this process answers them); not in the hash."""
    skip_invalid: bool = False
    """Run without the benchmark's invalid records (their ids are recorded) instead of refusing."""
    allow_errors: bool = False
    """Report metrics for variants with error samples (errors counted as null)."""
    retry_errors: bool = False
    """On resume, run again the samples that ended in an error."""
    bootstrap_B: int = BOOTSTRAP_B
    """Bootstrap resamples behind every interval."""
    bootstrap_seed: int = BOOTSTRAP_SEED
    """Seed of the shared bootstrap index matrix."""
    graph_modules: list[str] = dataclasses.field(default_factory=list)
    """Extra modules/files whose @graph factories to register (the older name of ``plugins``)."""
    plugins: list[str] = dataclasses.field(default_factory=list)
    """Plugins to load first: .py files or module names that register graphs, metrics, retrievers, ..."""
    retriever: str = "chroma"
    """What retrieving graphs search: a registered retriever (NAME or NAME[key=value,...]) or module:factory."""
    cache: str = "use"
    """LLM response cache: "use" (read and write), "refresh" (ask the server, overwrite), "off"."""


def parse_assignments(items: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{what} {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out.append((k.strip(), v.strip()))
    return out
