"""Rerank RAG: retrieve ``n_candidates`` chunks, rerank them, answer with the best ``k``.

``reranker="llm"`` asks the LLM for a 0-10 usefulness score per candidate (pointwise, JSON, one
call per chunk, fanned out in parallel); an unparseable score counts as the neutral 5 and is
recorded as a fallback. ``reranker="embedding"`` scores each candidate by cosine similarity to the
question plus its options with the store's own embedder (no LLM call). Ties keep retrieval order.
``reranker="none"`` switches the step off: plain top-``k`` retrieval.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from ragsafe.agents import rerank as rerank_agent
from ragsafe.graphs.base import Deps, State, graph, join_chunks, make_answer_node, retrieval_info, traced
from ragsafe.graphs.standard_rag import check_query, query_text
from ragsafe.retrievers.rerank import EmbeddingReranker, embedder_of, order_by_scores

RERANKERS = ("llm", "embedding", "none")


class RerankState(State, total=False):
    scores: Annotated[list[dict[str, Any]], operator.add]
    """One entry per LLM-scored candidate: index, chunk id, score, fallback."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    k: int = 5
    """Chunks kept after reranking and placed in the prompt."""
    n_candidates: int = 20
    """Chunks retrieved and reranked (at least k)."""
    reranker: str = "llm"
    """"llm" (pointwise 0-10 score by the LLM), "embedding" (cosine to question+options) or "none" (step off)."""
    query: str = "question"
    """What is searched: "question" or "question+options"."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k={self.k}: must be >= 1")
        if self.n_candidates < self.k:
            raise ValueError(f"n_candidates={self.n_candidates}: must be >= k ({self.k})")
        if self.reranker not in RERANKERS:
            raise ValueError(f"reranker={self.reranker!r}: choose one of {', '.join(RERANKERS)}")
        check_query(self.query)

    def expected_llm_calls(self, n_options: int | None = None) -> int | tuple[int, int]:
        """``reranker="llm"``: 1 score per retrieved candidate + 1 answer = ``n_candidates + 1`` (a store
        holding fewer than ``n_candidates`` chunks costs less); "embedding" and "none": 1 (the answer)."""
        return self.n_candidates + 1 if self.reranker == "llm" else 1


def _selected(docs) -> dict[str, Any]:
    return {"selected": [{"chunk_id": d.metadata.get("chunk_id"), "score": d.metadata.get("score"),
                          "rank": d.metadata.get("rank"), "retrieval_rank": d.metadata.get("retrieval_rank")}
                         for d in docs]}


@graph("rerank_rag", params=Params, needs_retriever=True)
def build(deps: Deps, params: Params):
    n = params.k if params.reranker == "none" else params.n_candidates

    @traced("retrieve")
    async def retrieve(state: RerankState) -> dict:
        query = query_text(state, params.query)
        docs = await deps.retriever.search(query, n)
        return {"queries": [query], "chunks": docs, "context": join_chunks(docs[:params.k]),
                "_trace": retrieval_info(query, docs, n)}

    @traced("score")
    async def score(task: dict) -> dict:
        q, d = task["question"], task["doc"]
        s = await rerank_agent.score(deps.llm, q.question, q.options, d.page_content,
                                     temperature=deps.policy.temperature, seed=deps.policy.seed)
        cid = d.metadata.get("chunk_id")
        return {"scores": [{"i": task["i"], "chunk_id": cid, "score": s.value, "fallback": s.fallback}],
                "_trace": {**s.trace("rerank"), "chunk_id": cid}}

    def fan_out(state: RerankState):
        docs = state.get("chunks") or []
        return [Send("score", {"question": state["question"], "doc": d, "i": i}) for i, d in enumerate(docs)] \
            or "select"

    @traced("select")
    async def select(state: RerankState) -> dict:
        docs = state.get("chunks") or []
        by_index = {s["i"]: s["score"] for s in state.get("scores") or []}
        top = order_by_scores(docs, [by_index.get(i, rerank_agent.NEUTRAL_SCORE) for i in range(len(docs))],
                              params.k)
        return {"chunks": top, "context": join_chunks(top), "_trace": {"reranker": "llm", **_selected(top)}}

    @traced("rerank")
    async def rerank_embedding(state: RerankState) -> dict:
        text = query_text(state, "question+options")
        top = await EmbeddingReranker(embedder_of(deps.retriever)).rerank(text, state.get("chunks") or [], params.k)
        return {"chunks": top, "context": join_chunks(top), "_trace": {"reranker": "embedding", **_selected(top)}}

    builder = StateGraph(RerankState)
    builder.add_node("retrieve", retrieve)
    builder.add_node("answer", make_answer_node(deps))
    builder.add_edge(START, "retrieve")
    if params.reranker == "llm":
        builder.add_node("score", score)
        builder.add_node("select", select)
        builder.add_conditional_edges("retrieve", fan_out, ["score", "select"])
        builder.add_edge("score", "select")
        builder.add_edge("select", "answer")
    elif params.reranker == "embedding":
        builder.add_node("rerank", rerank_embedding)
        builder.add_edge("retrieve", "rerank")
        builder.add_edge("rerank", "answer")
    else:
        builder.add_edge("retrieve", "answer")
    builder.add_edge("answer", END)
    return builder.compile()
