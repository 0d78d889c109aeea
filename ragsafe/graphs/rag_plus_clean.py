"""RAG plus clean evidence: the retrieved top-k chunks and the clinician clean evidence together.

Does retrieved text dilute the ceiling? The clean evidence goes in as one more block, before the
chunks (``position="first"``), after them (``"last"``), or at a position drawn per question from a
stable hash of (seed, question id) (``"random"``). ``k=0`` is not allowed: that is clean_evidence.
"""

from __future__ import annotations

import dataclasses
import hashlib

from ragsafe.agents.answer import CHUNK_SEPARATOR
from ragsafe.graphs.base import Deps, State, graph, retrieval_info, then_answer, traced
from ragsafe.graphs.mixed_evidence import need
from ragsafe.graphs.standard_rag import query_text

POSITIONS = ("first", "last", "random")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    k: int = 5
    """Chunks retrieved (query: the question) beside the clean evidence."""
    query: str = "question"
    """What is searched: "question" (the paper's) or "question+options"."""
    position: str = "first"
    """Where the clean evidence goes: "first", "last", or "random" (per question, seeded)."""
    abstain: bool = False
    """Let the model answer "insufficient evidence" (recorded as an abstention, not a null)."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k={self.k}: must be >= 1 (k=0 is the clean_evidence graph)")
        if self.query not in ("question", "question+options"):
            raise ValueError(f"query={self.query!r}: choose 'question' or 'question+options'")
        if self.position not in POSITIONS:
            raise ValueError(f"position={self.position!r}: choose one of {', '.join(POSITIONS)}")

    def expected_llm_calls(self, n_options: int | None = None) -> int:
        """One answer call."""
        return 1


def slot(seed: int | None, question_id: str, n_chunks: int) -> int:
    """A reproducible insertion index in 0..n_chunks (sha256 of seed and question id)."""
    h = hashlib.sha256(f"{seed or 0}:{question_id}:rag_plus_clean.position".encode()).hexdigest()
    return int(h[:8], 16) % (n_chunks + 1)


@graph("rag_plus_clean", params=Params, needs_retriever=True, needs_fields=("evidence_clean",))
def build(deps: Deps, params: Params):
    @traced("retrieve")
    async def retrieve(state: State) -> dict:
        q = state["question"]
        clean = need(q, "evidence_clean").strip()
        query = query_text(state, params.query)
        docs = await deps.retriever.search(query, params.k)
        blocks = [d.page_content.strip() for d in docs]
        at = {"first": 0, "last": len(blocks)}.get(params.position)
        if at is None:
            at = slot(deps.policy.seed, q.id, len(blocks))
        blocks.insert(at, clean)
        return {"queries": [query], "chunks": docs, "context": CHUNK_SEPARATOR.join(blocks),
                "_trace": {**retrieval_info(query, docs, params.k), "sources": ["retrieved", "evidence_clean"],
                           "clean_position": at}}

    return then_answer(deps, "retrieve", retrieve, abstain=params.abstain)
