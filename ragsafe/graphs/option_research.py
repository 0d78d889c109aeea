"""Option research: the paper's multi-step agentic RAG, run live per question.

A supervisor plans which options to research and with what query. Each planned option goes, by
``Send``, to a research sub-graph (its own compiled StateGraph): retrieve evidence for the
option and, separately, evidence against it; the judge (the verifier role) rates the option as
supported / contradicted / insufficient and names the passages on each side; while the
evidence is insufficient the query is refined (the judge's own query, else a fixed
reformulation) up to ``max_refinements`` times. A synthesizer turns the per-option notes into a
short structured report, and the shared answerer answers with the report as its context.

Ablations: ``plan=false`` researches every option with default queries, ``max_refinements=0``
judges once, ``synthesize=false`` answers from the raw per-option evidence.
LLM calls per question: 1 plan + (1 + refinements) per option + 1 synthesis + 1 answer.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Annotated, Any, TypedDict

from langchain_core.documents import Document
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from ragsafe.agents import plan as plan_agent
from ragsafe.agents import synthesize as synth_agent
from ragsafe.agents import verify as verify_agent
from ragsafe.corpora.schema import MAX_OPTIONS, MIN_OPTIONS, Question
from ragsafe.graphs.base import Deps, State, graph, join_chunks, make_answer_node, retrieval_info, traced


class ResearchRAGState(State, total=False):
    plan: dict[str, Any]
    """The supervisor's plan: options and one query each."""
    research: Annotated[list[dict[str, Any]], operator.add]
    """One note per researched option (from the research sub-graph)."""
    report: str


class OptionState(TypedDict, total=False):
    """State of the research sub-graph: one option of one question."""

    question: Question
    option: str
    query: str
    queries: Annotated[list[str], operator.add]
    batch: list[Document]
    """This round's chunks, shown to the judge."""
    seen: list[str]
    cited: list[Document]
    """Chunks the judge named as supporting or contradicting, over all rounds."""
    sides: dict[str, str]
    """chunk id -> "for" or "against", as the judge named it."""
    verdict: dict[str, Any]
    fallback: bool
    refinements: int
    research: Annotated[list[dict[str, Any]], operator.add]
    trace: Annotated[list[dict[str, Any]], operator.add]


class OptionOutput(TypedDict, total=False):
    """What the sub-graph hands back to the parent (keys the parent accumulates)."""

    queries: Annotated[list[str], operator.add]
    research: Annotated[list[dict[str, Any]], operator.add]
    trace: Annotated[list[dict[str, Any]], operator.add]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    k: int = 2
    """Chunks retrieved per research query."""
    contra: bool = True
    """Also search for evidence against each option (a second query per round)."""
    plan: bool = True
    """Let the supervisor choose the options and queries (false: research every option with default queries)."""
    max_options: int = 0
    """Research at most this many of the planned options (0: no cap). A plan that falls back researches every option."""
    max_refinements: int = 1
    """Query refinements per option while the evidence is insufficient (0 switches refinement off)."""
    synthesize: bool = True
    """Write a structured report from the research notes (false: answer from the raw per-option evidence)."""
    chunks_per_option: int = 2
    """Evidence chunks kept per option for the report or the raw context."""
    evidence_chars: int = 600
    """Each chunk shown to the judge is cut to this many characters (0: whole chunks)."""
    excerpt_chars: int = 300
    """Each evidence excerpt in the synthesizer prompt and the report is cut to this many characters."""
    report_chars: int = 2400
    """The report is cut to this many characters."""
    plan_tokens: int = 160
    """Cap on the supervisor's JSON reply, tokens."""
    judge_tokens: int = 120
    """Cap on the judge's JSON reply, tokens."""
    synth_tokens: int = 250
    """Cap on the synthesizer's JSON reply, tokens."""

    def __post_init__(self) -> None:
        for name in ("k", "chunks_per_option", "excerpt_chars", "report_chars", "plan_tokens", "judge_tokens",
                     "synth_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")
        for name in ("max_options", "max_refinements", "evidence_chars"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 0")

    def expected_llm_calls(self, n_options: int | None = None) -> int | tuple[int, int]:
        """``plan`` (1) + per researched option 1 judge + up to ``max_refinements`` more + ``synthesize``
        (1) + 1 answer. Options: with ``plan``, 1 (fewest planned) to every option (a plan that falls
        back ignores ``max_options``); without, every option. Every option is the question's
        ``n_options``; None: 2 to 10 (``benchmark.MIN_OPTIONS``/``MAX_OPTIONS``). Assumes each search
        finds new chunks (a judge with no new evidence is skipped)."""
        fixed = int(self.plan) + int(self.synthesize) + 1
        fewest, most = (MIN_OPTIONS, MAX_OPTIONS) if n_options is None else (n_options, n_options)
        fewest_options = 1 if self.plan else fewest
        return (fixed + fewest_options, fixed + most * (1 + self.max_refinements))


REFINE_SUFFIXES = ("", "imaging appearance", "clinical features and management")
"""Fixed reformulations (option text + suffix) when the judge gives no new query."""


def refine_query(option_text: str, suggested: str, tried: list[str]) -> tuple[str, str]:
    """(next query, source): the judge's suggestion when new, else the first untried reformulation."""
    if suggested and suggested not in tried:
        return suggested, "judge"
    for suffix in REFINE_SUFFIXES:
        q = f"{option_text.strip()} {suffix}".strip()
        if q not in tried:
            return q, "fallback"
    return f"{option_text.strip()} radiology {len(tried)}", "fallback"


def build_research(deps: Deps, params: Params):
    """The research sub-graph for one option: search → judge → (refine → search)* → note."""

    async def fresh(query: str, seen: set[str]) -> list[Document]:
        found = await deps.retriever.search(query, params.k + len(seen))
        return [d for d in found if d.metadata.get("chunk_id") not in seen][:params.k]

    @traced("research.search")
    async def search(state: OptionState) -> dict:
        q, L = state["question"], state["option"]
        seen = set(state.get("seen") or [])
        queries = [state["query"]] + ([plan_agent.contra_query(q.options[L])] if params.contra else [])
        batch, hits = [], []
        for query in queries:
            docs = await fresh(query, seen)
            seen |= {d.metadata.get("chunk_id") for d in docs}
            batch += docs
            hits.append(retrieval_info(query, docs, params.k)["retrieval"])
        return {"queries": queries, "batch": batch, "seen": sorted(seen),
                "_trace": {"option": L, "retrieval": hits[0], "retrievals": hits}}

    @traced("research.judge")
    async def judge(state: OptionState) -> dict:
        q, L, batch = state["question"], state["option"], state.get("batch") or []
        if not batch:
            v = verify_agent.Verdict("insufficient", reason="no new evidence found")
            return {"verdict": v.as_dict(), "fallback": False,
                    "_trace": {"role": "judge", "output": v.as_dict(), "llm_calls": [], "option": L,
                               "refinement": state.get("refinements", 0), "skipped": "no new evidence"}}
        s = await verify_agent.verify(deps.llm, q.question, q.options, L, batch,
                                      evidence_chars=params.evidence_chars or None,
                                      max_tokens=params.judge_tokens, seed=deps.policy.seed)
        v = s.value
        sides = dict(state.get("sides") or {})
        cited = list(state.get("cited") or [])
        for side, numbers in (("for", v.supporting), ("against", v.contradicting)):
            for i in numbers:
                cid = batch[i - 1].metadata.get("chunk_id")
                if cid not in sides:
                    sides[cid] = side
                    cited.append(batch[i - 1])
        return {"verdict": v.as_dict(), "fallback": s.fallback, "cited": cited, "sides": sides,
                "_trace": verify_agent.trace(s, role="judge", option=L, refinement=state.get("refinements", 0))}

    def after_judge(state: OptionState) -> str:
        if state["verdict"]["verdict"] != "insufficient" or not state.get("batch"):
            return "note"
        return "refine" if state.get("refinements", 0) < params.max_refinements else "note"

    @traced("research.refine")
    async def refine(state: OptionState) -> dict:
        q, L = state["question"], state["option"]
        tried = list(state.get("queries") or [])
        query, source = refine_query(q.options[L], state["verdict"].get("query") or "", tried)
        n = state.get("refinements", 0) + 1
        return {"query": query, "refinements": n,
                "_trace": {"option": L, "refinement": n, "query": query, "query_source": source}}

    @traced("research.note")
    async def note(state: OptionState) -> dict:
        q, L = state["question"], state["option"]
        # evidence the judge cited first, then the latest batch, capped
        evidence, ids = [], set()
        for d in list(state.get("cited") or []) + list(state.get("batch") or []):
            cid = d.metadata.get("chunk_id")
            if cid not in ids:
                ids.add(cid)
                evidence.append(d)
        evidence = evidence[:params.chunks_per_option]
        sides = state.get("sides") or {}
        v = state["verdict"]
        out = {"option": L, "text": q.options[L], "verdict": v["verdict"], "reason": v.get("reason", ""),
               "fallback": bool(state.get("fallback")), "refinements": state.get("refinements", 0),
               "evidence": evidence, "sides": [sides.get(d.metadata.get("chunk_id"), "") for d in evidence]}
        return {"research": [out],
                "_trace": {"option": L, "verdict": v["verdict"], "refinements": out["refinements"],
                           "evidence": [d.metadata.get("chunk_id") for d in evidence], "sides": out["sides"]}}

    b = StateGraph(OptionState, output_schema=OptionOutput)
    b.add_node("search", search)
    b.add_node("judge", judge)
    b.add_node("refine", refine)
    b.add_node("note", note)
    b.add_edge(START, "search")
    b.add_edge("search", "judge")
    b.add_conditional_edges("judge", after_judge, {"refine": "refine", "note": "note"})
    b.add_edge("refine", "search")
    b.add_edge("note", END)
    return b.compile().with_config(recursion_limit=10 + 3 * params.max_refinements)


def _notes(state: ResearchRAGState) -> list[dict[str, Any]]:
    return sorted(state.get("research") or [], key=lambda n: n["option"])


def _evidence(notes: list[dict[str, Any]]) -> list[Document]:
    out, ids = [], set()
    for n in notes:
        for d in n["evidence"]:
            if d.metadata.get("chunk_id") not in ids:
                ids.add(d.metadata.get("chunk_id"))
                out.append(d)
    return out


@graph("option_research", params=Params, needs_retriever=True)
def build(deps: Deps, params: Params):
    research = build_research(deps, params)

    @traced("plan")
    async def plan(state: ResearchRAGState) -> dict:
        q = state["question"]
        if not params.plan:
            p = plan_agent.all_options(q.question, q.options)
            return {"plan": p.as_dict(), "_trace": {"role": "plan", "output": p.as_dict(), "llm_calls": [],
                                                    "skipped": "plan=false"}}
        s = await plan_agent.plan(deps.llm, q.question, q.options, max_options=params.max_options or None,
                                  max_tokens=params.plan_tokens, seed=deps.policy.seed)
        return {"plan": s.value.as_dict(), "_trace": s.trace("plan")}

    def fan_out(state: ResearchRAGState) -> list[Send]:
        p = state["plan"]
        return [Send("research", {"question": state["question"], "option": L, "query": p["queries"][L]})
                for L in p["options"]]

    @traced("synthesize")
    async def synthesize(state: ResearchRAGState) -> dict:
        q, notes = state["question"], _notes(state)
        on = [synth_agent.OptionNotes(n["option"], n["text"], n["verdict"], n["reason"],
                                      tuple(zip(n["sides"], (d.page_content for d in n["evidence"]))))
              for n in notes]
        s = await synth_agent.synthesize(deps.llm, q.question, on, excerpt_chars=params.excerpt_chars,
                                         max_tokens=params.synth_tokens, seed=deps.policy.seed)
        report = synth_agent.render_report(on, s.value, excerpt_chars=params.excerpt_chars,
                                           max_chars=params.report_chars)
        docs = _evidence(notes)
        return {"report": report, "context": report, "chunks": docs,
                "_trace": {**s.trace("synthesize"), "report_chars": len(report),
                           "options": [n["option"] for n in notes]}}

    @traced("evidence")
    async def raw_evidence(state: ResearchRAGState) -> dict:
        notes = _notes(state)
        docs = _evidence(notes)
        return {"context": join_chunks(docs), "chunks": docs,
                "_trace": {"source": "raw evidence", "options": [n["option"] for n in notes],
                           "chunk_ids": [d.metadata.get("chunk_id") for d in docs]}}

    collect = "synthesize" if params.synthesize else "evidence"
    builder = StateGraph(ResearchRAGState)
    builder.add_node("plan", plan)
    builder.add_node("research", research)
    builder.add_node(collect, synthesize if params.synthesize else raw_evidence)
    builder.add_node("answer", make_answer_node(deps))
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["research"])
    builder.add_edge("research", collect)
    builder.add_edge(collect, "answer")
    builder.add_edge("answer", END)
    # the parent's limit also governs the research sub-graph's refinement loop
    return builder.compile().with_config(recursion_limit=10 + 3 * params.max_refinements)
