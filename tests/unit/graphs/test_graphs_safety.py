"""Evidence mixes, abstention and the verifier's abstain setting, with scripted models and retrievers."""

from __future__ import annotations

import asyncio
import json

import pytest

from ragsafe.agents import answer as answer_agent
from ragsafe.agents import verify as verify_agent
from ragsafe.agents.parse import is_abstention
from ragsafe.config import AnswerPolicy, ConfigError
from ragsafe.corpora.schema import Question
from ragsafe.graphs import Deps, graphs, param_docs
from tests.fakes import ListRetriever, ScriptedLLM, doc

OPTS = {"A": "Mesenteric adenitis", "B": "Ovarian torsion", "C": "Acute appendicitis", "D": "Crohn ileitis"}


def question(i: int, gold: tuple[str, ...]) -> Question:
    return Question(id=f"q{i:02d}", question=f"Question {i} about topic{i}?", options=OPTS, answer="C",
                    evidence_clean=f"CLEAN-{i} supports appendicitis", evidence_conflict=f"CONFLICT-{i} says torsion",
                    conflict_target="B", gold_doc_ids=gold)


QS = [question(i, (f"gold{i}",)) for i in range(8)]
DOCS = [doc(f"gold{i}", f"Question {i} about topic{i} gold text {i}") for i in range(8)] + \
       [doc(f"other{j}", f"question about topic0 filler {j}") for j in range(6)]


def run(name, llm, params=None, q=QS[0], seed=0, **deps_kw):
    spec = graphs.get(name)
    deps = Deps(llm=llm, policy=AnswerPolicy(seed=seed), **deps_kw)
    app = spec.build(deps, spec.make_params(params or {}))
    return asyncio.run(app.ainvoke({"question": q, "queries": [], "trace": []}))


def context_of(llm) -> str:
    return llm.requests[0]["messages"][-1]["content"]


@pytest.mark.parametrize("name,field", [("closed_book", None), ("clean_evidence", "evidence_clean"),
                                        ("conflict_evidence", "evidence_conflict")])
def test_fixed_context_conditions_are_one_langgraph_step_and_trace_both_steps(name, field):
    spec = graphs.get(name)
    app = spec.build(Deps(llm=ScriptedLLM(["C"])), spec.make_params({}))
    assert [n for n in app.get_graph().nodes if not n.startswith("__")] == ["answer"]
    llm = ScriptedLLM(["C"])
    st = run(name, llm)
    assert [t["node"] for t in st["trace"]] == ["context", "answer"]
    assert st["trace"][0]["source"] == (field or "none")
    assert st["trace"][1]["llm_calls"][0]["text"] == "C" and llm.calls == 1 and st["letter"] == "C"
    assert st["context"] == (getattr(QS[0], field) if field else None)
    prompt = context_of(llm)
    assert (getattr(QS[0], field) in prompt) if field else ("CLEAN-0" not in prompt and "CONFLICT-0" not in prompt)


@pytest.mark.parametrize("name", ["mixed_evidence", "rag_plus_clean", "graded_mix"])
def test_registered_with_documented_params(name):
    spec = graphs.get(name)
    p = spec.make_params({})
    assert set(param_docs(spec.params)) == {f for f in vars(p)} and spec.doc


# ---------------------------------------------------------------- mixed_evidence


def test_mixed_evidence_orders():
    llm = ScriptedLLM(["C"])
    st = run("mixed_evidence", llm, {"order": "clean_first"})
    ctx = context_of(llm)
    assert ctx.index("CLEAN-0") < ctx.index("CONFLICT-0") and st["letter"] == "C"
    assert st["trace"][0]["order"] == "clean_first"
    llm = ScriptedLLM(["B"])
    run("mixed_evidence", llm, {"order": "conflict_first"})
    assert context_of(llm).index("CONFLICT-0") < context_of(llm).index("CLEAN-0")


def test_mixed_evidence_random_order_is_seeded_per_question():
    def orders(seed):
        out = []
        for q in QS + [question(i, ()) for i in range(8, 40)]:
            st = run("mixed_evidence", ScriptedLLM(["C"]), {"order": "random"}, q=q, seed=seed)
            out.append(st["trace"][0]["order"])
        return out

    a = orders(0)
    assert a == orders(0)  # reproducible
    assert 10 <= a.count("clean_first") <= 30  # both orders occur (40 fair coins)
    assert a != orders(1)  # another seed, another draw


def test_mixed_evidence_needs_both_texts():
    q = Question(id="x", question="?", options=OPTS, answer="C", evidence_clean="only clean")
    with pytest.raises(ConfigError, match="evidence_conflict"):
        run("mixed_evidence", ScriptedLLM(["C"]), q=q)


# ---------------------------------------------------------------- rag_plus_clean


@pytest.mark.parametrize("position, where", [("first", 0), ("last", 2)])
def test_rag_plus_clean_places_the_clean_evidence(position, where):
    llm = ScriptedLLM(["C"])
    retr = ListRetriever(DOCS)
    st = run("rag_plus_clean", llm, {"k": 2, "position": position}, retriever=retr)
    blocks = context_of(llm).split("Question: ")[0].strip().split(answer_agent.CHUNK_SEPARATOR.strip())
    blocks = [b.strip() for b in blocks]
    assert len(blocks) == 3 and blocks[where] == "CLEAN-0 supports appendicitis"
    assert len(st["chunks"]) == 2 and retr.queries == ["Question 0 about topic0?"]
    assert st["trace"][0]["clean_position"] == where


def test_rag_plus_clean_random_position_is_seeded():
    got = set()
    for q in QS:
        st = run("rag_plus_clean", ScriptedLLM(["C"]), {"k": 3, "position": "random"}, q=q,
                 retriever=ListRetriever(DOCS), seed=5)
        st2 = run("rag_plus_clean", ScriptedLLM(["C"]), {"k": 3, "position": "random"}, q=q,
                  retriever=ListRetriever(DOCS), seed=5)
        assert st["trace"][0]["clean_position"] == st2["trace"][0]["clean_position"]
        got.add(st["trace"][0]["clean_position"])
    assert len(got) >= 2 and got <= {0, 1, 2, 3}


# ---------------------------------------------------------------- graded_mix


@pytest.mark.parametrize("fraction, m", [(0.0, 0), (0.5, 2), (1.0, 4)])
def test_graded_mix_replaces_a_fraction_by_other_questions_gold_chunks(fraction, m):
    llm = ScriptedLLM(["C"])
    retr = ListRetriever(DOCS)
    st = run("graded_mix", llm, {"k": 4, "fraction": fraction}, retriever=retr, questions=QS, seed=3)
    ids = [d.metadata["doc_id"] for d in st["chunks"]]
    assert len(ids) == 4
    info = st["trace"][0]
    assert info["replaced"] == m and info["kept"] == 4 - m and info["short"] == 0
    distract = [d["doc_id"] for d in info["distractors"]]
    assert len(distract) == m and len(set(distract)) == m
    # each distractor is the gold article of the question it was drawn from, never this question's
    for d in info["distractors"]:
        other = next(q for q in QS if q.id == d["from_question"])
        assert d["doc_id"] in other.gold_doc_ids and d["doc_id"] != "gold0"
    # the kept chunks are the best-ranked retrieved ones, in rank order
    top = [h["doc_id"] for h in info["retrieval"]["hits"]][:4 - m]
    assert [i for i in ids if i not in distract] == top
    # one search per distractor question tried (a question whose gold chunk is in the retrieved top-k
    # already gives no distractor), never an LLM call
    assert 1 + m <= len(retr.queries) <= len(QS) and len(llm.requests) == 1
    assert not set(distract) & {h["doc_id"] for h in info["retrieval"]["hits"]}


def test_graded_mix_is_reproducible_and_needs_the_questions():
    a = run("graded_mix", ScriptedLLM(["C"]), {"k": 4, "fraction": 0.5}, retriever=ListRetriever(DOCS),
            questions=QS, seed=3)
    b = run("graded_mix", ScriptedLLM(["C"]), {"k": 4, "fraction": 0.5}, retriever=ListRetriever(DOCS),
            questions=QS, seed=3)
    assert [d.metadata["chunk_id"] for d in a["chunks"]] == [d.metadata["chunk_id"] for d in b["chunks"]]
    with pytest.raises(ConfigError, match="questions"):
        run("graded_mix", ScriptedLLM(["C"]), {"fraction": 0.5}, retriever=ListRetriever(DOCS))
    with pytest.raises(ConfigError, match="fraction"):
        graphs.get("graded_mix").make_params({"fraction": "1.5"})


# ---------------------------------------------------------------- abstention


def test_abstention_phrase_is_told_and_recorded_apart_from_a_null():
    llm = ScriptedLLM(["Insufficient evidence."])
    st = run("mixed_evidence", llm, {"abstain": True, "order": "clean_first"})
    assert "insufficient evidence" in llm.requests[0]["messages"][0]["content"]
    assert st["letter"] is None and st["answer"]["source"] == "abstention"
    assert st["trace"][-1]["abstained"] is True
    assert st["trace"][-1]["prompt_hash"] == answer_agent.ABSTAIN_PROMPT_HASH
    # not allowed to abstain: the same reply is an unparseable null, and the instruction is the paper's
    llm = ScriptedLLM(["Insufficient evidence."])
    st = run("mixed_evidence", llm, {"order": "clean_first"})
    assert st["letter"] is None and st["answer"]["source"] == "parse"
    assert llm.requests[0]["messages"][0]["content"] == answer_agent.SYSTEM_PROMPT


@pytest.mark.parametrize("text, want", [("insufficient evidence", True), ("**Insufficient evidence**", True),
                                        ("Answer: insufficient evidence.", True), ("B", False),
                                        ("Insufficient evidence, but B", False), ("I am not sure", False), ("", False)])
def test_is_abstention(text, want):
    assert is_abstention(text, "ABCD") is want


def _verifier_llm(verdict: str, answer: str = "B"):
    def reply(messages):
        if messages[0]["content"] == verify_agent.VERIFY_SYSTEM:
            return json.dumps({"verdict": verdict, "reason": "scripted"})
        return answer
    return ScriptedLLM(reply)


def test_verifier_abstains_when_the_evidence_contradicts_its_answer():
    retr = ListRetriever(DOCS)
    st = run("verifier_loop", _verifier_llm("contradicted"), {"max_rounds": 0, "abstain_on_contradiction": True},
             retriever=retr)
    assert st["letter"] is None and st["answer"]["source"] == "abstention" and st["answer"]["withheld"] == "B"
    fin = st["trace"][-1]
    assert fin["node"] == "finalize" and fin["abstained"] is True and fin["withheld"] == "B"
    # supported: the answer stands
    st = run("verifier_loop", _verifier_llm("supported"), {"max_rounds": 0, "abstain_on_contradiction": True},
             retriever=ListRetriever(DOCS))
    assert st["letter"] == "B" and st["answer"]["source"] == "parse"
    # the setting off (the default): a contradicted answer is still given
    st = run("verifier_loop", _verifier_llm("contradicted"), {"max_rounds": 0}, retriever=ListRetriever(DOCS))
    assert st["letter"] == "B"
    with pytest.raises(ConfigError, match="verify"):
        graphs.get("verifier_loop").make_params({"verify": "false", "abstain_on_contradiction": "true"})
