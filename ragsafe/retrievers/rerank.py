"""Re-ordering retrieved chunks by a second score (the LLM's or an embedding similarity).

:func:`order_by_scores` is shared by every reranker: best score first, ties (and chunks without a
score) in retrieval order, so a reranker that gives no information leaves the retrieval ranking
unchanged. Each reranked chunk keeps its ``retrieval_rank`` and ``retrieval_score``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, Sequence

import numpy as np
from langchain_core.documents import Document

from ragsafe.config import ConfigError
from ragsafe.retrievers.base import annotate


class Embedder(Protocol):
    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...
    def embed_query(self, text: str) -> list[float]: ...


def order_by_scores(docs: Sequence[Document], scores: Sequence[float], k: int | None = None) -> list[Document]:
    """``docs`` re-ranked by ``scores`` (higher first; ties keep retrieval order), cut to ``k``.

    Example:
        >>> a, b, c = (Document(t, id=t) for t in "abc")
        >>> [d.id for d in order_by_scores([a, b, c], [1.0, 3.0, 1.0])]
        ['b', 'a', 'c']
    """
    if len(docs) != len(scores):
        raise ValueError(f"{len(docs)} chunks but {len(scores)} scores")
    order = sorted(range(len(docs)), key=lambda i: (-float(scores[i]), i))[:k]
    picked = []
    for i in order:
        md = dict(docs[i].metadata)
        md["retrieval_rank"] = md.get("rank", i + 1)
        md["retrieval_score"] = md.get("score")
        picked.append(Document(page_content=docs[i].page_content, metadata=md, id=docs[i].id))
    return annotate(picked, [float(scores[i]) for i in order])


def embedder_of(retriever: Any) -> Embedder:
    """The embedder a retriever searches with: ``retriever.embedder`` or ``retriever.store.embedder``.

    Raises:
        ConfigError: the retriever exposes none (the embedding reranker must use the store's own embedder).
    """
    for owner in (retriever, getattr(retriever, "store", None)):
        emb = getattr(owner, "embedder", None) if owner is not None else None
        if emb is not None and hasattr(emb, "embed_documents") and hasattr(emb, "embed_query"):
            return emb
    raise ConfigError(
        f"the embedding reranker needs the store's embedder, but retriever "
        f"{getattr(retriever, 'name', type(retriever).__name__)!r} has neither .embedder nor .store.embedder; "
        "use a ChromaRetriever or reranker=llm")


class EmbeddingReranker:
    """Cosine similarity between a query text and each chunk, with the store's embedder.

    Args:
        embedder: anything with ``embed_documents`` / ``embed_query`` (vectors need not be normalised).
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def scores(self, query: str, docs: Sequence[Document]) -> list[float]:
        if not docs:
            return []
        q = np.asarray(self.embedder.embed_query(query), dtype=float)
        m = np.asarray(self.embedder.embed_documents([d.page_content for d in docs]), dtype=float)
        norms = np.linalg.norm(m, axis=1) * (np.linalg.norm(q) or 1.0)
        return [float(x) for x in (m @ q) / np.where(norms == 0, 1.0, norms)]

    async def rerank(self, query: str, docs: Sequence[Document], k: int) -> list[Document]:
        """Top-``k`` of ``docs`` by cosine similarity to ``query``."""
        scores = await asyncio.to_thread(self.scores, query, list(docs))
        return order_by_scores(docs, scores, k)
