"""Sweep files choose the embedder and the chunk tokenizer; graphs take embedder= as a param and in grids."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ragsafe.config import ConfigError
from ragsafe.experiments.sweep import load_sweep
from ragsafe.retrievers.embedders import EmbedderConfig


def write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


BASE = {"name": "emb", "benchmark": "demo", "limit": 2,
        "endpoints": [{"name": "fake", "model": "fake", "base_url": "http://127.0.0.1:9/v1"}]}


def test_sweep_file_embedder_chunk_tokenizer_and_an_embedder_grid(tmp_path):
    sweep = load_sweep(write(tmp_path, {**BASE, "embedder": {"name": "all-mpnet-base-v2", "batch_size": 8},
                                        "chunk": {"size": 200, "overlap": 20, "tokenizer": "tiktoken:cl100k_base"},
                                        "graphs": ["closed_book",
                                                   {"name": "standard_rag", "params": {"k": 2},
                                                    "grid": {"embedder": ["all-MiniLM-L6-v2", "all-mpnet-base-v2"]}}]}))
    (_, cfg), = sweep.configs()
    assert cfg.embedder == EmbedderConfig(name="all-mpnet-base-v2", batch_size=8)
    assert cfg.chunk_tokenizer == "tiktoken:cl100k_base" and cfg.chunk_size == 200
    job, = sweep.jobs()
    emb = {v.label: v.embedder for v in job.plan["variants"]}
    assert emb == {"closed_book": None, "standard_rag[embedder=all-MiniLM-L6-v2,k=2]": "all-MiniLM-L6-v2",
                   "standard_rag[embedder=all-mpnet-base-v2,k=2]": "all-mpnet-base-v2"}
    corpus = job.plan["identity"]["corpus"]
    assert corpus["embedder"]["name"] == "all-mpnet-base-v2" and corpus["chunk"]["tokenizer"] == "tiktoken:cl100k_base"
    # the command line's flags win over the file's (sweep --embedder ...)
    (_, cfg2), = sweep.configs(embedder=EmbedderConfig(name="all-MiniLM-L6-v2"))
    assert cfg2.embedder.name == "all-MiniLM-L6-v2"


def test_bad_embedder_entries_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"embedder.*embedder\.batch_size"):
        load_sweep(write(tmp_path, {**BASE, "embedder": {"batch_size": "eight"}, "graphs": ["closed_book"]}))
    with pytest.raises(ConfigError, match="retrieves nothing"):
        load_sweep(write(tmp_path, {**BASE, "graphs": [{"name": "closed_book", "params": {"embedder": "x"}}]}))
    with pytest.raises(ConfigError, match=r"chunk\.tokenizer.*spacy"):
        load_sweep(write(tmp_path, {**BASE, "chunk": {"tokenizer": "spacy"}, "graphs": ["standard_rag"]}))
    with pytest.raises(ConfigError, match="does not exist"):
        load_sweep(write(tmp_path, {**BASE, "embedder": "./no-such-model", "graphs": ["standard_rag"]})).jobs()
