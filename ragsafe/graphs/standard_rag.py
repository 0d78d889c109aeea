"""Standard RAG: top-k dense chunks for the question text, joined, then answer (the paper's setup)."""

from __future__ import annotations

import dataclasses
import re

from ragsafe.agents.answer import format_options
from ragsafe.graphs.base import Deps, State, graph, join_chunks, retrieval_info, then_answer, traced

QUERY_MODES = ("question", "question+options")
"""What a graph's first search may use: the stem (the paper's) or the stem followed by the options block."""


def check_query(mode: str) -> None:
    """Raise ValueError unless ``mode`` is one of :data:`QUERY_MODES` (for a params ``__post_init__``)."""
    if mode not in QUERY_MODES:
        raise ValueError(f"query={mode!r}: choose 'question' or 'question+options'")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    k: int = 10
    """Chunks retrieved and placed in the prompt (the paper: 1, 5 or 10)."""
    query: str = "question"
    """What is searched: "question" (the paper's) or "question+options"."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k={self.k}: must be >= 1")
        check_query(self.query)

    def expected_llm_calls(self, n_options: int | None = None) -> int:
        """1: the answer (retrieval makes no LLM call)."""
        return 1


PAPER_TOP_K = (1, 5, 10)
"""The paper's RAG conditions: top-1, top-5 and top-10 chunks for the question text."""


def paper_condition(params) -> str | None:
    k, query = params.get("k"), params.get("query", "question")
    return f"top_{k}" if k in PAPER_TOP_K and query == "question" else None


def paper_params(condition: str) -> dict | None:
    m = re.fullmatch(r"top_(\d+)", condition)
    return {"k": int(m.group(1)), "query": "question"} if m else None


def query_text(state: State, mode: str) -> str:
    q = state["question"]
    if mode == "question+options":
        return q.question + "\n" + format_options(q.options)
    return q.question


@graph("standard_rag", params=Params, needs_retriever=True, paper_condition=paper_condition,
       paper_params=paper_params)
def build(deps: Deps, params: Params):
    @traced("retrieve")
    async def retrieve(state: State) -> dict:
        query = query_text(state, params.query)
        docs = await deps.retriever.search(query, params.k)
        return {"queries": [query], "chunks": docs, "context": join_chunks(docs),
                "_trace": retrieval_info(query, docs, params.k)}

    return then_answer(deps, "retrieve", retrieve)
