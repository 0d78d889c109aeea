"""Query rewriting: search, let the LLM write new queries, search again, answer with all evidence found.

Round 0 searches the question. Each later round asks the rewriter for one new query (or, with
``per_option``, one query per option, in parallel), shows it the queries tried and the titles
found, searches each new query, and adds the hits to the evidence. Evidence is de-duplicated by
chunk id and ordered rank-major (every query's best hit first), capped at ``max_chunks``. The loop
ends after ``max_rounds`` rewrite rounds, or earlier when a round finds no new chunk
(``stop_early``). ``max_rounds=0`` switches rewriting off: this is standard RAG with top-``k``.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from ragsafe.agents import rewrite as rewrite_agent
from ragsafe.corpora.schema import MAX_OPTIONS, MIN_OPTIONS
from ragsafe.graphs.base import Deps, State, graph, join_chunks, make_answer_node, retrieval_info, traced
from ragsafe.graphs.standard_rag import check_query, query_text
from ragsafe.retrievers.hybrid import interleave_unique


class RewriteState(State, total=False):
    hits: Annotated[list[dict[str, Any]], operator.add]
    """One entry per search: round, index, query, documents."""
    pending: Annotated[list[dict[str, Any]], operator.add]
    """One entry per rewritten query: round, index, option letter, query."""
    round: int
    """The round whose searches were merged last (0 = the question itself)."""
    new_chunks: int
    """Chunks the last round added to the evidence."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    k: int = 5
    """Chunks retrieved per query."""
    max_rounds: int = 1
    """Rewrite rounds after the first search (0 switches rewriting off: standard RAG)."""
    per_option: bool = False
    """Write one query per answer option each round instead of one query for the question."""
    max_chunks: int = 10
    """Most chunks placed in the prompt (evidence of all queries, de-duplicated, rank-major)."""
    stop_early: bool = True
    """End the loop when a round adds no new chunk."""
    query: str = "question"
    """What round 0 searches: "question" or "question+options"."""

    def __post_init__(self) -> None:
        for name in ("k", "max_chunks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")
        if self.max_rounds < 0:
            raise ValueError(f"max_rounds={self.max_rounds}: must be >= 0")
        check_query(self.query)

    def expected_llm_calls(self, n_options: int | None = None) -> int | tuple[int, int]:
        """1 answer + ``max_rounds`` rounds of rewrites, 1 per round (``per_option``: 1 per option, the
        question's ``n_options``; None: 2 to 10 options as ``benchmark.MIN_OPTIONS``/``MAX_OPTIONS``
        allow). Round 1 always runs; with ``stop_early`` a round that adds no new chunk ends the loop,
        so the fewest is one round. ``max_rounds=0``: 1."""
        if self.max_rounds == 0:
            return 1
        if not self.per_option:
            lo = hi = 1
        elif n_options is None:
            lo, hi = MIN_OPTIONS, MAX_OPTIONS
        else:
            lo = hi = n_options
        return (1 + lo * (1 if self.stop_early else self.max_rounds), 1 + hi * self.max_rounds)


def evidence(hits: list[dict[str, Any]], upto_round: int | None = None, cap: int | None = None):
    """The de-duplicated, rank-major union of the hit lists (in round, then index order)."""
    lists = [h["docs"] for h in sorted(hits, key=lambda h: (h["round"], h["i"]))
             if upto_round is None or h["round"] <= upto_round]
    return interleave_unique(lists, cap)


@graph("query_rewrite", params=Params, needs_retriever=True)
def build(deps: Deps, params: Params):
    def first_search(state: RewriteState):
        return [Send("retrieve", {"query": query_text(state, params.query), "round": 0, "i": 0})]

    @traced("retrieve")
    async def retrieve(task: dict) -> dict:
        docs = await deps.retriever.search(task["query"], params.k)
        info = retrieval_info(task["query"], docs, params.k)
        return {"queries": [task["query"]], "hits": [{**task, "docs": docs}],
                "_trace": {**info, "round": task["round"]}}

    @traced("merge")
    async def merge(state: RewriteState) -> dict:
        r = state.get("round", 0)
        hits = state.get("hits") or []
        before = {d.metadata["chunk_id"] for d in evidence(hits, r - 1)} if r else set()
        union = evidence(hits, r)
        new = sum(1 for d in union if d.metadata["chunk_id"] not in before)
        chunks = union[:params.max_chunks]
        return {"chunks": chunks, "context": join_chunks(chunks), "new_chunks": new,
                "_trace": {"round": r, "new_chunks": new, "evidence": len(union), "in_prompt": len(chunks)}}

    def after_merge(state: RewriteState):
        r, new = state.get("round", 0), state.get("new_chunks", 0)
        if r >= params.max_rounds or (params.stop_early and r > 0 and new == 0):
            return "answer"
        q = state["question"]
        titles = [d.metadata.get("title") or d.metadata.get("doc_id") for d in evidence(state.get("hits") or [])]
        letters = list(q.options) if params.per_option else [None]
        return [Send("rewrite", {"question": q, "round": r + 1, "i": i, "letter": L,
                                 "previous": list(state.get("queries") or []), "titles": titles})
                for i, L in enumerate(letters)]

    @traced("rewrite")
    async def rewrite(task: dict) -> dict:
        q = task["question"]
        s = await rewrite_agent.rewrite(deps.llm, q.question, q.options, letter=task["letter"],
                                        previous=task["previous"], found_titles=task["titles"],
                                        temperature=deps.policy.temperature, seed=deps.policy.seed)
        return {"pending": [{"round": task["round"], "i": task["i"], "letter": task["letter"], "query": s.value}],
                "_trace": {**s.trace("rewrite"), "round": task["round"], "letter": task["letter"]}}

    async def next_round(state: RewriteState) -> dict:
        # the join after the parallel rewrites: one place that advances the round counter
        return {"round": state.get("round", 0) + 1}

    def search_new(state: RewriteState):
        r, done = state["round"], set(state.get("queries") or [])
        todo = []
        for p in sorted(state.get("pending") or [], key=lambda p: p["i"]):
            if p["round"] == r and p["query"] not in done:  # a repeated query would find nothing new
                done.add(p["query"])
                todo.append(Send("retrieve", {"query": p["query"], "round": r, "i": p["i"]}))
        return todo or "merge"

    builder = StateGraph(RewriteState)
    builder.add_node("retrieve", retrieve)
    builder.add_node("merge", merge)
    builder.add_node("answer", make_answer_node(deps))
    builder.add_conditional_edges(START, first_search, ["retrieve"])
    builder.add_edge("retrieve", "merge")
    if params.max_rounds > 0:
        builder.add_node("rewrite", rewrite)
        builder.add_node("next_round", next_round)
        builder.add_conditional_edges("merge", after_merge, ["rewrite", "answer"])
        builder.add_edge("rewrite", "next_round")
        builder.add_conditional_edges("next_round", search_new, ["retrieve", "merge"])
    else:
        builder.add_edge("merge", "answer")
    builder.add_edge("answer", END)
    # a loop of four steps per round; explicit so older LangGraph defaults (25) cannot cut it short
    return builder.compile().with_config(recursion_limit=max(25, 4 * params.max_rounds + 10))
