"""Chroma store: embedded ``PersistentClient`` by default, ``HttpClient`` for a `chroma run` server.

ragsafe computes embeddings itself and hands Chroma vectors (the collection has no embedding
function, so Chroma's default model is never loaded). Ingestion is idempotent: each chunk stores
the sha256 of its text, and only new or changed chunks are embedded; chunks that left the corpus
are deleted. Search is cosine on normalised vectors (= inner product, the paper's metric); for
corpora of this size Chroma's HNSW returns the exact neighbours.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ragsafe import config
from ragsafe.corpora.chunking import ChunkParams, chunk_documents
from ragsafe.retrievers.base import annotated
from ragsafe.retrievers.embedders import SentenceTransformerEmbedder, get_embedder


def make_client(path: str | Path | None = None, url: str | None = None):
    """``PersistentClient`` under ``path`` (default ``$RAGSAFE_HOME/chroma``), or ``HttpClient`` for ``url``."""
    if url:
        u = urlparse(url if "://" in url else f"http://{url}")
        return chromadb.HttpClient(host=u.hostname or "127.0.0.1", port=u.port or 8000, ssl=u.scheme == "https")
    path = Path(path) if path else config.home() / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path))


def collection_name(corpus: str, embedder: str, params: ChunkParams) -> str:
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", f"{corpus}-{embedder}-{params.size}-{params.overlap}").strip("-._")
    if len(base) > 60:
        base = base[:40] + "-" + hashlib.sha256(base.encode()).hexdigest()[:12]
    return base if len(base) >= 3 else f"rs-{base}"


class ChromaStore:
    """One chunked corpus in one Chroma collection.

    Args:
        client: a Chroma client (:func:`make_client`).
        name: collection name.
        embedder: the sentence-transformers embedder (also counts chunk tokens).
    """

    def __init__(self, client, name: str, embedder: SentenceTransformerEmbedder | None = None) -> None:
        self.client = client
        self.name = name
        self.embedder = embedder or get_embedder()
        self.collection = client.get_or_create_collection(
            name, embedding_function=None,
            metadata={"hnsw:space": "cosine", "embedder": self.embedder.name, "ragsafe": "1"})
        self.last_ingest: dict[str, Any] = {}
        self._size: int | None = None

    def ingest(self, chunks: list[Document], batch: int = 256) -> dict[str, int]:
        """Add new/changed chunks, delete vanished ones; returns counts (embedded=0 when unchanged)."""
        t0 = time.perf_counter()
        self._size = None
        existing = self.collection.get(include=["metadatas"])
        have = {i: (m or {}).get("content_hash") for i, m in zip(existing["ids"], existing["metadatas"])}
        want = {c.metadata["chunk_id"]: c for c in chunks}
        if len(want) != len(chunks):
            raise ValueError(f"duplicate chunk ids in the corpus for collection {self.name!r}")
        todo = [c for cid, c in want.items() if have.get(cid) != c.metadata["content_hash"]]
        stale = [cid for cid in have if cid not in want]
        if stale:
            self.collection.delete(ids=stale)
        for i in range(0, len(todo), batch):
            part = todo[i:i + batch]
            vecs = self.embedder.embed_documents([c.page_content for c in part])
            self.collection.upsert(ids=[c.metadata["chunk_id"] for c in part], embeddings=vecs,
                                   documents=[c.page_content for c in part],
                                   metadatas=[_clean_md(c.metadata) for c in part])
        self.last_ingest = {"chunks": len(want), "embedded": len(todo), "deleted": len(stale),
                            "seconds": round(time.perf_counter() - t0, 3)}
        return self.last_ingest

    def count(self) -> int:
        return self.collection.count()

    def content_hash(self) -> str:
        """Hash over (chunk id, content hash) of the stored collection: the index identity for run records."""
        got = self.collection.get(include=["metadatas"])
        pairs = sorted((i, (m or {}).get("content_hash", "")) for i, m in zip(got["ids"], got["metadatas"]))
        return hashlib.sha256(repr(pairs).encode()).hexdigest()

    def query(self, query: str, k: int) -> list[Document]:
        vec = self.embedder.embed_query(query)
        return self.query_vector(vec, k)

    def query_vector(self, vec: list[float], k: int) -> list[Document]:
        # the size is read once per ingest, not per query: a count() round trip per query would
        # double query latency against a Chroma server
        if self._size is None:
            self._size = self.count()
        n = self._size
        if n == 0:
            raise RuntimeError(f"Chroma collection {self.name!r} is empty; build it with `ragsafe index`")
        res = self.collection.query(query_embeddings=[vec], n_results=min(k, n),
                                    include=["documents", "metadatas", "distances"])
        return [annotated(text, md, rank=rank, score=1.0 - dist, fallback_id=cid)
                for rank, (cid, text, md, dist) in enumerate(zip(res["ids"][0], res["documents"][0],
                                                                  res["metadatas"][0], res["distances"][0]), start=1)]


def _clean_md(md: dict) -> dict:
    return {k: v for k, v in md.items() if isinstance(v, (str, int, float, bool)) and k not in ("rank", "score")}


class ChromaRetriever(BaseRetriever):
    """Dense top-k over a :class:`ChromaStore`; both a ragsafe ``Retriever`` and a langchain ``BaseRetriever``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    store: Any
    k: int = 10
    name: str = "chroma"

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self.store.query(query, self.k)

    async def search(self, query: str, k: int) -> list[Document]:
        return await asyncio.to_thread(self.store.query, query, k)

    def describe(self) -> dict[str, Any]:
        s = self.store
        return {"kind": "chroma", "collection": s.name, "embedder": s.embedder.name, "chunks": s.count(),
                "index_hash": s.content_hash()}


def build_index(corpus: str = "demo", *, chroma_path: str | Path | None = None, chroma_url: str | None = None,
                chunk: ChunkParams = ChunkParams(), docs: list[Document] | None = None,
                label: str | None = None) -> ChromaStore:
    """Load + chunk ``corpus`` and ingest it (idempotently) into its collection (named after ``label``
    when given: a poisoned corpus gets a collection of its own)."""
    from ragsafe.corpora.documents import load_corpus

    embedder = get_embedder()
    docs = docs if docs is not None else load_corpus(corpus)
    chunks = chunk_documents(docs, embedder.tokenizer, chunk)
    label = label or (Path(corpus).name if ("/" in corpus or Path(corpus).exists()) else corpus)
    store = ChromaStore(make_client(chroma_path, chroma_url), collection_name(label, embedder.name, chunk), embedder)
    store.ingest(chunks)
    return store
