"""Retrieval graphs: fusion, BM25, reranking, and routing with scripted LLM replies."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from types import SimpleNamespace

import pytest
from langchain_core.documents import Document
from langgraph.graph import END, START, StateGraph

from ragsafe.agents import decompose as decompose_agent
from ragsafe.agents import grade as grade_agent
from ragsafe.agents import rerank as rerank_agent
from ragsafe.agents import rewrite as rewrite_agent
from ragsafe.agents.answer import CHUNK_SEPARATOR
from ragsafe.agents.answer import SYSTEM_PROMPT as ANSWER_SYSTEM
from ragsafe.config import ConfigError
from ragsafe.corpora.schema import Question
from ragsafe.graphs import Deps, State, graphs, param_docs
from ragsafe.retrievers.bm25 import BM25Retriever, bm25_for, chunks_from_store
from ragsafe.retrievers.hybrid import HybridRetriever, interleave_unique, rrf_fuse
from ragsafe.retrievers.rerank import EmbeddingReranker, order_by_scores
from tests.fakes import ListRetriever, ScriptedLLM, doc

GRAPHS = ("hybrid_rag", "rerank_rag", "query_rewrite", "corrective_rag", "decompose")

Q = Question(id="q1", answer="B", question="Which finding on ultrasound suggests acute appendicitis in a child?",
             options={"A": "Compressible appendix of 4 mm", "B": "Non-compressible appendix over 6 mm",
                      "C": "Free fluid only in the pelvis of a girl", "D": "Enlarged mesenteric lymph nodes"})

DOCS = [
    doc("appendicitis-us", "acute appendicitis ultrasound child non-compressible appendix diameter", "Appendicitis US"),
    doc("appendicitis-ct", "acute appendicitis child CT fat stranding which finding", "Appendicitis CT"),
    doc("adenitis", "mesenteric adenitis enlarged lymph nodes mimic", "Mesenteric adenitis"),
    doc("appendicolith", "appendicolith calcified stone obstruction perforation risk", "Appendicolith"),
    doc("pelvic-fluid", "physiological free fluid pelvis girl menstrual cycle", "Pelvic fluid"),
    doc("unrelated", "carotid dissection neck pain horner syndrome", "Carotid dissection"),
]


def run(app, question: Question = Q) -> dict:
    return asyncio.run(app.ainvoke({"question": question, "queries": [], "trace": []}))


def build(name: str, llm, retriever, **params):
    spec = graphs.get(name)
    return spec.build(Deps(llm=llm, retriever=retriever), spec.make_params(params))


def system_of(messages) -> str:
    return messages[0]["content"]


def passage_of(messages) -> str:
    return messages[-1]["content"].split("Passage:\n", 1)[1]


def roles(replies: dict[str, object]):
    """A ScriptedLLM answering per role: each value is a text or a function of the messages."""
    by_system = {ANSWER_SYSTEM: "answer", grade_agent.SYSTEM_PROMPT: "grade", rewrite_agent.SYSTEM_PROMPT: "rewrite",
                 rerank_agent.SYSTEM_PROMPT: "rerank", decompose_agent.SYSTEM_PROMPT: "decompose"}

    def reply(messages):
        role = by_system[system_of(messages)]
        r = replies.get(role, "B" if role == "answer" else None)
        if r is None:
            raise AssertionError(f"unexpected {role} call")
        return r(messages) if callable(r) else r

    return ScriptedLLM(reply)


def nodes(state) -> list[str]:
    return [t["node"] for t in state["trace"]]


def role_entries(state, role: str) -> list[dict]:
    return [t for t in state["trace"] if t.get("role") == role]


def ids(docs) -> list[str]:
    return [d.metadata["chunk_id"] for d in docs]


# ---------------------------------------------------------------- registry and params


@pytest.mark.parametrize("name", GRAPHS)
def test_registered_with_documented_params(name):
    spec = graphs.get(name)
    assert spec.needs_retriever
    import dataclasses

    fields = {f.name for f in dataclasses.fields(spec.params)}
    assert fields and set(param_docs(spec.params)) == fields


@pytest.mark.parametrize("name,bad", [("hybrid_rag", {"weights": "1"}), ("hybrid_rag", {"weights": "0,0"}),
                                      ("rerank_rag", {"k": 5, "n_candidates": 3}),
                                      ("rerank_rag", {"reranker": "cross"}),
                                      ("query_rewrite", {"max_rounds": -1}),
                                      ("corrective_rag", {"grade_fallback": "maybe"}),
                                      ("decompose", {"max_chunks": 0})])
def test_bad_params_name_the_problem(name, bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        graphs.get(name).make_params(bad)


# ---------------------------------------------------------------- fusion, BM25, reranking


def test_rrf_matches_hand_computed_scores():
    a, b, c, d = (Document(x, id=x) for x in "abcd")
    fused = rrf_fuse({"dense": [a, b, c], "bm25": [c, a, d]}, rrf_k=60)
    # a: 1/61 + 1/62 = 0.032522, c: 1/63 + 1/61 = 0.032266, b: 1/62 = 0.016129, d: 1/63 = 0.015873
    assert [x.id for x in fused] == ["a", "c", "b", "d"]
    assert [x.metadata["score"] for x in fused] == pytest.approx([1 / 61 + 1 / 62, 1 / 63 + 1 / 61, 1 / 62, 1 / 63])
    assert [x.metadata["rank"] for x in fused] == [1, 2, 3, 4]
    assert fused[1].metadata["source_ranks"] == {"dense": 3, "bm25": 1}
    assert fused[3].metadata["source_ranks"] == {"dense": None, "bm25": 3}


def test_rrf_weights_and_constant_change_the_order():
    a, b, c = (Document(x, id=x) for x in "abc")
    # bm25 weight 3 with rrf_k=0: b = 3/1 = 3, a = 1/1 + 3/2 = 2.5, c = 1/2 = 0.5
    fused = rrf_fuse({"dense": [a, c], "bm25": [b, a]}, weights={"dense": 1, "bm25": 3}, rrf_k=0, k=2)
    assert [x.id for x in fused] == ["b", "a"]
    assert [x.metadata["score"] for x in fused] == pytest.approx([3.0, 2.5])


def test_rrf_ties_go_to_the_first_seen_chunk():
    a, b = Document("a", id="a"), Document("b", id="b")
    assert [x.id for x in rrf_fuse({"dense": [a], "bm25": [b]})] == ["a", "b"]
    assert [x.id for x in rrf_fuse({"bm25": [b], "dense": [a]})] == ["b", "a"]


def test_interleave_unique_is_rank_major_and_capped():
    a, b, c, d = (Document(x, id=x) for x in "abcd")
    assert [x.id for x in interleave_unique([[a, b, c], [b, d]])] == ["a", "b", "d", "c"]
    assert [x.id for x in interleave_unique([[a, c], [d, a]], cap=2)] == ["a", "d"]


def test_bm25_finds_the_exact_term():
    bm25 = BM25Retriever(DOCS)
    hits = asyncio.run(bm25.search("is there an appendicolith?", k=3))
    assert ids(hits) == ["appendicolith#c0"]  # only chunks sharing a query term are hits
    assert hits[0].metadata["rank"] == 1 and hits[0].metadata["score"] > 0
    assert asyncio.run(bm25.search("zebra unicorn", k=3)) == []
    assert bm25.describe()["chunks"] == len(DOCS)


def test_bm25_ranks_by_term_weight():
    hits = asyncio.run(BM25Retriever(DOCS).search("acute appendicitis ultrasound non-compressible", k=6))
    assert ids(hits)[0] == "appendicitis-us#c0"
    assert set(ids(hits)) == {"appendicitis-us#c0", "appendicitis-ct#c0"}


def test_bm25_reads_chunks_back_from_a_store_collection():
    class Collection:
        def get(self, include):
            assert set(include) == {"documents", "metadatas"}
            return {"ids": ["b#c0", "a#c0"], "documents": ["beta appendicolith", "alpha"],
                    "metadatas": [{"doc_id": "b", "title": "B"}, {"doc_id": "a", "title": "A"}]}

    store = SimpleNamespace(name="demo-x", collection=Collection())
    chunks = chunks_from_store(store)
    assert ids(chunks) == ["a#c0", "b#c0"] and chunks[1].metadata["title"] == "B"
    retriever = SimpleNamespace(name="chroma", store=store)
    assert ids(asyncio.run(bm25_for(retriever).search("appendicolith", 5))) == ["b#c0"]


def test_bm25_for_needs_a_corpus():
    with pytest.raises(ConfigError, match="all_chunks"):
        bm25_for(ListRetriever(DOCS))
    with_chunks = SimpleNamespace(name="mine", all_chunks=lambda: DOCS)
    assert ids(asyncio.run(bm25_for(with_chunks).search("appendicolith", 2))) == ["appendicolith#c0"]


def test_hybrid_retriever_skips_a_zero_weight_source():
    dense, other = ListRetriever(DOCS), ListRetriever(DOCS)
    h = HybridRetriever({"dense": dense, "bm25": other}, weights={"dense": 1, "bm25": 0}, n_candidates=3)
    docs = asyncio.run(h.search("appendicolith stone", 2))
    assert other.queries == [] and dense.queries == ["appendicolith stone"]
    assert ids(docs)[0] == "appendicolith#c0"


def test_order_by_scores_keeps_retrieval_order_on_ties():
    ranked = asyncio.run(ListRetriever(DOCS).search("appendicitis", 4))
    out = order_by_scores(ranked, [1.0, 9.0, 1.0, 1.0], k=3)
    assert ids(out) == [ids(ranked)[1], ids(ranked)[0], ids(ranked)[2]]
    assert [d.metadata["retrieval_rank"] for d in out] == [2, 1, 3]
    assert [d.metadata["rank"] for d in out] == [1, 2, 3]


class WordEmbedder:
    """Bag-of-words vectors over a fixed vocabulary: cosine = word overlap, easy to reason about."""

    VOCAB = ("appendix", "appendicitis", "ultrasound", "non-compressible", "lymph", "nodes", "fluid", "pelvis")

    def embed_documents(self, texts):
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text):
        words = text.lower().split()
        return [float(sum(w.startswith(v) for w in words)) for v in self.VOCAB]


def test_embedding_reranker_uses_cosine():
    cands = [doc("x", "carotid dissection"), doc("y", "lymph nodes ultrasound"),
             doc("z", "appendicitis ultrasound appendix")]
    out = asyncio.run(EmbeddingReranker(WordEmbedder()).rerank("appendicitis ultrasound", cands, 3))
    assert ids(out) == ["z#c0", "y#c0", "x#c0"]
    assert [d.metadata["score"] for d in out] == pytest.approx([2 / math.sqrt(6), 1 / math.sqrt(6), 0.0])


# ---------------------------------------------------------------- agents


def test_structured_agents_parse_leniently_and_fall_back():
    llm = ScriptedLLM(['{"relevant": "yes"}', "no idea", '{"score": "7"}', '{"score": 11}',
                       '{"questions": [{"q": "What is an appendicolith?"}, "  ", "What is an appendicolith?"]}',
                       '{"query": ""}'])
    g = asyncio.run(grade_agent.grade(llm, Q.question, Q.options, "text"))
    assert (g.value, g.fallback, g.prompt_hash) == (True, False, grade_agent.PROMPT_HASH)
    g = asyncio.run(grade_agent.grade(llm, Q.question, Q.options, "text", fallback=False))
    assert (g.value, g.fallback, g.trace("grade")["fallback_reason"]) == (False, True, "reply was not JSON")
    assert asyncio.run(rerank_agent.score(llm, Q.question, Q.options, "t")).value == 7.0
    s = asyncio.run(rerank_agent.score(llm, Q.question, Q.options, "t"))
    assert (s.value, s.fallback) == (rerank_agent.NEUTRAL_SCORE, True)
    d = asyncio.run(decompose_agent.decompose(llm, Q.question, Q.options, n=3))
    assert (d.value, d.fallback) == (["What is an appendicolith?"], False)
    r = asyncio.run(rewrite_agent.rewrite(llm, Q.question, Q.options, letter="D"))
    assert (r.value, r.fallback) == (Q.options["D"], True)
    # every call asked for JSON mode
    # JSON mode with the role's schema (llama.cpp turns it into a grammar)
    assert all(req["response_format"]["type"] == "json_object" for req in llm.requests)
    assert all(req["response_format"]["schema"]["type"] == "object" for req in llm.requests)


# ---------------------------------------------------------------- corrective_rag routing


def grades_by_doc(relevant: set[str]):
    def reply(messages):
        return json.dumps({"relevant": any(r in passage_of(messages) for r in relevant)})

    return reply


def test_corrective_two_failing_grades_then_one_rewrite_then_answer():
    llm = roles({"grade": grades_by_doc({"appendicolith calcified"}),
                 "rewrite": '{"query": "appendicolith calcified stone perforation"}',
                 "answer": lambda m: "D" if "appendicolith calcified" in m[-1]["content"] else "A"})
    retriever = ListRetriever(DOCS)
    st = run(build("corrective_rag", llm, retriever, k=2, min_relevant=1, max_rewrites=1))
    assert retriever.queries == [Q.question, "appendicolith calcified stone perforation"]
    # round 0: both chunks fail; round 1 finds the appendicolith chunk and one already graded (not re-graded)
    assert [(g["chunk_id"], g["output"], g["round"]) for g in role_entries(st, "grade")] == [
        ("appendicitis-ct#c0", False, 0), ("appendicitis-us#c0", False, 0), ("appendicolith#c0", True, 1)]
    assert nodes(st) == ["retrieve", "grade", "grade", "decide", "rewrite", "retrieve", "grade", "decide",
                         "answer"]
    decides = [t for t in st["trace"] if t["node"] == "decide"]
    assert [t["route"] for t in decides] == ["rewrite", "answer"]
    assert ids(st["chunks"]) == ["appendicolith#c0"]
    assert st["context"].startswith("appendicolith calcified")
    assert llm.calls == 5 and st["letter"] == "D"  # answered over the chunk the rewrite found
    rw = role_entries(st, "rewrite")[0]
    assert rw["prompt_hash"] == rewrite_agent.PROMPT_HASH and rw["output"] == retriever.queries[1]
    assert "judged not relevant" in [r for r in llm.requests if system_of(r["messages"]) ==
                                     rewrite_agent.SYSTEM_PROMPT][0]["messages"][1]["content"]


def test_corrective_does_not_regrade_a_chunk_seen_before():
    llm = roles({"grade": '{"relevant": false}', "rewrite": '{"query": "appendicitis child which finding"}'})
    st = run(build("corrective_rag", llm, ListRetriever(DOCS), k=2, min_relevant=1, max_rewrites=1))
    graded = [t["chunk_id"] for t in role_entries(st, "grade")]
    assert len(graded) == len(set(graded))
    assert st["context"] is None  # nothing passed: closed-book answer
    answer_msgs = st["answer"]["messages"]
    assert answer_msgs[1]["content"].startswith("Question:")


def test_corrective_max_rewrites_zero_removes_the_rewrite_step():
    llm = roles({"grade": '{"relevant": false}'})
    retriever = ListRetriever(DOCS)
    app = build("corrective_rag", llm, retriever, k=3, min_relevant=2, max_rewrites=0)
    assert "rewrite" not in app.get_graph().nodes
    st = run(app)
    assert nodes(st) == ["retrieve", "grade", "grade", "grade", "decide", "answer"]
    assert len(retriever.queries) == 1 and not role_entries(st, "rewrite")
    assert st["chunks"] == [] and st["context"] is None


def test_corrective_unparseable_grade_takes_the_recorded_fallback():
    llm = roles({"grade": "Relevant, I think.", "rewrite": '{"query": "x"}'})
    st = run(build("corrective_rag", llm, ListRetriever(DOCS), k=2, min_relevant=1, max_rewrites=1))
    grades = role_entries(st, "grade")
    assert len(grades) == 2 and all(g["fallback"] is True and g["fallback_reason"] for g in grades)
    assert all(g["output"] is True for g in grades)  # grade_fallback="relevant" keeps the chunk
    assert "rewrite" not in nodes(st) and len(st["chunks"]) == 2

    llm = roles({"grade": "???", "rewrite": "not json either"})
    retriever = ListRetriever(DOCS)
    st = run(build("corrective_rag", llm, retriever, k=2, min_relevant=1, max_rewrites=1,
                   grade_fallback="irrelevant"))
    assert [g["output"] for g in role_entries(st, "grade")] == [False] * len(role_entries(st, "grade"))
    rw = role_entries(st, "rewrite")
    assert len(rw) == 1 and rw[0]["fallback"] is True
    assert retriever.queries[1] == rewrite_agent.fallback_query(Q.question, Q.options)


def test_corrective_grade_off_is_standard_rag():
    llm, retriever = roles({}), ListRetriever(DOCS)
    app = build("corrective_rag", llm, retriever, k=3, grade=False)
    assert {"grade", "decide", "rewrite"}.isdisjoint(app.get_graph().nodes)
    st = run(app)
    ref = run(build("standard_rag", roles({}), ListRetriever(DOCS), k=3))
    assert nodes(st) == ["retrieve", "answer"] and llm.calls == 1
    assert ids(st["chunks"]) == ids(ref["chunks"]) and st["answer"]["messages"] == ref["answer"]["messages"]


def test_corrective_filter_off_keeps_irrelevant_chunks():
    llm = roles({"grade": '{"relevant": false}'})
    st = run(build("corrective_rag", llm, ListRetriever(DOCS), k=2, max_rewrites=0, filter_irrelevant=False))
    ref = run(build("standard_rag", roles({}), ListRetriever(DOCS), k=2))
    assert [g["output"] for g in role_entries(st, "grade")] == [False, False]  # both judged irrelevant ...
    assert ids(st["chunks"]) == ids(ref["chunks"]) and st["context"] == ref["context"]  # ... and still in the prompt
    on = run(build("corrective_rag", roles({"grade": '{"relevant": false}'}), ListRetriever(DOCS), k=2,
                   max_rewrites=0))
    assert on["chunks"] == [] and on["context"] is None  # filtering on: closed book


# ---------------------------------------------------------------- query_rewrite routing


def test_query_rewrite_off_is_standard_rag():
    llm = roles({})
    app = build("query_rewrite", llm, ListRetriever(DOCS), k=3, max_rounds=0)
    assert "rewrite" not in app.get_graph().nodes
    st = run(app)
    ref = run(build("standard_rag", roles({}), ListRetriever(DOCS), k=3))
    assert llm.calls == 1 and nodes(st) == ["retrieve", "merge", "answer"]
    assert ids(st["chunks"]) == ids(ref["chunks"]) and st["answer"]["messages"] == ref["answer"]["messages"]


def test_query_rewrite_accumulates_and_stops_when_nothing_new():
    queries = iter(['{"query": "appendicolith calcified stone"}', '{"query": "appendicolith obstruction"}',
                    '{"query": "never asked"}'])
    llm = roles({"rewrite": lambda m: next(queries)})
    retriever = ListRetriever(DOCS)
    st = run(build("query_rewrite", llm, retriever, k=1, max_rounds=3))
    # round 1 finds the appendicolith chunk; round 2 finds it again (nothing new): stop before round 3
    assert retriever.queries == [Q.question, "appendicolith calcified stone", "appendicolith obstruction"]
    assert len(role_entries(st, "rewrite")) == 2
    merges = [t for t in st["trace"] if t["node"] == "merge"]
    assert [m["new_chunks"] for m in merges] == [1, 1, 0]
    assert ids(st["chunks"]) == ["appendicitis-ct#c0", "appendicolith#c0"]
    second = [r for r in llm.requests if system_of(r["messages"]) == rewrite_agent.SYSTEM_PROMPT][1]
    assert "appendicolith calcified stone" in second["messages"][1]["content"]  # the model sees past queries


def test_query_rewrite_per_option_writes_one_query_per_option_and_dedupes():
    def per_option(messages):
        user = messages[1]["content"]
        letter = user.rsplit("option ", 1)[1][0]
        return json.dumps({"query": {"A": "appendix compressible", "B": "non-compressible appendix",
                                     "C": "free fluid pelvis girl", "D": "mesenteric lymph nodes"}[letter]})

    llm, retriever = roles({"rewrite": per_option}), ListRetriever(DOCS)
    st = run(build("query_rewrite", llm, retriever, k=2, max_rounds=1, per_option=True, max_chunks=3))
    rewrites = role_entries(st, "rewrite")
    assert sorted(r["letter"] for r in rewrites) == ["A", "B", "C", "D"]
    assert len(retriever.queries) == 5
    assert len(st["chunks"]) == 3 == len(set(ids(st["chunks"])))
    merge = [t for t in st["trace"] if t["node"] == "merge"][-1]
    assert merge["evidence"] == 4 and merge["in_prompt"] == 3


def test_query_rewrite_unparseable_reply_searches_the_fallback_query():
    llm, retriever = roles({"rewrite": "sure! here is a query"}), ListRetriever(DOCS)
    st = run(build("query_rewrite", llm, retriever, k=2, max_rounds=1))
    (rw,) = role_entries(st, "rewrite")
    assert rw["fallback"] is True and rw["output"] == rewrite_agent.fallback_query(Q.question, Q.options)
    assert retriever.queries[1] == rw["output"]


def test_query_rewrite_does_not_search_a_repeated_query():
    # "C" only when the prompt holds exactly the two chunks of the one search (no repeats)
    llm = roles({"rewrite": json.dumps({"query": Q.question}),
                 "answer": lambda m: "C" if m[-1]["content"].count(CHUNK_SEPARATOR) == 1 else "A"})
    retriever = ListRetriever(DOCS)
    st = run(build("query_rewrite", llm, retriever, k=2, max_rounds=2, stop_early=False))
    assert retriever.queries == [Q.question]
    assert len(role_entries(st, "rewrite")) == 2 and st["letter"] == "C"


# ---------------------------------------------------------------- rerank_rag routing


def scores_by_doc(table: dict[str, str]):
    def reply(messages):
        passage = passage_of(messages)
        return next(v for k, v in table.items() if k in passage)

    return reply


def test_rerank_llm_scores_each_candidate_and_keeps_the_best():
    llm = roles({"rerank": scores_by_doc({"ultrasound": '{"score": 3}', "CT": '{"score": 9}',
                                          "": "unparseable"})})
    retriever = ListRetriever(DOCS)
    st = run(build("rerank_rag", llm, retriever, k=2, n_candidates=4))
    candidates = [t for t in st["trace"] if t["node"] == "retrieve"][0]["retrieval"]["hits"]
    assert len(candidates) == 4 and len(role_entries(st, "rerank")) == 4
    # CT (9) first, then the fallback chunks at the neutral 5 in retrieval order ahead of ultrasound (3)
    assert ids(st["chunks"])[0] == "appendicitis-ct#c0"
    fallbacks = [t for t in role_entries(st, "rerank") if t.get("fallback")]
    assert len(fallbacks) == 2 and all(t["output"] == rerank_agent.NEUTRAL_SCORE for t in fallbacks)
    assert ids(st["chunks"])[1] == min(fallbacks, key=lambda t: [h["chunk_id"] for h in candidates]
                                       .index(t["chunk_id"]))["chunk_id"]
    assert st["chunks"][0].metadata["score"] == 9.0
    assert nodes(st)[-2:] == ["select", "answer"]


def test_rerank_embedding_uses_the_retrievers_embedder():
    retriever = ListRetriever(DOCS)
    retriever.embedder = WordEmbedder()
    llm = roles({})
    st = run(build("rerank_rag", llm, retriever, k=2, n_candidates=6, reranker="embedding"))
    assert llm.calls == 1 and nodes(st) == ["retrieve", "rerank", "answer"]
    assert ids(st["chunks"])[0] == "appendicitis-us#c0"

    with pytest.raises(ConfigError, match="embedder"):
        run(build("rerank_rag", roles({}), ListRetriever(DOCS), reranker="embedding"))


def test_rerank_none_is_plain_top_k():
    llm, retriever = roles({}), ListRetriever(DOCS)
    st = run(build("rerank_rag", llm, retriever, k=2, reranker="none"))
    ref = run(build("standard_rag", roles({}), ListRetriever(DOCS), k=2))
    assert llm.calls == 1 and nodes(st) == ["retrieve", "answer"]
    assert ids(st["chunks"]) == ids(ref["chunks"]) and st["answer"]["messages"] == ref["answer"]["messages"]


# ---------------------------------------------------------------- decompose routing


def test_decompose_searches_each_subquestion_and_caps_the_union():
    llm = roles({"decompose": json.dumps({"subquestions": ["What is an appendicolith stone?",
                                                           "Do mesenteric lymph nodes mimic appendicitis?",
                                                           "third one", "fourth one"]})})
    retriever = ListRetriever(DOCS)
    st = run(build("decompose", llm, retriever, k=2, max_subquestions=2, max_chunks=3))
    assert retriever.queries == [Q.question, "What is an appendicolith stone?",
                                 "Do mesenteric lymph nodes mimic appendicitis?"]
    assert st["subquestions"] == retriever.queries[1:]
    assert nodes(st).count("retrieve") == 3 and nodes(st)[0] == "decompose"
    assert len(st["chunks"]) == 3 == len(set(ids(st["chunks"])))
    # rank-major: each search's best hit comes before any second-best hit
    firsts = [t["retrieval"]["hits"][0]["chunk_id"] for t in st["trace"] if t["node"] == "retrieve"]
    assert set(ids(st["chunks"])) == set(firsts)


def test_decompose_unparseable_reply_falls_back_to_the_question():
    llm, retriever = roles({"decompose": "1. what? 2. why?"}), ListRetriever(DOCS)
    st = run(build("decompose", llm, retriever, k=2, include_question=False))
    (d,) = role_entries(st, "decompose")
    assert d["fallback"] is True and d["output"] == []
    assert retriever.queries == [Q.question] and len(st["chunks"]) == 2


def test_decompose_off_is_standard_rag():
    llm = roles({})
    app = build("decompose", llm, ListRetriever(DOCS), k=3, max_subquestions=0)
    assert "decompose" not in app.get_graph().nodes
    st = run(app)
    ref = run(build("standard_rag", roles({}), ListRetriever(DOCS), k=3))
    assert llm.calls == 1 and st["answer"]["messages"] == ref["answer"]["messages"]


# ---------------------------------------------------------------- hybrid_rag


class FixedDense:
    """A 'dense' retriever that ignores the query (so only BM25 can bring the exact-term chunk)."""

    name = "fixed"

    def __init__(self, docs):
        self.docs = docs

    async def search(self, query, k):
        from ragsafe.retrievers.base import annotate

        return annotate(self.docs[:k], [1.0 - i / 10 for i in range(min(k, len(self.docs)))])

    def all_chunks(self):
        return list(self.docs)

    def describe(self):
        return {}


def test_hybrid_fuses_bm25_and_dense():
    dense = FixedDense([DOCS[5], DOCS[4], DOCS[2], DOCS[3]])
    llm = roles({})
    q = Question(id="q2", question="appendicolith?", options={"A": "yes", "B": "no"}, answer="A")
    st = run(build("hybrid_rag", llm, dense, k=3, n_candidates=4), q)
    r = st["trace"][0]["retrieval"]
    assert r["sources"]["bm25"] == ["appendicolith#c0"]
    assert r["sources"]["dense"] == ids(dense.docs)
    # appendicolith: dense rank 4 + bm25 rank 1 beats dense ranks 1 and 2 alone
    assert ids(st["chunks"]) == ["appendicolith#c0", "unrelated#c0", "pelvic-fluid#c0"]
    assert st["chunks"][0].metadata["score"] == pytest.approx(1 / 64 + 1 / 61)
    assert llm.calls == 1 and nodes(st) == ["retrieve", "answer"]


def test_hybrid_without_a_corpus_errors_clearly_unless_bm25_is_off():
    with pytest.raises(ConfigError, match="ChromaRetriever"):
        run(build("hybrid_rag", roles({}), ListRetriever(DOCS)))
    st = run(build("hybrid_rag", roles({}), ListRetriever(DOCS), k=2, weights="1,0"))
    assert len(st["chunks"]) == 2 and set(st["trace"][0]["retrieval"]["sources"]) == {"dense"}


# ---------------------------------------------------------------- composition


def test_a_compiled_graph_is_a_node_of_another():
    # the letter says what the answerer read: "C" only when both graded chunks reached its prompt
    llm = roles({"grade": '{"relevant": true}',
                 "answer": lambda m: "C" if m[-1]["content"].count(CHUNK_SEPARATOR) == 1 else "A"})
    inner = build("corrective_rag", llm, ListRetriever(DOCS), k=2)

    async def audit(state: State) -> dict:
        return {"trace": [{"node": "audit", "chunks": len(state["chunks"]), "letter": state["letter"]}]}

    outer = StateGraph(State)
    outer.add_node("corrective", inner)
    outer.add_node("audit", audit)
    outer.add_edge(START, "corrective")
    outer.add_edge("corrective", "audit")
    outer.add_edge("audit", END)
    st = run(outer.compile())
    assert nodes(st) == ["retrieve", "grade", "grade", "decide", "answer", "audit"]
    assert st["trace"][-1] == {"node": "audit", "chunks": 2, "letter": "C"} and st["letter"] == "C"
    assert len(st["queries"]) == 1


def test_long_loops_are_not_cut_short():
    counter = iter(range(100))
    llm = roles({"rewrite": lambda m: json.dumps({"query": f"appendix query {next(counter)}"})})
    st = run(build("query_rewrite", llm, ListRetriever(DOCS), k=1, max_rounds=12, stop_early=False))
    assert len(role_entries(st, "rewrite")) == 12 and nodes(st)[-1] == "answer"


def test_params_from_command_line_strings():
    p = graphs.get("query_rewrite").make_params({"per_option": "true", "max_rounds": "2"})
    assert p.per_option is True and p.max_rounds == 2
    p = graphs.get("hybrid_rag").make_params({"weights": "0.5, 2", "rrf_k": "10"})
    assert p.rrf_k == 10.0 and p.weights == "0.5, 2"


QUERY_GRAPHS = [n for n in graphs.names() if "query" in {f.name for f in dataclasses.fields(graphs.get(n).params)}]


@pytest.mark.parametrize("name", QUERY_GRAPHS)
def test_every_graph_with_a_query_param_takes_the_same_modes(name):
    spec = graphs.get(name)
    for mode in ("question", "question+options"):
        assert spec.make_params({"query": mode}).query == mode
    with pytest.raises(ConfigError, match=f"{name}: query='options': choose 'question' or 'question\\+options'"):
        spec.make_params({"query": "options"})
