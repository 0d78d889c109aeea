"""Verifier loop: answer, check the chosen option against the evidence, fill the gap, answer again.

Round 0 is standard RAG. After each answer the verifier judges the chosen option against the
chunks the answerer saw (supported / contradicted / insufficient). Unless it is supported, new
chunks are retrieved for the gap — a query about the option the verifier favours instead, else
about the chosen option — and the question is answered again over the enlarged evidence, for at
most ``max_rounds`` rounds. Every answer and verdict is traced with its round; the ``finalize``
entry records which round produced the final answer and why the loop stopped.
``verify=false`` removes the verifier and the loop: the graph is then plain RAG.
``abstain_on_contradiction=true`` turns a final answer the verifier judged contradicted by the
evidence into an explicit abstention (letter None, ``answer.source="abstention"``, the withheld
letter kept as ``answer.withheld``); ``abstain=true`` lets the answerer itself answer "insufficient
evidence".
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph

from ragsafe.agents import verify as verify_agent
from ragsafe.agents.plan import default_query
from ragsafe.graphs.base import Deps, State, graph, join_chunks, make_answer_node, retrieval_info, traced
from ragsafe.graphs.standard_rag import check_query, query_text

_RANK = {"contradicted": 0, "insufficient": 1, "supported": 2}


class VerifierState(State, total=False):
    round: int
    """Current round; 0 is the first answer."""
    rounds: Annotated[list[dict[str, Any]], operator.add]
    """One entry per answered round: letter, answer, verdict."""
    final_round: int
    stop: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    k: int = 5
    """Chunks retrieved for the first answer (query: the question)."""
    query: str = "question"
    """First retrieval query: "question" (the paper's) or "question+options"."""
    verify: bool = True
    """Run the verifier and the re-answer loop (false: plain RAG, no verifier call)."""
    max_rounds: int = 1
    """Re-answer rounds after a verdict other than supported (0: verify once, never re-answer)."""
    gap_k: int = 3
    """New chunks (not already in the context) retrieved for the gap in each round."""
    gap_query: str = "option"
    """Gap query: "option" (the option the verifier favours instead, else the chosen one, with the
    stem) or "verifier" (the verifier's own query when it wrote one)."""
    evidence_chars: int = 800
    """Each chunk shown to the verifier is cut to this many characters (0: whole chunks)."""
    pick: str = "last"
    """Final answer: "last" (the last round's) or "best" (best verdict: supported > insufficient >
    contradicted; ties go to the later round)."""
    verify_tokens: int = 120
    """Cap on the verifier's JSON reply, tokens."""
    abstain: bool = False
    """Let the answerer answer "insufficient evidence" (recorded as an abstention, not a null)."""
    abstain_on_contradiction: bool = False
    """Abstain instead of answering when the verifier judged the final answer contradicted by the evidence."""

    def __post_init__(self) -> None:
        for name in ("k", "gap_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")
        if self.max_rounds < 0:
            raise ValueError(f"max_rounds={self.max_rounds}: must be >= 0")
        check_query(self.query)
        if self.gap_query not in ("option", "verifier"):
            raise ValueError(f"gap_query={self.gap_query!r}: choose 'option' or 'verifier'")
        if self.pick not in ("last", "best"):
            raise ValueError(f"pick={self.pick!r}: choose 'last' or 'best'")
        if self.evidence_chars < 0:
            raise ValueError(f"evidence_chars={self.evidence_chars}: must be >= 0")
        if self.abstain_on_contradiction and not self.verify:
            raise ValueError("abstain_on_contradiction=true needs verify=true (no verdict without the verifier)")

    def expected_llm_calls(self, n_options: int | None = None) -> int | tuple[int, int]:
        """``verify=false``: 1. Else per round 1 answer + 1 verify (skipped when the answer has no
        letter), for 1 + ``max_rounds`` rounds at most: most ``2 * (max_rounds + 1)``. Fewest: 1 with
        ``max_rounds=0`` (no letter, so no verify); else 2 (a letter verified "supported" at once).
        Assumes the store has chunks left for the gap search (an exhausted store stops the loop early)."""
        if not self.verify:
            return 1
        return (1 if self.max_rounds == 0 else 2, 2 * (self.max_rounds + 1))


def gap_query(state: VerifierState, verdict: dict[str, Any], mode: str) -> tuple[str, str]:
    """(query, source) for the evidence the last verdict found missing."""
    q = state["question"]
    if mode == "verifier" and verdict.get("query"):
        return verdict["query"], "verifier"
    alt, letter = verdict.get("alternative"), state.get("letter")
    if verdict.get("verdict") == "contradicted" and alt in q.options:
        return default_query(q.question, q.options[alt]), f"alternative:{alt}"
    if letter in q.options:
        return default_query(q.question, q.options[letter]), f"chosen:{letter}"
    return query_text(state, "question+options"), "question+options"


def pick_round(rounds: list[dict[str, Any]], how: str) -> dict[str, Any]:
    if how == "best":
        return max(reversed(rounds), key=lambda r: _RANK.get(r["verdict"], 1))
    return rounds[-1]


@graph("verifier_loop", params=Params, needs_retriever=True)
def build(deps: Deps, params: Params):
    shared_answer = make_answer_node(deps, abstain=params.abstain)

    @traced("retrieve")
    async def retrieve(state: VerifierState) -> dict:
        query = query_text(state, params.query)
        docs = await deps.retriever.search(query, params.k)
        return {"queries": [query], "chunks": docs, "context": join_chunks(docs), "round": 0,
                "_trace": retrieval_info(query, docs, params.k)}

    async def answer(state: VerifierState) -> dict:
        out = await shared_answer(state)
        out["trace"][0]["round"] = state.get("round", 0)
        return out

    @traced("verify")
    async def verify(state: VerifierState) -> dict:
        q, letter, rnd = state["question"], state.get("letter"), state.get("round", 0)
        docs = state.get("chunks") or []
        if letter not in q.options or not docs:
            # nothing to check: no call, and the round counts as unverified
            why = "no letter" if letter not in q.options else "no evidence"
            v = verify_agent.Verdict("insufficient", reason=f"not verified: {why}")
            info = {"role": "verify", "output": v.as_dict(), "llm_calls": [], "skipped": why}
            fallback = False
        else:
            s = await verify_agent.verify(deps.llm, q.question, q.options, letter, docs,
                                          evidence_chars=params.evidence_chars or None,
                                          max_tokens=params.verify_tokens, seed=deps.policy.seed)
            v, info, fallback = s.value, verify_agent.trace(s), s.fallback
        entry = {"round": rnd, "letter": letter, "answer": state.get("answer"), "verdict": v.verdict,
                 "detail": v.as_dict(), "fallback": fallback, "chunk_ids": [d.metadata.get("chunk_id") for d in docs]}
        return {"rounds": [entry], "_trace": {**info, "round": rnd, "letter": letter}}

    def after_verify(state: VerifierState) -> str:
        last = state["rounds"][-1]
        if last["verdict"] == "supported" or state.get("round", 0) >= params.max_rounds:
            return "finalize"
        return "gap"

    @traced("gap")
    async def gap(state: VerifierState) -> dict:
        last = state["rounds"][-1]
        query, source = gap_query(state, last["detail"], params.gap_query)
        have = state.get("chunks") or []
        seen = {d.metadata.get("chunk_id") for d in have}
        # ask for enough to find gap_k chunks the answerer has not seen yet
        found = await deps.retriever.search(query, params.gap_k + len(have))
        new = [d for d in found if d.metadata.get("chunk_id") not in seen][:params.gap_k]
        info = {**retrieval_info(query, new, params.gap_k), "query_source": source,
                "round": state.get("round", 0) + 1, "new_chunks": len(new)}
        if not new:
            return {"queries": [query], "stop": "no_new_evidence", "_trace": info}
        chunks = list(have) + new
        return {"queries": [query], "chunks": chunks, "context": join_chunks(chunks),
                "round": state.get("round", 0) + 1, "_trace": info}

    def after_gap(state: VerifierState) -> str:
        return "finalize" if state.get("stop") == "no_new_evidence" else "answer"

    @traced("finalize")
    async def finalize(state: VerifierState) -> dict:
        rounds = state["rounds"]
        chosen = pick_round(rounds, params.pick)
        stop = state.get("stop") or ("supported" if rounds[-1]["verdict"] == "supported" else "max_rounds")
        letter, answer = chosen["letter"], chosen["answer"]
        withheld = params.abstain_on_contradiction and letter is not None and chosen["verdict"] == "contradicted"
        if withheld:
            letter, answer = None, {**(answer or {}), "letter": None, "source": "abstention", "withheld": letter}
        return {"letter": letter, "answer": answer, "final_round": chosen["round"], "stop": stop,
                "_trace": {"final_round": chosen["round"], "letter": letter, "pick": params.pick,
                           "stop": stop, "verdicts": [r["verdict"] for r in rounds],
                           "letters": [r["letter"] for r in rounds],
                           **({"abstained": True, "withheld": chosen["letter"]} if withheld else {})}}

    builder = StateGraph(VerifierState)
    builder.add_node("retrieve", retrieve)
    builder.add_node("answer", answer)
    builder.add_edge(START, "retrieve")
    builder.add_edge("retrieve", "answer")
    if not params.verify:
        builder.add_edge("answer", END)
        return builder.compile()
    builder.add_node("verify", verify)
    builder.add_node("gap", gap)
    builder.add_node("finalize", finalize)
    builder.add_edge("answer", "verify")
    builder.add_conditional_edges("verify", after_verify, {"gap": "gap", "finalize": "finalize"})
    builder.add_conditional_edges("gap", after_gap, {"answer": "answer", "finalize": "finalize"})
    builder.add_edge("finalize", END)
    return builder.compile().with_config(recursion_limit=10 + 3 * params.max_rounds)
