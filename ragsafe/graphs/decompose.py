"""Decomposition: split the question into sub-questions, search each, answer with the union.

The decomposer returns at most ``max_subquestions`` sub-questions (JSON list). Each one — and the
question itself with ``include_question`` — is searched in parallel for ``k`` chunks; the union is
de-duplicated by chunk id, ordered rank-major (every query's best hit first) and capped at
``max_chunks``. An unparseable decomposition is recorded as a fallback and the question alone is
searched. ``max_subquestions=0`` switches decomposition off: standard RAG with top-``k``.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from ragsafe.agents import decompose as decompose_agent
from ragsafe.graphs.base import Deps, State, graph, join_chunks, make_answer_node, retrieval_info, traced
from ragsafe.graphs.standard_rag import check_query, query_text
from ragsafe.retrievers.hybrid import interleave_unique


class DecomposeState(State, total=False):
    subquestions: list[str]
    """The decomposer's sub-questions (empty when switched off or unparseable)."""
    hits: Annotated[list[dict[str, Any]], operator.add]
    """One entry per search: index, query, documents."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    k: int = 5
    """Chunks retrieved per sub-question."""
    max_subquestions: int = 3
    """Most sub-questions kept (0 switches decomposition off: standard RAG)."""
    include_question: bool = True
    """Also search the question itself (it is always searched when no sub-question was parsed)."""
    max_chunks: int = 10
    """Most chunks placed in the prompt (union of all searches, de-duplicated, rank-major)."""
    query: str = "question"
    """How the question itself is searched: "question" or "question+options"."""

    def __post_init__(self) -> None:
        for name in ("k", "max_chunks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")
        if self.max_subquestions < 0:
            raise ValueError(f"max_subquestions={self.max_subquestions}: must be >= 0")
        check_query(self.query)

    def expected_llm_calls(self, n_options: int | None = None) -> int | tuple[int, int]:
        """1 decomposition (none when ``max_subquestions=0``) + 1 answer; the searches make no LLM call."""
        return 2 if self.max_subquestions > 0 else 1


@graph("decompose", params=Params, needs_retriever=True)
def build(deps: Deps, params: Params):
    @traced("decompose")
    async def decompose(state: DecomposeState) -> dict:
        q = state["question"]
        s = await decompose_agent.decompose(deps.llm, q.question, q.options, n=params.max_subquestions,
                                            temperature=deps.policy.temperature, seed=deps.policy.seed)
        return {"subquestions": list(s.value), "_trace": s.trace("decompose")}

    def fan_out(state: DecomposeState):
        subs = list(state.get("subquestions") or [])
        queries = ([query_text(state, params.query)] if params.include_question or not subs else []) + subs
        queries = list(dict.fromkeys(queries))
        return [Send("retrieve", {"query": qt, "i": i}) for i, qt in enumerate(queries)]

    @traced("retrieve")
    async def retrieve(task: dict) -> dict:
        docs = await deps.retriever.search(task["query"], params.k)
        return {"queries": [task["query"]], "hits": [{**task, "docs": docs}],
                "_trace": {**retrieval_info(task["query"], docs, params.k), "i": task["i"]}}

    @traced("merge")
    async def merge(state: DecomposeState) -> dict:
        lists = [h["docs"] for h in sorted(state.get("hits") or [], key=lambda h: h["i"])]
        chunks = interleave_unique(lists, params.max_chunks)
        return {"chunks": chunks, "context": join_chunks(chunks),
                "_trace": {"searches": len(lists), "distinct": len(interleave_unique(lists)),
                           "in_prompt": len(chunks)}}

    builder = StateGraph(DecomposeState)
    builder.add_node("retrieve", retrieve)
    builder.add_node("merge", merge)
    builder.add_node("answer", make_answer_node(deps))
    if params.max_subquestions > 0:
        builder.add_node("decompose", decompose)
        builder.add_edge(START, "decompose")
        builder.add_conditional_edges("decompose", fan_out, ["retrieve"])
    else:
        builder.add_conditional_edges(START, fan_out, ["retrieve"])
    builder.add_edge("retrieve", "merge")
    builder.add_edge("merge", "answer")
    builder.add_edge("answer", END)
    return builder.compile()
