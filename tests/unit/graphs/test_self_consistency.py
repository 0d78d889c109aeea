"""Self-consistency wraps any graph: greedy answer kept, N seeded samples recorded as ballots."""

import asyncio

import pytest

from tests.fakes import ListRetriever, ScriptedLLM, doc
from ragsafe.config import ConfigError
from ragsafe.corpora.schema import Question
from ragsafe.graphs import Deps, graphs

Q = Question(id="q1", question="Which sign?", options={"A": "a", "B": "b", "C": "c", "D": "d"}, answer="B")


def _run(deps, **params):
    spec = graphs.get("self_consistency")
    app = spec.build(deps, spec.make_params(params))
    return asyncio.run(app.ainvoke({"question": Q, "queries": [], "trace": []}))


def test_ballots_follow_the_samples_and_greedy_is_separate():
    llm = ScriptedLLM(["B", "A", "garbage", "C. c"])
    st = _run(Deps(llm=llm, seed=7), n=3, temperature=0.5)
    assert st["letter"] == "B"  # greedy
    assert st["sc"]["ballots"] == ["A", None, "C"]  # unparseable sample is a null ballot
    assert st["sc"]["seeds"] == [8, 9, 10]
    greedy, *samples = llm.requests
    assert greedy["temperature"] == 0.0 and greedy["seed"] == 7
    assert [r["temperature"] for r in samples] == [0.5] * 3 and [r["seed"] for r in samples] == [8, 9, 10]


def test_resample_answer_reuses_the_greedy_context_without_retrieving_again():
    retr = ListRetriever([doc("d1", "Which sign? a b"), doc("d2", "unrelated text")])
    llm = ScriptedLLM(lambda msgs: "A")
    _run(Deps(llm=llm, retriever=retr), inner="standard_rag", inner_params="k=1", n=4)
    assert len(retr.queries) == 1
    assert all("Which sign? a b" in r["messages"][-1]["content"] for r in llm.requests)
    assert len(llm.requests) == 5


def test_resample_graph_reruns_the_inner_graph_per_sample():
    retr = ListRetriever([doc("d1", "Which sign? a b")])
    llm = ScriptedLLM(lambda msgs: "B")
    st = _run(Deps(llm=llm, retriever=retr), inner="standard_rag", inner_params="k=1", n=3, resample="graph")
    assert len(retr.queries) == 4
    assert st["sc"]["ballots"] == ["B", "B", "B"]


def test_n_zero_switches_sampling_off():
    llm = ScriptedLLM(["C"])
    st = _run(Deps(llm=llm), n=0)
    assert st["sc"]["ballots"] == [] and len(llm.requests) == 1 and st["letter"] == "C"


def test_bad_params_name_the_key():
    with pytest.raises(ConfigError, match="unknown parameter"):
        graphs.get("self_consistency").make_params({"samples": "3"})
    with pytest.raises(ConfigError, match="resample"):
        graphs.get("self_consistency").make_params({"resample": "all"})
    with pytest.raises(ConfigError, match="inner_params"):
        _run(Deps(llm=ScriptedLLM([])), inner="closed_book", inner_params="k")


@pytest.mark.e2e
def test_self_consistency_over_real_server(e2e_deps, demo_benchmark):
    q = demo_benchmark.select(limit=1)[0]
    spec = graphs.get("self_consistency")
    app = spec.build(e2e_deps, spec.make_params({"inner": "standard_rag", "inner_params": "k=2", "n": 3}))
    st = asyncio.run(app.ainvoke({"question": q, "queries": [], "trace": []}))
    assert len(st["sc"]["ballots"]) == 3
    assert all(b is None or b in q.options for b in st["sc"]["ballots"])
    (sample,) = [t for t in st["trace"] if t["node"] == "sample"]
    assert len(sample["llm_calls"]) == 3 and all(c["completion_tokens"] >= 1 for c in sample["llm_calls"])
    assert [t["node"] for t in st["trace"]][:2] == ["retrieve", "answer"]


def test_a_subgraph_after_other_nodes_does_not_duplicate_accumulated_entries():
    from langgraph.graph import END, START, StateGraph

    from ragsafe.graphs.base import State, as_node, traced

    inner = graphs.get("closed_book").build(Deps(llm=ScriptedLLM(["A"])), graphs.get("closed_book").make_params())

    @traced("first")
    async def first(state):
        return {"queries": ["q0"]}

    b = StateGraph(State)
    b.add_node("first", first)
    b.add_node("inner", as_node(inner))
    b.add_edge(START, "first")
    b.add_edge("first", "inner")
    b.add_edge("inner", END)
    st = asyncio.run(b.compile().ainvoke({"question": Q, "queries": [], "trace": []}))
    assert [t["node"] for t in st["trace"]] == ["first", "context", "answer"]
    assert st["queries"] == ["q0"] and st["letter"] == "A"
