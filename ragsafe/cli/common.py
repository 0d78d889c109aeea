"""Arguments several command groups share (one definition each, one help text each)."""

from __future__ import annotations

import argparse

from ragsafe.config import ConfigError
from ragsafe.defaults import CHUNK_OVERLAP, CHUNK_SIZE

SPLITS = ("dev", "test", "all")


def split_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", default="all", choices=SPLITS,
                   help="only questions of this split (default: all questions)")


def split_of(a: argparse.Namespace) -> str | None:
    """The split a library call takes: None for every question."""
    return None if a.split == "all" else a.split


def chroma_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", default="demo", help="registered corpus, folder of .md/.txt, or .jsonl dump")
    p.add_argument("--chroma-path", default=None, help="PersistentClient folder (default $RAGSAFE_HOME/chroma)")
    p.add_argument("--chroma-url", default=None, help="URL of a `chroma run` server")
    p.add_argument("--chunk-size", type=int, default=CHUNK_SIZE,
                   help=f"chunk length in embedder tokens (default {CHUNK_SIZE})")
    p.add_argument("--chunk-overlap", type=int, default=CHUNK_OVERLAP,
                   help=f"tokens shared by consecutive chunks (default {CHUNK_OVERLAP})")


def cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the LLM response cache")
    p.add_argument("--refresh-cache", action="store_true", help="ask the server for everything; overwrite the cache")


def cache_mode(a: argparse.Namespace) -> str:
    if a.no_cache and a.refresh_cache:
        raise ConfigError("--no-cache and --refresh-cache exclude each other; pick one")
    return "off" if a.no_cache else "refresh" if a.refresh_cache else "use"


MAP_HELP = ("read the benchmark file through a field mapping (the mapped format: JSON, JSONL, CSV or Parquet), "
            "e.g. question=stem,options=opa+opb+opc+opd,answer=cop,answer_format=index,index_base=1; "
            "keys in ragsafe/corpora/formats/mapped.py")


def benchmark_spec(spec: str, mapping: str | None) -> str:
    """The benchmark spec a ``--map`` turns ``spec`` into (the mapping travels inside it, so it is hashed)."""
    return f"mapped:{spec}#{mapping}" if mapping else spec

