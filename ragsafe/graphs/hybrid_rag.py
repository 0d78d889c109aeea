"""Hybrid RAG: BM25 and dense search over the same chunks, fused by reciprocal rank, then answer.

BM25 is built on first use over the dense retriever's own corpus: a ChromaRetriever's chunks are
read back from its collection; any other retriever must offer ``all_chunks()``. The index is
cached by corpus hash, so rebuilding the graph does not re-tokenise. Setting a weight to 0 switches
that side off (``weights="1,0"`` is dense-only with ``n_candidates`` fused down to ``k``).
"""

from __future__ import annotations

import dataclasses

from ragsafe.graphs.base import Deps, State, graph, join_chunks, retrieval_info, then_answer, traced
from ragsafe.graphs.standard_rag import check_query, query_text
from ragsafe.retrievers.bm25 import bm25_for
from ragsafe.retrievers.hybrid import HybridRetriever


def parse_weights(text: str) -> dict[str, float]:
    """``"dense,bm25"`` weights, e.g. ``"1,1"`` or ``"0.7, 0.3"`` -> ``{"dense": 0.7, "bm25": 0.3}``."""
    parts = [p.strip() for p in str(text).replace(":", ",").split(",")]
    try:
        dense, bm25 = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"weights={text!r}: expected two numbers 'dense,bm25', e.g. '1,1'") from None
    if dense < 0 or bm25 < 0 or dense + bm25 == 0:
        raise ValueError(f"weights={text!r}: both must be >= 0 and at least one > 0")
    return {"dense": dense, "bm25": bm25}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    k: int = 10
    """Fused chunks placed in the prompt."""
    n_candidates: int = 50
    """Hits taken from each of BM25 and dense search before fusion (raised to k when smaller)."""
    rrf_k: float = 60.0
    """Reciprocal-rank-fusion constant: a chunk scores weight / (rrf_k + rank) per ranking it appears in."""
    weights: str = "1,1"
    """Fusion weights "dense,bm25"; a 0 switches that retriever off ("1,0" = dense only, "0,1" = BM25 only)."""
    query: str = "question"
    """What is searched: "question" or "question+options"."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k={self.k}: must be >= 1")
        if self.n_candidates < 1:
            raise ValueError(f"n_candidates={self.n_candidates}: must be >= 1")
        if self.rrf_k < 0:
            raise ValueError(f"rrf_k={self.rrf_k}: must be >= 0")
        parse_weights(self.weights)
        check_query(self.query)

    def expected_llm_calls(self, n_options: int | None = None) -> int | tuple[int, int]:
        """1: the answer. BM25, dense search and fusion make no LLM call, whatever the params."""
        return 1


@graph("hybrid_rag", params=Params, needs_retriever=True)
def build(deps: Deps, params: Params):
    weights = parse_weights(params.weights)
    hybrid: list[HybridRetriever] = []  # built on first search: BM25 needs the store, drawing a diagram does not

    def retriever() -> HybridRetriever:
        if not hybrid:
            sources = {"dense": deps.retriever}
            if weights["bm25"] > 0:
                sources["bm25"] = bm25_for(deps.retriever)
            hybrid.append(HybridRetriever(sources, weights={s: weights[s] for s in sources},
                                          n_candidates=params.n_candidates, rrf_k=params.rrf_k))
        return hybrid[0]

    @traced("retrieve")
    async def retrieve(state: State) -> dict:
        query = query_text(state, params.query)
        docs, per_source = await retriever().search_sources(query, params.k)
        info = retrieval_info(query, docs, params.k)
        info["retrieval"].update(
            fusion="rrf", rrf_k=params.rrf_k, weights=weights,
            sources={s: [d.metadata.get("chunk_id") for d in hits] for s, hits in per_source.items()},
            source_ranks=[d.metadata.get("source_ranks") for d in docs])
        return {"queries": [query], "chunks": docs, "context": join_chunks(docs), "_trace": info}

    return then_answer(deps, "retrieve", retrieve)
