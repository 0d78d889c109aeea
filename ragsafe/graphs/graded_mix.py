"""Graded mix: top-k retrieved chunks of which a fraction is replaced by distractors.

A distractor is a chunk of another question's gold article: real, on-topic-looking radiology text
that does not answer this question. ``round(fraction * k)`` of the k chunks are replaced: the k − m
best-ranked retrieved chunks are kept in rank order, and the m distractors are inserted at
positions drawn from a stable hash of (seed, question id). Distractor questions are drawn in a
seeded order from the run's other questions whose gold articles are disjoint from this one's; each
gives the top chunk of its own gold article for its own question text (one extra search each).
A sweep over ``fraction`` (``--grid graded_mix.fraction=0,0.3,0.6,1``) draws accuracy and safety
against evidence quality. ``fraction=0`` is standard RAG with the same k.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random

from ragsafe.config import ConfigError
from ragsafe.graphs.base import Deps, State, graph, join_chunks, retrieval_info, then_answer, traced
from ragsafe.graphs.standard_rag import query_text


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    k: int = 5
    """Chunks in the context."""
    fraction: float = 0.0
    """Share of the k chunks replaced by distractors (0..1; rounded to a whole number of chunks)."""
    query: str = "question"
    """What is searched: "question" (the paper's) or "question+options"."""
    abstain: bool = False
    """Let the model answer "insufficient evidence" (recorded as an abstention, not a null)."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k={self.k}: must be >= 1")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction={self.fraction}: must be within 0..1")
        if self.query not in ("question", "question+options"):
            raise ValueError(f"query={self.query!r}: choose 'question' or 'question+options'")

    @property
    def n_distractors(self) -> int:
        return int(round(self.fraction * self.k))

    def expected_llm_calls(self, n_options: int | None = None) -> int:
        """One answer call (distractor searches make no LLM call)."""
        return 1


def _rng(seed: int | None, question_id: str) -> random.Random:
    return random.Random(int(hashlib.sha256(f"{seed or 0}:{question_id}:graded_mix".encode()).hexdigest()[:16], 16))


@graph("graded_mix", params=Params, needs_retriever=True)
def build(deps: Deps, params: Params):
    m = params.n_distractors
    if m and not deps.questions:
        raise ConfigError("graded_mix with fraction > 0 draws distractors from the run's other questions; "
                          "Deps.questions is empty")

    async def distractors(q, rng: random.Random, exclude: set[str]) -> list:
        own = set(q.gold_doc_ids)
        pool = [o for o in deps.questions or [] if o.id != q.id and o.gold_doc_ids and not own & set(o.gold_doc_ids)]
        rng.shuffle(pool)
        out, used = [], set(exclude)
        for other in pool:
            if len(out) == m:
                break
            gold = set(other.gold_doc_ids)
            hits = await deps.retriever.search(other.question, 5)
            pick = next((d for d in hits if d.metadata.get("doc_id") in gold
                         and d.metadata.get("chunk_id") not in used), None)
            if pick is not None:
                used.add(pick.metadata.get("chunk_id"))
                out.append((other.id, pick))
        return out

    @traced("retrieve")
    async def retrieve(state: State) -> dict:
        q = state["question"]
        query = query_text(state, params.query)
        docs = await deps.retriever.search(query, params.k)
        kept = list(docs[:params.k - m])
        rng = _rng(deps.policy.seed, q.id)
        extra = await distractors(q, rng, {d.metadata.get("chunk_id") for d in docs}) if m else []
        chunks = list(kept)
        for _, d in extra:
            chunks.insert(rng.randint(0, len(chunks)), d)
        info = retrieval_info(query, docs, params.k)
        info.update(distractors=[{"chunk_id": d.metadata.get("chunk_id"), "doc_id": d.metadata.get("doc_id"),
                                  "from_question": qid} for qid, d in extra],
                    kept=len(kept), replaced=m, short=m - len(extra))
        return {"queries": [query], "chunks": chunks, "context": join_chunks(chunks), "_trace": info}

    return then_answer(deps, "retrieve", retrieve, abstain=params.abstain)
