"""BM25 keyword search (bm25s) over the same chunks as the dense store.

The index is built lazily, on the first search, from a list of chunk ``Document``s or from a
function that returns them — for a Chroma store that function reads the stored chunks back out of
the collection, so BM25 and dense search rank exactly the same chunk ids. Indexes built from a
source are cached by a hash of their chunk ids and texts: graphs that are built many times (one
variant per parameter setting, self-consistency re-runs) tokenise the same corpus once.

Tokens: lower-cased runs of two or more word characters, English stop words removed, no stemming
(an exact clinical term such as "appendicolith" must match itself, and nothing else).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from typing import Any, Callable

import bm25s
import numpy as np
from langchain_core.documents import Document

from ragsafe.config import ConfigError
from ragsafe.retrievers.base import annotate

_CACHE_SIZE = 4
_cache: dict[tuple[str, float, float], "_Index"] = {}
_cache_lock = threading.Lock()


class _Index:
    """A built bm25s model with the chunks it ranks, in index order."""

    def __init__(self, chunks: list[Document], k1: float, b: float) -> None:
        self.chunks = chunks
        self.model = bm25s.BM25(k1=k1, b=b)
        self.model.index(tokenize([c.page_content for c in chunks]), show_progress=False)

    def top(self, query: str, k: int) -> list[Document]:
        words = tokenize([query])[0]
        if not words or not self.chunks:
            return []
        scores = np.asarray(self.model.get_scores(words), dtype=float)
        # stable sort: equal scores keep index order (chunk id order for a store), so results are reproducible
        order = np.argsort(-scores, kind="stable")[:k]
        order = [int(i) for i in order if scores[i] > 0]  # a chunk sharing no query term is not a hit
        return annotate([self.chunks[i] for i in order], [scores[i] for i in order])


def tokenize(texts: list[str]) -> list[list[str]]:
    """The tokens BM25 indexes and searches (same rule for chunks and queries)."""
    return bm25s.tokenize(texts, lower=True, stopwords="english", return_ids=False, show_progress=False)


def chunks_from_store(store: Any) -> list[Document]:
    """Every chunk stored in a :class:`~ragsafe.retrievers.chroma.ChromaStore`, ordered by chunk id."""
    got = store.collection.get(include=["documents", "metadatas"])
    docs = [Document(page_content=text or "", metadata={**(md or {}), "chunk_id": cid}, id=cid)
            for cid, text, md in zip(got["ids"], got["documents"], got["metadatas"])]
    return sorted(docs, key=lambda d: d.metadata["chunk_id"])


def corpus_fingerprint(chunks: list[Document]) -> str:
    """Hash over (chunk id, text) pairs: two chunk lists with the same fingerprint index identically."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(str(c.metadata.get("chunk_id") or c.id).encode())
        h.update(b"\x1f")
        h.update(c.page_content.encode())
        h.update(b"\x1e")
    return h.hexdigest()


class BM25Retriever:
    """BM25 top-k over a fixed chunk set; implements the :class:`~ragsafe.retrievers.base.Retriever` protocol.

    Args:
        chunks: the chunks, or a zero-argument function returning them (called once, on first use).
        name: name for run records.
        k1: BM25 term-frequency saturation.
        b: BM25 length normalisation.

    Example:
        >>> r = BM25Retriever([Document("Appendicolith on CT", metadata={"chunk_id": "a#c0"})])  # doctest: +SKIP
        >>> asyncio.run(r.search("appendicolith", k=3))[0].metadata["chunk_id"]  # doctest: +SKIP
        'a#c0'
    """

    def __init__(self, chunks: list[Document] | Callable[[], list[Document]], *, name: str = "bm25",
                 k1: float = 1.5, b: float = 0.75) -> None:
        self.name = name
        self.k1, self.b = k1, b
        self._source = chunks
        self._index: _Index | None = None
        self._fingerprint: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_store(cls, store: Any, **kw) -> "BM25Retriever":
        """BM25 over the chunks of a Chroma store (read back from its collection on first use)."""
        kw.setdefault("name", f"bm25({store.name})")
        return cls(lambda: chunks_from_store(store), **kw)

    def _built(self) -> _Index:
        with self._lock:
            if self._index is not None:
                return self._index
            chunks = list(self._source() if callable(self._source) else self._source)
            chunks = annotate(chunks)  # ids filled in the same way as every other retriever's hits
            self._fingerprint = corpus_fingerprint(chunks)
            key = (self._fingerprint, self.k1, self.b)
            with _cache_lock:
                index = _cache.get(key)
            if index is None:
                index = _Index(chunks, self.k1, self.b)
                with _cache_lock:
                    _cache[key] = index
                    while len(_cache) > _CACHE_SIZE:
                        _cache.pop(next(iter(_cache)))
            self._index = index
            return index

    def search_sync(self, query: str, k: int) -> list[Document]:
        """Blocking form of :meth:`search`."""
        return self._built().top(query, k)

    async def search(self, query: str, k: int) -> list[Document]:
        """Top-``k`` chunks by BM25 score (only chunks sharing at least one query term), best first."""
        return await asyncio.to_thread(self.search_sync, query, k)

    def all_chunks(self) -> list[Document]:
        return list(self._built().chunks)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"kind": "bm25", "name": self.name, "k1": self.k1, "b": self.b,
                                "tokenizer": "bm25s: lower, \\w\\w+, english stop words, no stemming"}
        if self._index is not None:
            info.update(chunks=len(self._index.chunks), corpus_hash=self._fingerprint)
        return info


def bm25_for(retriever: Any, **kw) -> BM25Retriever:
    """BM25 over the same corpus as ``retriever``.

    Works for a retriever with a Chroma ``store`` (a :class:`~ragsafe.retrievers.chroma.ChromaRetriever`)
    and for any retriever offering ``all_chunks() -> list[Document]``. The index is built on first search.

    Raises:
        ConfigError: the retriever offers neither, so there is no corpus to index.
    """
    if callable(getattr(retriever, "all_chunks", None)):
        name = getattr(retriever, "name", type(retriever).__name__)
        kw.setdefault("name", f"bm25({name})")
        return BM25Retriever(retriever.all_chunks, **kw)
    store = getattr(retriever, "store", None)
    if store is not None and hasattr(store, "collection"):
        return BM25Retriever.from_store(store, **kw)
    raise ConfigError(
        f"BM25 needs the chunks behind retriever {getattr(retriever, 'name', type(retriever).__name__)!r}: "
        "use a ChromaRetriever (its store is read back), or give your retriever an all_chunks() method "
        "returning the chunk Documents")
