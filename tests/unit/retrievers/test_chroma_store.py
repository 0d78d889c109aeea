"""ChromaStore.query over a real (embedded, in-memory) Chroma collection with a tiny deterministic embedder."""

from __future__ import annotations

import hashlib

import chromadb
from langchain_core.documents import Document

from ragsafe.retrievers.chroma import ChromaStore


class BagEmbedder:
    """Bag of hashed words in 16 dims: similar texts get similar vectors, no model needed."""

    name = "bag16"

    def _vec(self, text: str) -> list[float]:
        v = [0.0] * 16
        for w in text.lower().split():
            v[int(hashlib.md5(w.encode()).hexdigest(), 16) % 16] += 1.0
        return v

    def embed_documents(self, texts):
        return [self._vec(t) for t in texts]

    def embed_query(self, text):
        return self._vec(text)


def _chunk(doc: str, i: int, text: str) -> Document:
    cid = f"{doc}#c{i}"
    return Document(page_content=text, id=cid, metadata={"chunk_id": cid, "doc_id": doc, "title": doc,
                                                         "content_hash": hashlib.sha256(text.encode()).hexdigest()})


def test_query_returns_ranked_annotated_documents():
    client = chromadb.EphemeralClient()
    store = ChromaStore(client, "t-annotated", BagEmbedder())
    store.ingest([_chunk("appendix", 0, "appendicitis dilated appendix fat stranding"),
                  _chunk("appendix", 1, "appendicolith and periappendiceal fluid"),
                  _chunk("stroke", 0, "hyperdense middle cerebral artery sign")])
    hits = store.query("dilated appendix with fat stranding", 3)
    assert [h.metadata["rank"] for h in hits] == [1, 2, 3]
    assert hits[0].id == hits[0].metadata["chunk_id"] == "appendix#c0"
    assert hits[0].metadata["doc_id"] == "appendix" and hits[0].metadata["title"] == "appendix"
    scores = [h.metadata["score"] for h in hits]
    assert scores == sorted(scores, reverse=True) and all(isinstance(s, float) for s in scores)
    assert store.query("dilated appendix", 10)[-1].metadata["rank"] == 3  # k beyond the collection size
