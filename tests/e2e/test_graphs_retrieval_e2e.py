"""End to end: the retrieval graphs over real HTTP (llama.cpp, smollm2-135m) and the real Chroma store.

smollm2 answers near chance and often breaks JSON, so these tests check plumbing only: the nodes a
question visited, that every LLM call made was recorded with its tokens and role, that fallbacks
carry their reason, and that every retrieval hit is a chunk id of the store.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ragsafe.agents import answer as answer_agent
from ragsafe.agents import decompose as decompose_agent
from ragsafe.agents import grade as grade_agent
from ragsafe.agents import rerank as rerank_agent
from ragsafe.agents import rewrite as rewrite_agent
from ragsafe.graphs import graphs

pytestmark = pytest.mark.e2e

PROMPT_HASHES = {"answer": answer_agent.ANSWER_PROMPT_HASH, "grade": grade_agent.PROMPT_HASH,
                 "rewrite": rewrite_agent.PROMPT_HASH, "rerank": rerank_agent.PROMPT_HASH,
                 "decompose": decompose_agent.PROMPT_HASH}


@pytest.fixture
def two_questions(demo_benchmark):
    return demo_benchmark.select(limit=2)


@pytest.fixture(scope="module")
def store_ids(demo_store):
    return set(demo_store.collection.get(include=[])["ids"])


def run_graph(deps, name, questions, **overrides):
    spec = graphs.get(name)
    app = spec.build(deps, spec.make_params(overrides))
    calls_before = deps.llm.calls
    t0 = time.perf_counter()

    async def all_questions():
        # one event loop for the whole batch: the client's connection pool belongs to the loop that opened it
        return [await app.ainvoke({"question": q, "queries": [], "trace": []}) for q in questions]

    states = asyncio.run(all_questions())
    print(f"\n[e2e timing] {name} {overrides}: {time.perf_counter() - t0:.1f}s for {len(questions)} questions; "
          f"per node: {[(t['node'], t['seconds']) for st in states for t in st['trace']]}")
    recorded = sum(len(t.get("llm_calls") or []) for st in states for t in st["trace"])
    assert recorded == deps.llm.calls - calls_before, "every LLM call made is recorded in a trace"
    return states


def check_common(st, q, store_ids):
    """What holds for every graph and question."""
    assert st["letter"] is None or st["letter"] in q.options
    assert st["trace"][-1]["node"] == "answer"
    for t in st["trace"]:
        assert t["seconds"] >= 0
        for c in t.get("llm_calls") or []:
            assert c["prompt_tokens"] > 0 and c["completion_tokens"] is not None
        if "role" in t:
            assert t["prompt_hash"] == PROMPT_HASHES[t["role"]] and "output" in t and t["llm_calls"]
            if t.get("fallback"):
                assert t["fallback_reason"]
        if "retrieval" in t:
            hits = [h["chunk_id"] for h in t["retrieval"]["hits"]]
            assert hits and set(hits) <= store_ids
            assert [h["rank"] for h in t["retrieval"]["hits"]] == list(range(1, len(hits) + 1))
    assert {d.metadata["chunk_id"] for d in st["chunks"]} <= store_ids
    assert st["queries"] and all(isinstance(x, str) and x for x in st["queries"])


def nodes(st):
    return [t["node"] for t in st["trace"]]


def roles(st, role):
    return [t for t in st["trace"] if t.get("role") == role]


def test_hybrid_rag_fuses_chroma_and_bm25_over_the_store(e2e_deps, two_questions, store_ids):
    for q, st in zip(two_questions, run_graph(e2e_deps, "hybrid_rag", two_questions, k=2, n_candidates=10)):
        check_common(st, q, store_ids)
        assert nodes(st) == ["retrieve", "answer"]
        r = st["trace"][0]["retrieval"]
        assert set(r["sources"]) == {"dense", "bm25"}
        assert len(r["sources"]["dense"]) == 10 and set(r["sources"]["bm25"]) <= store_ids
        assert r["sources"]["bm25"], "the question shares terms with the corpus"
        assert len(st["chunks"]) == 2 and st["chunks"][0].metadata["score"] > 0
        assert len(roles(st, "answer")) == 1 and st["context"].count(answer_agent.CHUNK_SEPARATOR) == 1


def test_rerank_rag_llm_scores_every_candidate(e2e_deps, two_questions, store_ids):
    for q, st in zip(two_questions, run_graph(e2e_deps, "rerank_rag", two_questions, k=1, n_candidates=2)):
        check_common(st, q, store_ids)
        assert nodes(st) == ["retrieve", "score", "score", "select", "answer"]
        scored = {t["chunk_id"] for t in roles(st, "rerank")}
        retrieved = {h["chunk_id"] for h in st["trace"][0]["retrieval"]["hits"]}
        assert scored == retrieved and len(retrieved) == 2
        assert all(0 <= t["output"] <= 10 for t in roles(st, "rerank"))
        assert len(st["chunks"]) == 1 and {d.metadata["chunk_id"] for d in st["chunks"]} <= retrieved
        best = max(roles(st, "rerank"), key=lambda t: t["output"])["output"]
        assert st["chunks"][0].metadata["score"] == best


def test_rerank_rag_embedding_uses_the_store_embedder(e2e_deps, two_questions, store_ids):
    states = run_graph(e2e_deps, "rerank_rag", two_questions, k=2, n_candidates=6, reranker="embedding")
    for q, st in zip(two_questions, states):
        check_common(st, q, store_ids)
        assert nodes(st) == ["retrieve", "rerank", "answer"] and len(roles(st, "answer")) == 1
        scores = [d.metadata["score"] for d in st["chunks"]]
        assert len(scores) == 2 and scores[0] >= scores[1] and all(-1 <= s <= 1 for s in scores)


def test_query_rewrite_searches_a_rewritten_query(e2e_deps, two_questions, store_ids):
    for q, st in zip(two_questions, run_graph(e2e_deps, "query_rewrite", two_questions, k=1, max_rounds=1)):
        check_common(st, q, store_ids)
        (rw,) = roles(st, "rewrite")
        assert nodes(st)[:3] == ["retrieve", "merge", "rewrite"]
        searched = [t["retrieval"]["query"] for t in st["trace"] if "retrieval" in t]
        assert searched[0] == q.question
        assert searched[1:] == ([] if rw["output"] == q.question else [rw["output"]])
        assert 1 <= len(st["chunks"]) <= 2


def test_corrective_rag_grades_rewrites_and_answers(e2e_deps, two_questions, store_ids):
    # min_relevant above k: round 0 can never pass, so the route always holds one rewrite
    states = run_graph(e2e_deps, "corrective_rag", two_questions, k=2, min_relevant=3, max_rewrites=1)
    for q, st in zip(two_questions, states):
        check_common(st, q, store_ids)
        assert nodes(st)[:5] == ["retrieve", "grade", "grade", "decide", "rewrite"]
        assert [t["route"] for t in st["trace"] if t["node"] == "decide"] == ["rewrite", "answer"]
        assert nodes(st).count("retrieve") == 2 and len(roles(st, "rewrite")) == 1
        graded = [t["chunk_id"] for t in roles(st, "grade")]
        assert len(graded) == len(set(graded)) and 2 <= len(graded) <= 4
        passed = {t["chunk_id"] for t in roles(st, "grade") if t["output"] is True}
        assert {d.metadata["chunk_id"] for d in st["chunks"]} == passed
        assert (st["context"] is None) == (not passed)


def test_decompose_searches_each_subquestion(e2e_deps, two_questions, store_ids):
    states = run_graph(e2e_deps, "decompose", two_questions, k=1, max_subquestions=2)
    for q, st in zip(two_questions, states):
        check_common(st, q, store_ids)
        (d,) = roles(st, "decompose")
        assert nodes(st)[0] == "decompose" and nodes(st)[-2:] == ["merge", "answer"]
        assert len(d["output"]) <= 2 and st["subquestions"] == d["output"]
        searched = [t["retrieval"]["query"] for t in st["trace"] if "retrieval" in t]
        assert searched == list(dict.fromkeys([q.question, *d["output"]]))
        assert 1 <= len(st["chunks"]) <= len(searched)
