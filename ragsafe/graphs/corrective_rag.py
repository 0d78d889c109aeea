"""Corrective RAG (CRAG-style): grade each retrieved chunk; rewrite the query when too few pass.

The grader judges every newly retrieved chunk relevant or not (JSON, one call per chunk, in
parallel; a chunk seen in an earlier round is not graded again). While fewer than
``min_relevant`` distinct chunks have passed and rewrites remain, the rewriter writes a new query
— told which passages were judged irrelevant — and the loop searches again. The answer sees the
chunks that passed (``filter_irrelevant``), rank-major over the rounds, capped at ``max_chunks``;
when none passed it answers closed-book, CRAG's "discard incorrect knowledge" without a web search.
An unparseable verdict takes ``grade_fallback`` and is recorded as a fallback.

Switches: ``grade=false`` removes grading and rewriting (standard RAG with top-``k``);
``max_rewrites=0`` removes the rewrite step (grade, filter, answer).
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from ragsafe.agents import grade as grade_agent
from ragsafe.agents import rewrite as rewrite_agent
from ragsafe.graphs.base import Deps, State, graph, join_chunks, make_answer_node, retrieval_info, traced
from ragsafe.graphs.standard_rag import check_query, query_text
from ragsafe.retrievers.hybrid import interleave_unique


class CorrectiveState(State, total=False):
    hits: Annotated[list[dict[str, Any]], operator.add]
    """One entry per search: round, query, documents."""
    grades: Annotated[list[dict[str, Any]], operator.add]
    """One entry per graded chunk: round, chunk id, relevant, fallback."""
    round: int
    """Rewrites done so far."""
    next_query: str | None
    """The rewritten query the next search uses."""
    route: str
    """The decision after grading: "rewrite" or "answer"."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    k: int = 5
    """Chunks retrieved per query."""
    grade: bool = True
    """Grade each retrieved chunk (false switches grading and rewriting off: standard RAG)."""
    min_relevant: int = 2
    """Relevant chunks needed before answering; fewer trigger a rewrite while rewrites remain."""
    max_rewrites: int = 1
    """Rewrite-and-search rounds (0 removes the rewrite step: grade, filter, answer)."""
    filter_irrelevant: bool = True
    """Drop chunks graded irrelevant from the prompt (false: grading only decides about rewriting)."""
    grade_fallback: str = "relevant"
    """Verdict for an unparseable grade reply: "relevant" (keep the chunk) or "irrelevant"."""
    max_chunks: int = 10
    """Most chunks placed in the prompt (all rounds, de-duplicated, rank-major)."""
    query: str = "question"
    """What the first search uses: "question" or "question+options"."""

    def __post_init__(self) -> None:
        for name in ("k", "max_chunks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")
        for name in ("min_relevant", "max_rewrites"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 0")
        if self.grade_fallback not in ("relevant", "irrelevant"):
            raise ValueError(f"grade_fallback={self.grade_fallback!r}: choose 'relevant' or 'irrelevant'")
        check_query(self.query)

    def expected_llm_calls(self, n_options: int | None = None) -> int | tuple[int, int]:
        """``grade=false``: 1. Else 1 answer + ``k`` grades of the first search + per rewrite round 1
        rewrite and 1 grade per newly retrieved chunk (0 to ``k``: seen chunks are not regraded).
        Most: every rewrite runs and finds ``k`` new irrelevant chunks, ``k + max_rewrites * (k + 1) + 1``
        (no rewrite when ``min_relevant=0``). Fewest: ``k + 1`` when the first search can pass
        ``min_relevant`` (``min_relevant <= k``); otherwise the cheaper of all rewrites finding only
        seen chunks (``k + max_rewrites + 1``) and the fewest rounds that grade the missing
        ``min_relevant - k`` chunks (assumes each search returns ``k`` hits)."""
        if not self.grade:
            return 1
        k = self.k
        hi = k + 1 if self.max_rewrites == 0 or self.min_relevant == 0 else k + self.max_rewrites * (k + 1) + 1
        if self.max_rewrites == 0 or self.min_relevant <= k:
            return (k + 1, hi)
        missing = self.min_relevant - k
        return (1 + k + min(self.max_rewrites, -(-missing // k) + missing), hi)


@graph("corrective_rag", params=Params, needs_retriever=True)
def build(deps: Deps, params: Params):
    @traced("retrieve")
    async def retrieve(state: CorrectiveState) -> dict:
        r = state.get("round", 0)
        query = state.get("next_query") if r else query_text(state, params.query)
        docs = await deps.retriever.search(query, params.k)
        return {"queries": [query], "hits": [{"round": r, "query": query, "docs": docs}],
                "chunks": docs, "context": join_chunks(docs), "_trace": {**retrieval_info(query, docs, params.k),
                                                                          "round": r}}

    def fan_out(state: CorrectiveState):
        graded = {g["chunk_id"] for g in state.get("grades") or []}
        r, q = state.get("round", 0), state["question"]
        return [Send("grade", {"question": q, "doc": d, "round": r}) for d in state.get("chunks") or []
                if d.metadata["chunk_id"] not in graded] or "decide"

    @traced("grade")
    async def grade(task: dict) -> dict:
        q, d = task["question"], task["doc"]
        s = await grade_agent.grade(deps.llm, q.question, q.options, d.page_content,
                                    fallback=params.grade_fallback == "relevant",
                                    temperature=deps.policy.temperature, seed=deps.policy.seed)
        cid = d.metadata["chunk_id"]
        return {"grades": [{"round": task["round"], "chunk_id": cid, "relevant": s.value, "fallback": s.fallback}],
                "_trace": {**s.trace("grade"), "chunk_id": cid, "round": task["round"]}}

    @traced("decide")
    async def decide(state: CorrectiveState) -> dict:
        r = state.get("round", 0)
        verdict = {g["chunk_id"]: g["relevant"] for g in state.get("grades") or []}
        relevant = sorted(c for c, ok in verdict.items() if ok)
        route = "rewrite" if len(relevant) < params.min_relevant and r < params.max_rewrites else "answer"
        lists = [[d for d in h["docs"] if verdict.get(d.metadata["chunk_id"]) or not params.filter_irrelevant]
                 for h in sorted(state.get("hits") or [], key=lambda h: h["round"])]
        chunks = interleave_unique(lists, params.max_chunks)
        return {"route": route, "chunks": chunks, "context": join_chunks(chunks) or None,
                "_trace": {"round": r, "graded": len(verdict), "relevant": relevant, "route": route,
                           "in_prompt": [d.metadata["chunk_id"] for d in chunks]}}

    @traced("rewrite")
    async def rewrite(state: CorrectiveState) -> dict:
        q, r = state["question"], state.get("round", 0)
        verdict = {g["chunk_id"]: g["relevant"] for g in state.get("grades") or []}
        rejected = [d.metadata.get("title") or d.metadata.get("doc_id") for h in state.get("hits") or []
                    for d in h["docs"] if verdict.get(d.metadata["chunk_id"]) is False]
        s = await rewrite_agent.rewrite(deps.llm, q.question, q.options, previous=list(state.get("queries") or []),
                                        found_titles=rejected, judged_irrelevant=True,
                                        temperature=deps.policy.temperature, seed=deps.policy.seed)
        return {"next_query": s.value, "round": r + 1, "_trace": {**s.trace("rewrite"), "round": r + 1}}

    builder = StateGraph(CorrectiveState)
    builder.add_node("retrieve", retrieve)
    builder.add_node("answer", make_answer_node(deps))
    builder.add_edge(START, "retrieve")
    if not params.grade:
        builder.add_edge("retrieve", "answer")
    else:
        builder.add_node("grade", grade)
        builder.add_node("decide", decide)
        builder.add_conditional_edges("retrieve", fan_out, ["grade", "decide"])
        builder.add_edge("grade", "decide")
        if params.max_rewrites > 0:
            builder.add_node("rewrite", rewrite)
            builder.add_conditional_edges("decide", lambda s: s["route"], {"rewrite": "rewrite", "answer": "answer"})
            builder.add_edge("rewrite", "retrieve")
        else:
            builder.add_edge("decide", "answer")
    builder.add_edge("answer", END)
    # a loop of four steps per round; explicit so older LangGraph defaults (25) cannot cut it short
    return builder.compile().with_config(recursion_limit=max(25, 4 * params.max_rewrites + 10))
