"""Declared LLM calls per question (what ``ragsafe sweep --dry-run`` prints) against what the graphs do.

Every built-in graph runs, with its default params and with params that change its call count,
over a few questions (the demo's 4- and 5-option questions plus a 2- and a 10-option variant, the
limits the benchmark validation allows), under every combination of

* a reply policy: ``agreeable`` (letters, "supported", "relevant", one planned option: the cheap
  path), ``hostile`` (never supported, never relevant, every option planned, a new query each
  time: the expensive path) and ``junk`` (nothing parses: every fallback and skipped step);
* a retriever: ``fixed`` (the same ranked list for every query, so rewritten queries find nothing
  new), ``fresh`` (new chunks for every search) and ``drip`` (one new chunk per search).

Each question's ``llm.calls`` must lie within the declared (fewest, most), and the cheapest and
dearest runs must reach them, so a bound that is too tight or too loose fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import re

import pytest
import yaml
from langchain_core.documents import Document
from langgraph.graph import END, START, StateGraph

from ragsafe.agents import answer as answer_agent
from ragsafe.agents import decompose as decompose_agent
from ragsafe.agents import grade as grade_agent
from ragsafe.agents import plan as plan_agent
from ragsafe.agents import rerank as rerank_agent
from ragsafe.agents import rewrite as rewrite_agent
from ragsafe.agents import synthesize as synth_agent
from ragsafe.agents import verify as verify_agent
from ragsafe.corpora.benchmark import load_benchmark
from ragsafe.corpora.schema import MAX_OPTIONS, MIN_OPTIONS
from ragsafe.experiments.sweep import dry_run, expected_calls, load_sweep
from ragsafe.graphs import Deps, State, graph, graphs, tool_agent, verifier_loop
from ragsafe.graphs.base import make_answer_node
from ragsafe.retrievers.base import annotate
from tests.fakes import ScriptedLLM

ROLE_OF = {answer_agent.SYSTEM_PROMPT: "answer", verify_agent.VERIFY_SYSTEM: "verify",
           plan_agent.PLAN_SYSTEM: "plan", synth_agent.SYNTH_SYSTEM: "synthesize",
           grade_agent.SYSTEM_PROMPT: "grade", rerank_agent.SYSTEM_PROMPT: "rerank",
           rewrite_agent.SYSTEM_PROMPT: "rewrite", decompose_agent.SYSTEM_PROMPT: "decompose",
           tool_agent.SYSTEM: "agent"}


def builtin_graphs() -> list[str]:
    """Graphs shipped in ``ragsafe.graphs`` (other tests register graphs of their own)."""
    return [n for n in graphs if graphs.get(n).build.__module__.startswith("ragsafe.graphs.")]


# ---------------------------------------------------------------- questions


def _questions():
    demo = load_benchmark("demo").questions
    five = next(q for q in demo if len(q.options) == 5)
    four = next(q for q in demo if len(q.options) == 4)
    letters = [chr(ord("A") + i) for i in range(MAX_OPTIONS)]
    two = dataclasses.replace(five, id="two-options", options={L: five.options[L] for L in "AB"}, answer="A")
    ten = dataclasses.replace(five, id="ten-options", answer="A",
                              options={L: five.options.get(L, f"Distractor {L}") for L in letters})
    assert len(two.options) == MIN_OPTIONS and len(ten.options) == MAX_OPTIONS
    report = "Scripted research report: the evidence favours option A."
    return [dataclasses.replace(q, agentic_report=report) for q in (five, four, two, ten)]


QUESTIONS = _questions()


# ---------------------------------------------------------------- reply policies


def _letters(messages) -> list[str]:
    return re.findall(r"^([A-Z])\. ", messages[-1]["content"], flags=re.M)


def agreeable():
    def reply(messages):
        role = ROLE_OF[messages[0]["content"]]
        return {"answer": "A",
                "verify": json.dumps({"verdict": "supported", "reason": "scripted"}),
                "plan": json.dumps({"options": ["A"], "queries": {"A": "option a imaging"}}),
                "synthesize": json.dumps({"findings": {"A": "supported"}, "summary": "A fits."}),
                "grade": json.dumps({"relevant": True}),
                "rerank": json.dumps({"score": 7}),
                "rewrite": json.dumps({"query": "the same query every time"}),
                "decompose": json.dumps({"subquestions": ["What is finding one?", "What is finding two?"]}),
                "agent": json.dumps({"action": "answer"}),
                }[role]
    return reply


def hostile():
    n = itertools.count()

    def reply(messages):
        role = ROLE_OF[messages[0]["content"]]
        if role == "plan":
            letters = _letters(messages)
            return json.dumps({"options": letters, "queries": {L: f"option {L} query" for L in letters}})
        return {"answer": "A",
                "verify": json.dumps({"verdict": "insufficient", "reason": "scripted"}),
                "synthesize": "no",
                "grade": json.dumps({"relevant": False}),
                "rerank": json.dumps({"score": 2}),
                "rewrite": json.dumps({"query": f"brand new query {next(n)}"}),
                "decompose": json.dumps({"subquestions": ["a?", "b?", "c?", "d?", "e?"]}),
                "agent": json.dumps({"action": "search", "query": f"search {next(n)}"}),
                }[role]
    return reply


def junk():
    def reply(messages):
        ROLE_OF[messages[0]["content"]]  # every call is one of the known roles
        return "I am not sure."
    return reply


POLICIES = {"agreeable": agreeable, "hostile": hostile, "junk": junk}


# ---------------------------------------------------------------- retrievers


def _doc(cid: str, text: str) -> Document:
    return Document(page_content=text, id=cid, metadata={"doc_id": cid.split("#")[0], "chunk_id": cid,
                                                           "title": cid.split("#")[0]})


POOL = [_doc(f"pool-{i}#c0", f"passage {i} on imaging findings of the condition in option {i % 5}")
        for i in range(200)]


class WordEmbedder:
    def embed_documents(self, texts):
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text):
        return [float(len(text)), float(text.count(" ")), 1.0]


class FakeRetriever:
    """Every search returns the hits it asks for (the store is large enough); which ones depends on the kind."""

    name = "fake"

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.embedder = WordEmbedder()
        self._new = itertools.count()

    def _fresh(self) -> Document:
        i = next(self._new)
        return _doc(f"fresh-{i}#c0", f"new passage {i} on imaging findings")

    async def search(self, query: str, k: int) -> list[Document]:
        if self.kind == "fixed":
            docs = POOL[:k]
        elif self.kind == "fresh":
            docs = [self._fresh() for _ in range(k)]
        else:  # drip: the same ranked list with one new chunk at the end
            docs = POOL[:k - 1] + [self._fresh()]
        return annotate(docs, [1.0 / (i + 1) for i in range(len(docs))])

    def all_chunks(self) -> list[Document]:
        return list(POOL)

    def describe(self):
        return {"kind": self.kind}


RETRIEVERS = ("fixed", "fresh", "drip")


# ---------------------------------------------------------------- running


def calls_per_question(name: str, params: dict, policy: str, retriever: str) -> list[int]:
    spec = graphs.get(name)
    p = spec.make_params(params)
    out = []
    for q in QUESTIONS:
        llm = ScriptedLLM(POLICIES[policy]())
        deps = Deps(llm=llm, retriever=FakeRetriever(retriever), context_window=4096)
        asyncio.run(spec.build(deps, p).ainvoke({"question": q, "queries": [], "trace": []}))
        out.append(llm.calls)
    return out


def check(name: str, params: dict) -> tuple[int, int]:
    """Run every policy x retriever x question; the calls must stay within and reach the declared bounds,
    both those for any question (``n_options=None``) and those for the question's own option count."""
    spec = graphs.get(name)
    p = spec.make_params(params)
    declared = expected_calls(spec, p)
    assert declared is not None, f"{name} does not declare its LLM calls"
    lo, hi = declared
    per_count = {len(q.options): expected_calls(spec, p, n_options=len(q.options)) for q in QUESTIONS}
    seen, seen_per_count = {}, {n: {} for n in per_count}
    for policy, retriever in itertools.product(POLICIES, RETRIEVERS):
        for q, n in zip(QUESTIONS, calls_per_question(name, params, policy, retriever)):
            where = f"{name}{params} policy={policy} retriever={retriever} question={q.id} ({len(q.options)} options)"
            assert lo <= n <= hi, f"{where}: {n} LLM calls, declared {lo}..{hi}"
            qlo, qhi = per_count[len(q.options)]
            assert qlo <= n <= qhi, f"{where}: {n} LLM calls, declared {qlo}..{qhi} for {len(q.options)} options"
            seen.setdefault(n, where)
            seen_per_count[len(q.options)].setdefault(n, where)
    assert min(seen) == lo, f"{name}{params}: declared fewest {lo}, but the cheapest run made {min(seen)}"
    assert max(seen) == hi, f"{name}{params}: declared most {hi}, but the dearest run made {max(seen)}"
    for k, (qlo, qhi) in per_count.items():
        assert lo <= qlo <= qhi <= hi, f"{name}{params}: bounds for {k} options {qlo}..{qhi} outside {lo}..{hi}"
        got = seen_per_count[k]
        assert min(got) == qlo, (f"{name}{params}: declared fewest {qlo} for {k} options, "
                                 f"but the cheapest run made {min(got)}")
        assert max(got) == qhi, (f"{name}{params}: declared most {qhi} for {k} options, "
                                 f"but the dearest run made {max(got)}")
    return lo, hi


# Params that change the call count (loop bounds 0/1/2, steps switched off, per-option work).
CASES = {
    "closed_book": [{}],
    "clean_evidence": [{}],
    "conflict_evidence": [{}],
    "precomputed_report": [{}],
    "standard_rag": [{}, {"k": 1}],
    "hybrid_rag": [{}, {"weights": "1,0"}],
    "max_context": [{}],
    "rerank_rag": [{}, {"k": 1, "n_candidates": 3}, {"reranker": "embedding"}, {"reranker": "none"}],
    "decompose": [{}, {"max_subquestions": 0}, {"max_subquestions": 1, "include_question": False}],
    "query_rewrite": [{}, {"max_rounds": 0}, {"max_rounds": 2}, {"max_rounds": 2, "stop_early": False},
                      {"max_rounds": 1, "per_option": True}, {"max_rounds": 2, "per_option": True, "stop_early": False}],
    "corrective_rag": [{}, {"grade": False}, {"max_rewrites": 0}, {"k": 2, "max_rewrites": 2},
                       {"k": 2, "max_rewrites": 2, "min_relevant": 0},
                       {"k": 2, "max_rewrites": 2, "grade_fallback": "irrelevant", "filter_irrelevant": False},
                       # min_relevant > k: the first search can never pass; all rewrites finding nothing new
                       # is cheapest with one rewrite left, one rewrite grading one new chunk with five
                       {"k": 2, "min_relevant": 3, "max_rewrites": 1}, {"k": 2, "min_relevant": 3, "max_rewrites": 5}],
    "verifier_loop": [{}, {"verify": False}, {"max_rounds": 0}, {"max_rounds": 2},
                      {"max_rounds": 1, "abstain_on_contradiction": True}],
    "mixed_evidence": [{}],
    "rag_plus_clean": [{}],
    "graded_mix": [{}],
    "option_research": [{}, {"plan": False}, {"max_options": 1}, {"max_refinements": 0, "synthesize": False},
                        {"max_refinements": 2, "contra": False, "plan": False}],
    # the JSON route (the scripted client makes no tool calls; the native and auto routes' counts are
    # checked over HTTP in test_tool_agent.py)
    "tool_agent": [{"route": "json"}, {"route": "json", "max_steps": 0}, {"route": "json", "max_steps": 1}],
    "self_consistency": [{"n": 2}, {"n": 0},
                         {"inner": "verifier_loop", "n": 2, "resample": "graph"},
                         {"inner": "verifier_loop", "inner_params": "max_rounds=0", "n": 1},
                         {"inner": "corrective_rag", "inner_params": "k=2;max_rewrites=1", "n": 1,
                          "resample": "graph"}],
}


def test_every_builtin_graph_declares_its_calls():
    for name in builtin_graphs():
        spec = graphs.get(name)
        got = expected_calls(spec, spec.make_params({}))
        assert got is not None, f"{name}: sweep --dry-run would print '?'; add Params.expected_llm_calls()"
        lo, hi = got
        assert isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi, (name, got)


def test_every_builtin_graph_is_checked_here():
    assert sorted(CASES) == sorted(builtin_graphs()), "add the new graph's call-changing params to CASES"


@pytest.mark.parametrize("name,params", [(n, p) for n, ps in CASES.items() for p in ps],
                         ids=lambda x: x if isinstance(x, str) else ",".join(f"{k}={v}" for k, v in x.items()) or "default")
def test_declared_calls_match_behaviour(name, params):
    check(name, params)


def test_declared_values_follow_the_params():
    """A few bounds by hand, so a formula that the runs happen to meet for the wrong reason still fails."""
    def b(name, **p):
        spec = graphs.get(name)
        return expected_calls(spec, spec.make_params({k: str(v) for k, v in p.items()}))

    assert b("rerank_rag", n_candidates=20) == (21, 21)
    assert b("corrective_rag", k=5, max_rewrites=1) == (6, 12)
    assert b("corrective_rag", k=2, min_relevant=3, max_rewrites=5) == (5, 18)
    assert b("verifier_loop", max_rounds=2) == (2, 6)
    assert b("query_rewrite", max_rounds=2, per_option=True) == (1 + MIN_OPTIONS, 1 + 2 * MAX_OPTIONS)
    assert b("option_research") == (4, 3 + 2 * MAX_OPTIONS)
    assert b("self_consistency", inner="verifier_loop", n=3, resample="graph") == (8, 16)


def test_declared_values_for_an_option_count():
    """With ``n_options`` the per-option work is that many options; graphs that do no per-option work ignore it."""
    def b(name, n_options, **p):
        spec = graphs.get(name)
        return expected_calls(spec, spec.make_params({k: str(v) for k, v in p.items()}), n_options=n_options)

    assert b("query_rewrite", 4, max_rounds=2, per_option=True) == (1 + 4, 1 + 2 * 4)
    assert b("query_rewrite", 5, max_rounds=2, per_option=True, stop_early=False) == (1 + 2 * 5, 1 + 2 * 5)
    assert b("query_rewrite", 5, max_rounds=2) == b("query_rewrite", None, max_rounds=2) == (2, 3)
    assert b("option_research", 4) == (4, 3 + 2 * 4)
    assert b("option_research", 5, plan=False) == (2 + 5, 2 + 2 * 5)
    assert b("option_research", 5, plan=False, max_refinements=0, synthesize=False) == (1 + 5, 1 + 5)
    assert b("self_consistency", 4, inner="option_research", n=2) == (4 + 2, 3 + 2 * 4 + 2)
    assert b("self_consistency", 4, inner="query_rewrite", inner_params="per_option=true", n=1,
             resample="graph") == (2 * (1 + 4), 2 * (1 + 4))
    for name in ("closed_book", "standard_rag", "corrective_rag", "verifier_loop", "rerank_rag", "decompose"):
        assert b(name, 4) == b(name, None), name


@pytest.mark.parametrize("wrong", [(1, 4), (2, 3), (3, 4), (2, 5), 2])
def test_a_wrong_declaration_fails_the_check(monkeypatch, wrong):
    """verifier_loop's defaults make 2 to 4 calls; anything else must be caught."""
    monkeypatch.setattr(verifier_loop.Params, "expected_llm_calls", lambda self: wrong)
    with pytest.raises(AssertionError):
        check("verifier_loop", {})


def test_the_check_accepts_the_true_declaration():
    assert check("verifier_loop", {}) == (2, 4)


# ---------------------------------------------------------------- user graphs and the dry run


@dataclasses.dataclass(frozen=True, kw_only=True)
class LegacyParams:
    """A user graph's params written before ``n_options``: ``expected_llm_calls(self)`` takes no argument."""

    steps: int = 2

    def expected_llm_calls(self):
        return (1, self.steps + 1)


@graph("expected_calls_legacy_test", params=LegacyParams)
def build_legacy(deps: Deps, params: LegacyParams):
    """Test graph: one answer (its declared calls are what the tests read)."""
    b = StateGraph(State)
    b.add_node("answer", make_answer_node(deps))
    b.add_edge(START, "answer")
    b.add_edge("answer", END)
    return b.compile()


def test_a_declaration_without_n_options_still_works():
    spec = graphs.get("expected_calls_legacy_test")
    p = spec.make_params({"steps": "3"})
    for n in (None, MIN_OPTIONS, 4, MAX_OPTIONS):
        assert expected_calls(spec, p, n_options=n) == (1, 4)
    assert expected_calls(spec, p) == (1, 4)
    # wrapped by self_consistency, n_options reaches it the same way
    sc = graphs.get("self_consistency")
    wrapped = sc.make_params({"inner": "expected_calls_legacy_test", "inner_params": "steps=3", "n": "2"})
    assert expected_calls(sc, wrapped, n_options=5) == (3, 6)


def test_dry_run_counts_each_question_by_its_options(tmp_path):
    """The demo benchmark has only 4- and 5-option questions: the dry run sums each question's own bounds,
    tighter than the bounds for any option count times the questions."""
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({
        "name": "options", "benchmark": "demo", "out": str(tmp_path / "runs"),
        "endpoints": [{"name": "fake", "model": "fake", "base_url": "http://127.0.0.1:9/v1"}],
        "graphs": ["option_research", "option_research[plan=false]",
                   {"name": "query_rewrite", "params": {"per_option": True}}, "closed_book",
                   "expected_calls_legacy_test"]}, sort_keys=False))
    jobs = load_sweep(sweep_file).jobs()
    rows, totals = dry_run(jobs)
    assert not (tmp_path / "runs").exists()
    (job,) = jobs
    pend = job.pending()
    counts = {len(q.options) for q in job.questions}
    assert counts == {4, 5}, "the demo benchmark's option counts changed; adjust the hand totals below"
    by_label = {r["variant"]: r for r in rows}
    for v in job.plan["variants"]:
        row, todo = by_label[v.label], pend[v.label]
        assert row["todo"] == len(todo) == len(job.questions) == 72
        per_q = [expected_calls(v.spec, v.params, n_options=len(q.options)) for q in todo]
        assert row["calls"] == (sum(c[0] for c in per_q), sum(c[1] for c in per_q)), v.label
        lo, hi = expected_calls(v.spec, v.params)
        assert lo * len(todo) <= row["calls"][0] <= row["calls"][1] <= hi * len(todo), v.label
    # 60 questions with 5 options, 12 with 4
    assert by_label["option_research"]["calls"] == (72 * 4, 60 * (3 + 2 * 5) + 12 * (3 + 2 * 4))
    assert by_label["option_research"]["calls"][1] < 72 * expected_calls(graphs.get("option_research"),
                                                                          graphs.get("option_research").make_params({}))[1]
    assert by_label["option_research[plan=false]"]["calls"] == (60 * 7 + 12 * 6, 60 * 12 + 12 * 10)
    assert by_label["query_rewrite[per_option=true]"]["calls"] == (60 * 6 + 12 * 5, 60 * 6 + 12 * 5)
    assert by_label["closed_book"]["calls"] == (72, 72)
    assert by_label["expected_calls_legacy_test"]["calls"] == (72, 72 * 3)
    assert totals["calls_min"] == sum(r["calls"][0] for r in rows)
    assert totals["calls_max"] == sum(r["calls"][1] for r in rows)
    assert totals["questions_with_unknown_calls"] == 0
