"""The built-in retrievers by name: ``chroma`` (default), ``bm25``, ``hybrid``, ``rerank``.

Each is built over the run's Chroma index (:class:`~ragsafe.retrievers.registry.RetrieverContext`),
so every retriever of a run searches the same chunks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from langchain_core.documents import Document

from ragsafe.retrievers.base import Retriever
from ragsafe.retrievers.bm25 import BM25Retriever, chunks_from_store
from ragsafe.retrievers.chroma import ChromaRetriever
from ragsafe.retrievers.hybrid import HybridRetriever
from ragsafe.retrievers.registry import RetrieverContext, retriever
from ragsafe.retrievers.rerank import EmbeddingReranker


def context(store: Any, docs: list[Document] | None = None) -> RetrieverContext:
    """The context a run builds its retriever from: its Chroma store (and the corpus Documents)."""
    return RetrieverContext(store=store, docs=docs, dense=ChromaRetriever(store=store),
                            chunks=lambda: chunks_from_store(store))


@retriever("chroma")
def chroma(ctx: RetrieverContext, params: Any) -> Retriever:
    """Dense search: cosine similarity over the run's Chroma collection (the paper's retriever)."""
    return ctx.dense


@dataclasses.dataclass(frozen=True, kw_only=True)
class BM25Params:
    k1: float = 1.5
    """Term-frequency saturation."""
    b: float = 0.75
    """Length normalisation (0: none, 1: full)."""


@retriever("bm25", params=BM25Params)
def bm25(ctx: RetrieverContext, params: BM25Params) -> Retriever:
    """Lexical BM25 over the chunks of the run's index (no embedding at search time)."""
    return BM25Retriever(ctx.chunks, name=f"bm25({ctx.store.name})", k1=params.k1, b=params.b)


@dataclasses.dataclass(frozen=True, kw_only=True)
class HybridParams:
    weights: str = "1,1"
    """Fusion weights "dense,bm25" (a 0 switches that source off)."""
    n_candidates: int = 50
    """Hits taken from each source before fusion (raised to k when smaller)."""
    rrf_k: float = 60.0
    """The reciprocal-rank-fusion constant."""

    def __post_init__(self) -> None:
        _weights(self.weights)


def _weights(text: str) -> dict[str, float]:
    try:
        dense, lexical = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"weights={text!r}: expected two numbers 'dense,bm25', e.g. 1,1") from None
    if dense < 0 or lexical < 0 or dense + lexical == 0:
        raise ValueError(f"weights={text!r}: both >= 0 and at least one > 0")
    return {"dense": dense, "bm25": lexical}


@retriever("hybrid", params=HybridParams)
def hybrid(ctx: RetrieverContext, params: HybridParams) -> Retriever:
    """Dense and BM25 search fused by reciprocal rank (RRF)."""
    sources = {"dense": ctx.dense, "bm25": BM25Retriever(ctx.chunks, name=f"bm25({ctx.store.name})")}
    return HybridRetriever(sources, weights=_weights(params.weights), n_candidates=params.n_candidates,
                           rrf_k=params.rrf_k)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RerankParams:
    first: str = "hybrid"
    """Where the candidates come from: "bm25" or "hybrid" (dense candidates are already in embedding order)."""
    n_candidates: int = 30
    """Candidates re-ordered per search (at least k)."""

    def __post_init__(self) -> None:
        if self.first not in ("bm25", "hybrid"):
            raise ValueError(f"first={self.first!r}: choose 'bm25' or 'hybrid'")
        if self.n_candidates < 1:
            raise ValueError(f"n_candidates={self.n_candidates}: must be >= 1")


class RerankRetriever:
    """Candidates of one retriever re-ordered by cosine similarity to the query (the store's embedder)."""

    def __init__(self, first: Retriever, embedder: Any, n_candidates: int) -> None:
        self.first = first
        self.reranker = EmbeddingReranker(embedder)
        self.n_candidates = n_candidates
        self.name = f"rerank({first.name})"

    async def search(self, query: str, k: int) -> list[Document]:
        candidates = await self.first.search(query, max(k, self.n_candidates))
        return await self.reranker.rerank(query, candidates, k)

    def describe(self) -> dict[str, Any]:
        return {"kind": "rerank", "scorer": "embedding cosine", "n_candidates": self.n_candidates,
                "first": self.first.describe()}


@retriever("rerank", params=RerankParams)
def rerank(ctx: RetrieverContext, params: RerankParams) -> Retriever:
    """BM25 or hybrid candidates re-ordered by embedding similarity to the query."""
    first = bm25(ctx, BM25Params()) if params.first == "bm25" else hybrid(ctx, HybridParams())
    return RerankRetriever(first, ctx.store.embedder, params.n_candidates)
