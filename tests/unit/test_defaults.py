"""Shared defaults are written once (ragsafe/defaults.py): every layer's default is that value."""

from __future__ import annotations

import inspect

from ragsafe import defaults
from ragsafe.cli.main import build_parser
from ragsafe.config import EndpointConfig
from ragsafe.corpora.chunking import ChunkParams
from ragsafe.evals import stats
from ragsafe.evals.score import analyze, summarize
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.sweep_schema import BootstrapSpec, ChunkSpec
from ragsafe.llm.models import DEFAULT_MODEL, EMBEDDED


def test_chunking_defaults_agree_everywhere():
    cfg = RunConfig(graphs=["closed_book"])
    want = (defaults.CHUNK_SIZE, defaults.CHUNK_OVERLAP)
    assert (cfg.chunk_size, cfg.chunk_overlap) == want == (ChunkParams().size, ChunkParams().overlap)
    assert (ChunkSpec().size, ChunkSpec().overlap) == want
    for cmd in (["index"], ["run", "--graph", "closed_book"], ["retrieval-eval"]):
        a = build_parser().parse_args(cmd)
        assert (a.chunk_size, a.chunk_overlap) == want, cmd


def test_bootstrap_defaults_agree_everywhere():
    want = (defaults.BOOTSTRAP_B, defaults.BOOTSTRAP_SEED)
    cfg = RunConfig(graphs=["closed_book"])
    assert (cfg.bootstrap_B, cfg.bootstrap_seed) == want == (BootstrapSpec().B, BootstrapSpec().seed)
    for fn in (stats.bootstrap_indices, analyze, summarize):
        ps = inspect.signature(fn).parameters
        assert (ps["B"].default, ps["seed"].default) == want, fn.__name__


def test_default_model_is_one_embedded_model():
    assert EndpointConfig().model == DEFAULT_MODEL == defaults.DEFAULT_MODEL and DEFAULT_MODEL in EMBEDDED
