"""End to end: the agentic graphs over real HTTP (llama.cpp server) and the real Chroma store.

smollm2-135m answers near chance and often writes JSON that does not fit, so these tests check
plumbing — trace shape, that every LLM call is traced with its role, retrieved ids that exist in
the store, prompts that fit the window — never whether a verdict or an answer is right.
Params are kept small (few chunks, one round) so each graph runs in seconds per question.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from ragsafe.agents import answer as answer_agent
from ragsafe.agents import plan as plan_agent
from ragsafe.graphs import graphs
from tests.conftest import E2E_FLAVOR

pytestmark = pytest.mark.e2e

ROLES = {"answer", "verify", "plan", "judge", "synthesize"}


def run_all(deps, name, questions, **overrides) -> list[tuple[object, dict, int]]:
    """Each question through ``name`` in one event loop (as the runner does): (question, state, HTTP calls)."""
    spec = graphs.get(name)
    app = spec.build(deps, spec.make_params(overrides))

    async def go():
        out = []
        for q in questions:
            before, t0 = deps.llm.calls, time.perf_counter()
            st = await app.ainvoke({"question": q, "queries": [], "trace": []})
            print(f"\n[e2e timing] {name} {q.id}: {time.perf_counter() - t0:.1f}s, {deps.llm.calls - before} calls")
            out.append((q, st, deps.llm.calls - before))
        return out

    return asyncio.run(go())


def traced_calls(st) -> list[dict]:
    return [dict(c, role=t["role"]) for t in st["trace"] for c in t.get("llm_calls") or []]


def assert_calls_traced(st, n_calls: int) -> None:
    """Every HTTP call the client made is in the trace, with a known role, real tokens and a hash."""
    calls = traced_calls(st)
    assert len(calls) == n_calls
    assert {c["role"] for c in calls} <= ROLES
    assert all(c["prompt_tokens"] > 0 and c["completion_tokens"] >= 1 and c["model"] for c in calls)
    assert all(t["prompt_hash"] for t in st["trace"] if t.get("llm_calls"))


def assert_in_store(store, ids) -> None:
    ids = sorted(set(ids))
    assert ids and len(store.collection.get(ids=ids)["ids"]) == len(ids)


@pytest.fixture
def two_questions(demo_benchmark):
    return demo_benchmark.select(limit=2)


def test_verifier_loop_e2e(e2e_deps, demo_store, two_questions):
    for q, st, n_calls in run_all(e2e_deps, "verifier_loop", two_questions, k=1, gap_k=1, max_rounds=1,
                                  evidence_chars=400, verify_tokens=60):
        names = [t["node"] for t in st["trace"]]
        assert names[:3] == ["retrieve", "answer", "verify"] and names[-1] == "finalize"
        verifies = [t for t in st["trace"] if t["node"] == "verify"]
        answers = [t for t in st["trace"] if t["node"] == "answer"]
        assert 1 <= len(verifies) == len(answers) <= 2
        assert all(v["output"]["verdict"] in ("supported", "contradicted", "insufficient") for v in verifies)
        fin = st["trace"][-1]
        assert fin["verdicts"] == [v["output"]["verdict"] for v in verifies]
        assert fin["final_round"] == len(answers) - 1 and st["final_round"] == fin["final_round"]
        assert fin["stop"] in ("supported", "max_rounds", "no_new_evidence")
        if len(answers) == 2:  # a gap round ran: it searched and added one unseen chunk
            (gap,) = [t for t in st["trace"] if t["node"] == "gap"]
            assert gap["new_chunks"] == 1 and len(st["chunks"]) == 2 and len(st["queries"]) == 2
        assert_in_store(demo_store, [d.metadata["chunk_id"] for d in st["chunks"]])
        assert st["letter"] is None or st["letter"] in q.options
        assert_calls_traced(st, n_calls)


def test_option_research_e2e(e2e_deps, demo_store, two_questions):
    # small caps: smollm2's JSON rarely fits, so its plans fall back to every option (up to 5)
    for q, st, n_calls in run_all(e2e_deps, "option_research", two_questions, k=1, chunks_per_option=1,
                                  max_refinements=0, max_options=2, evidence_chars=400, excerpt_chars=200,
                                  plan_tokens=80, judge_tokens=60, synth_tokens=120, report_chars=4000):
        plan = st["trace"][0]
        assert plan["node"] == "plan" and plan["role"] == "plan"
        planned = plan["output"]["options"]
        assert planned and set(planned) <= set(q.options)
        judged = sorted({t["option"] for t in st["trace"] if t["node"] == "research.judge"})
        noted = sorted(t["option"] for t in st["trace"] if t["node"] == "research.note")
        assert judged == noted == sorted(planned)
        if plan.get("fallback"):
            assert planned == list(q.options)  # an unusable plan researches every option
        else:
            assert len(planned) <= 2  # max_options
        for L in planned:  # max_refinements=0: one search (for and against) and one judgement per option
            (search,) = [t for t in st["trace"] if t["node"] == "research.search" and t["option"] == L]
            assert [r["query"] for r in search["retrievals"]][1].endswith(plan_agent.CONTRA_SUFFIX)
            assert len([t for t in st["trace"] if t["node"] == "research.judge" and t["option"] == L]) == 1
        assert "research.refine" not in [t["node"] for t in st["trace"]]
        names = [t["node"] for t in st["trace"]]
        assert names[-2:] == ["synthesize", "answer"]
        assert st["report"].startswith("Research report") and st["report"] in st["answer"]["messages"][-1]["content"]
        assert all(f"Option {L}." in st["report"] for L in planned)
        assert_in_store(demo_store, [d.metadata["chunk_id"] for d in st["chunks"]])
        assert_calls_traced(st, n_calls)


def test_max_context_fills_the_window_by_the_servers_tokenizer(e2e_deps, demo_store, two_questions):
    # a window of 1024 (below the server's n_ctx) keeps the prompt, and the test, short
    for q, st, n_calls in run_all(e2e_deps, "max_context", two_questions, reserve=64, window=1024):
        fill = st["trace"][0]
        # the server's own tokenizer: llama-cpp-python's /extras/tokenize, vLLM's /tokenize
        want = {"llamacpp": "server:/extras/tokenize", "vllm": "server:/tokenize"}.get(E2E_FLAVOR)
        assert fill["counter"] == want if want else fill["counter"].startswith(("server:", "embedder", "chars"))
        assert fill["window"] == 1024 and fill["window_source"] == "param"
        assert fill["limit"] == 1024 - e2e_deps.policy.max_tokens - 64
        assert fill["prompt_tokens"] <= fill["limit"] and fill["window_full"] and fill["chunks"] >= 1
        (call,) = [c for c in traced_calls(st) if c["role"] == "answer"]
        # the server's own count of the templated prompt agrees and leaves room for the answer
        assert call["prompt_tokens"] <= 1024 - e2e_deps.policy.max_tokens
        assert abs(call["prompt_tokens"] - fill["prompt_tokens"]) <= 64
        assert [d.metadata["rank"] for d in st["chunks"]] == list(range(1, len(st["chunks"]) + 1))
        assert_in_store(demo_store, [d.metadata["chunk_id"] for d in st["chunks"]])
        assert_calls_traced(st, n_calls)


def test_precomputed_report_e2e(e2e_deps, two_questions):
    reports = {q.id: (f"Research report\nOption A. {q.options['A']}\n  Evidence verdict: insufficient\n"
                      f"Summary: a pre-computed report for {q.id}.") for q in two_questions}
    with_reports = [dataclasses.replace(q, agentic_report=reports[q.id]) for q in two_questions]
    for q, st, n_calls in run_all(e2e_deps, "precomputed_report", with_reports):
        report = reports[q.id]
        assert [t["node"] for t in st["trace"]] == ["report", "answer"]
        msg = st["answer"]["messages"][-1]["content"]
        assert msg.startswith(report + "\n\nQuestion: ") and msg.endswith("Answer:")
        assert st["trace"][1]["prompt_hash"] == answer_agent.ANSWER_PROMPT_HASH
        assert_calls_traced(st, n_calls)
        assert n_calls == 1
