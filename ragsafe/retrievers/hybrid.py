"""Rank fusion: reciprocal rank fusion (RRF) of several retrievers, and rank-major union of hit lists.

RRF (Cormack, Clarke & Büttcher, 2009) scores a chunk by ``sum_i w_i / (rrf_k + rank_i)`` over the
rankings it appears in (1-based ranks; absent = no term). It needs no score calibration between
BM25 and cosine, which is why it is the usual way to combine them.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping, Sequence

from langchain_core.documents import Document

from ragsafe.retrievers.base import Retriever, annotate


def _cid(d: Document) -> str:
    return str(d.metadata.get("chunk_id") or d.id)


def rrf_fuse(rankings: Mapping[str, Sequence[Document]], *, weights: Mapping[str, float] | None = None,
             rrf_k: float = 60.0, k: int | None = None) -> list[Document]:
    """Fuse ranked lists by weighted reciprocal rank.

    Args:
        rankings: source name -> its hits, best first (position = rank; a chunk id repeated in one
            list counts at its best position).
        weights: source name -> weight (default 1.0 each).
        rrf_k: the RRF constant; larger values flatten the advantage of top ranks.
        k: keep the best ``k`` (default: all).

    Returns:
        Chunks best first, with ``score`` = fused score, ``rank`` = fused rank and
        ``source_ranks`` = {source: rank or None}. Ties go to the better best-single-rank, then to
        the order in which the chunk was first seen (sources in the given order).

    Example:
        >>> a, b = Document("x", id="a"), Document("y", id="b")
        >>> [d.id for d in rrf_fuse({"dense": [a, b], "bm25": [b]}, rrf_k=0)]
        ['b', 'a']
    """
    weights = dict(weights or {})
    score: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    first: dict[str, Document] = {}
    for source, docs in rankings.items():
        w = float(weights.get(source, 1.0))
        for pos, d in enumerate(docs, start=1):
            cid = _cid(d)
            if source in ranks.get(cid, {}):
                continue
            first.setdefault(cid, d)
            ranks.setdefault(cid, {})[source] = pos
            score[cid] = score.get(cid, 0.0) + w / (rrf_k + pos)
    seen = list(first)
    order = sorted(seen, key=lambda c: (-score[c], min(ranks[c].values()), seen.index(c)))
    if k is not None:
        order = order[:k]
    out = annotate([first[c] for c in order], [score[c] for c in order])
    for d in out:
        d.metadata["source_ranks"] = {s: ranks[_cid(d)].get(s) for s in rankings}
    return out


def interleave_unique(lists: Sequence[Sequence[Document]], cap: int | None = None) -> list[Document]:
    """Union of hit lists, de-duplicated by chunk id, in rank-major order.

    All rank-1 hits (in list order) come first, then all rank-2 hits, and so on, so a cap never
    starves a later query of its best chunk. Ranks are renumbered; scores are kept.

    Example:
        >>> a, b, c = (Document(t, id=t) for t in "abc")
        >>> [d.id for d in interleave_unique([[a, b], [c, a]])]
        ['a', 'c', 'b']
    """
    out: list[Document] = []
    seen: set[str] = set()
    for pos in range(max((len(x) for x in lists), default=0)):
        for hits in lists:
            if pos < len(hits) and _cid(hits[pos]) not in seen:
                seen.add(_cid(hits[pos]))
                out.append(hits[pos])
    return annotate(out[:cap] if cap is not None else out)


class HybridRetriever:
    """Several retrievers fused by RRF; implements the :class:`~ragsafe.retrievers.base.Retriever` protocol.

    Args:
        retrievers: source name -> retriever, e.g. ``{"dense": chroma, "bm25": bm25}``.
        weights: source name -> fusion weight (default 1.0). A source with weight 0 is not searched.
        n_candidates: hits requested from each source before fusion (at least ``k``).
        rrf_k: the RRF constant.
        name: name for run records.

    Example:
        >>> hybrid = HybridRetriever({"dense": dense, "bm25": bm25_for(dense)})  # doctest: +SKIP
        >>> docs = asyncio.run(hybrid.search("appendicolith", k=5))  # doctest: +SKIP
    """

    def __init__(self, retrievers: Mapping[str, Retriever], *, weights: Mapping[str, float] | None = None,
                 n_candidates: int = 50, rrf_k: float = 60.0, name: str = "hybrid") -> None:
        weights = {s: float((weights or {}).get(s, 1.0)) for s in retrievers}
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"fusion weights must be >= 0, got {weights}")
        if not any(w > 0 for w in weights.values()):
            raise ValueError(f"at least one fusion weight must be > 0, got {weights}")
        self.retrievers = dict(retrievers)
        self.weights = weights
        self.n_candidates = n_candidates
        self.rrf_k = rrf_k
        self.name = name

    async def search_sources(self, query: str, k: int) -> tuple[list[Document], dict[str, list[Document]]]:
        """Fused top-``k`` and the per-source candidate lists it was fused from."""
        active = [s for s, w in self.weights.items() if w > 0]
        n = max(self.n_candidates, k)
        lists = await asyncio.gather(*(self.retrievers[s].search(query, n) for s in active))
        per_source = dict(zip(active, lists))
        return rrf_fuse(per_source, weights=self.weights, rrf_k=self.rrf_k, k=k), per_source

    async def search(self, query: str, k: int) -> list[Document]:
        return (await self.search_sources(query, k))[0]

    def describe(self) -> dict[str, Any]:
        return {"kind": "hybrid", "fusion": "rrf", "rrf_k": self.rrf_k, "n_candidates": self.n_candidates,
                "weights": self.weights, "sources": {s: r.describe() for s, r in self.retrievers.items()}}
