"""Self-consistency wraps any graph: greedy answer kept, N seeded samples recorded as ballots."""

import asyncio

import pytest

from ragsafe.config import AnswerPolicy, ConfigError
from ragsafe.corpora.schema import Question
from ragsafe.graphs import Deps, graphs
from ragsafe.graphs.self_consistency import sample_seed, seed_rule_of
from tests.fakes import ListRetriever, ScriptedLLM, doc

Q = Question(id="q1", question="Which sign?", options={"A": "a", "B": "b", "C": "c", "D": "d"}, answer="B")


def _run(deps, **params):
    spec = graphs.get("self_consistency")
    app = spec.build(deps, spec.make_params(params))
    return asyncio.run(app.ainvoke({"question": Q, "queries": [], "trace": []}))


def test_ballots_follow_the_samples_and_greedy_is_separate():
    llm = ScriptedLLM(["B", "A", "garbage", "C. c"])
    st = _run(Deps(llm=llm, policy=AnswerPolicy(seed=7)), n=3, temperature=0.5)
    assert st["letter"] == "B"  # greedy
    assert st["sc"]["ballots"] == ["A", None, "C"]  # unparseable sample is a null ballot
    expected = [sample_seed(7, "q1", i) for i in range(3)]
    assert st["sc"]["seeds"] == expected and st["sc"]["seed_rule"] == "per_question_block"
    greedy, *samples = llm.requests
    assert greedy["temperature"] == 0.0 and greedy["seed"] == 7
    assert [r["temperature"] for r in samples] == [0.5] * 3 and [r["seed"] for r in samples] == expected


def test_shared_rule_keeps_the_old_seeds():
    llm = ScriptedLLM(["B", "A", "A", "A"])
    st = _run(Deps(llm=llm, policy=AnswerPolicy(seed=7)), n=3, seed_rule="shared")
    assert st["sc"]["seeds"] == [8, 9, 10] and st["sc"]["seed_rule"] == "shared"


def test_sample_seed_is_a_stable_hash_of_base_question_and_index():
    # fixed values: a change of the rule (or a switch to Python's salted hash()) fails here
    import hashlib

    want = int(hashlib.sha256(b"0:q1:0").hexdigest()[:8], 16) & 0x7FFFFFFF
    assert sample_seed(0, "q1", 0, rule="per_question") == want
    for rule in ("per_question", "per_question_block"):
        seeds = {sample_seed(b, q, i, rule) for b in (0, 1) for q in ("q1", "q2") for i in range(5)}
        assert len(seeds) == 20 and all(0 <= s < 2**31 + 5 for s in seeds)
    # the default: a hashed start per (base seed, question), then consecutive (one n request draws them)
    start = int(hashlib.sha256(b"0:q1").hexdigest()[:8], 16) & 0x7FFFFFFF
    assert [sample_seed(0, "q1", i) for i in range(3)] == [start, start + 1, start + 2]
    assert seed_rule_of({"ballots": []}) == "shared"  # an old record names no rule
    with pytest.raises(ConfigError, match="seed_rule"):
        graphs.get("self_consistency").make_params({"seed_rule": "random"})


class SeededSampler(ScriptedLLM):
    """A seeded server in miniature: at temperature > 0 the letter depends only on the seed."""

    def __init__(self):
        super().__init__(lambda msgs: "A")

    async def chat(self, messages, **params):
        import random

        comp = await super().chat(messages, **params)
        if params.get("temperature"):
            comp.text = random.Random(params["seed"]).choice("ABCD")
        return comp


def _ballots_over_questions(rule: str, n_questions: int = 40, n: int = 5) -> list[tuple]:
    spec = graphs.get("self_consistency")
    app = spec.build(Deps(llm=SeededSampler(), policy=AnswerPolicy(seed=0)), spec.make_params({"n": n, "seed_rule": rule}))
    out = []
    for j in range(n_questions):
        q = Question(id=f"q{j:02d}", question=f"Question {j}?", options=Q.options, answer="B")
        out.append(tuple(asyncio.run(app.ainvoke({"question": q, "queries": [], "trace": []}))["sc"]["ballots"]))
    return out


def test_shared_seeds_make_ballots_of_different_questions_dependent_and_per_question_seeds_do_not():
    old = _ballots_over_questions("shared")
    assert len(set(old)) == 1  # every question drew the same five ballots: common random numbers
    for rule in ("per_question", "per_question_block"):
        new = _ballots_over_questions(rule)
        # 40 questions x 5 draws from 4 letters: independent draws repeat a whole ballot vector rarely
        assert len(set(new)) >= 35, rule
        # sample i of one question no longer predicts sample i of the next: agreement is near chance (1/4)
        same = sum(a[i] == b[i] for a, b in zip(new, new[1:]) for i in range(5)) / (39 * 5)
        assert same < 0.45, rule


def test_resample_answer_reuses_the_greedy_context_without_retrieving_again():
    retr = ListRetriever([doc("d1", "Which sign? a b"), doc("d2", "unrelated text")])
    llm = ScriptedLLM(lambda msgs: "A")
    _run(Deps(llm=llm, retriever=retr), inner="standard_rag", inner_params="k=1", n=4)
    assert len(retr.queries) == 1
    assert all("Which sign? a b" in r["messages"][-1]["content"] for r in llm.requests)
    assert len(llm.requests) == 5


class SeededLLM(ScriptedLLM):
    """Replies with a letter chosen by the request's seed, so each ballot shows which sample made it."""

    def __init__(self, by_seed: dict[int, str]):
        super().__init__([])
        self.by_seed = by_seed

    async def chat(self, messages, **params):
        self.replies = [self.by_seed[params["seed"]]]
        return await super().chat(messages, **params)


def test_resample_graph_reruns_the_inner_graph_per_sample():
    retr = ListRetriever([doc("d1", "Which sign? a b")])
    seeds = [sample_seed(0, Q.id, i) for i in range(3)]
    llm = SeededLLM({0: "D", seeds[0]: "A", seeds[1]: "C", seeds[2]: "garbage"})
    st = _run(Deps(llm=llm, retriever=retr), inner="standard_rag", inner_params="k=1", n=3, resample="graph",
              temperature=0.9)
    assert len(retr.queries) == 4
    assert st["letter"] == "D"  # the greedy run (seed 0), not a sample
    assert st["sc"]["ballots"] == ["A", "C", None] and st["sc"]["seeds"] == seeds
    assert sorted((r["seed"], r["temperature"]) for r in llm.requests) == sorted(
        [(0, 0.0)] + [(s, 0.9) for s in seeds])
    # every re-run of the inner graph retrieved again and answered over what it retrieved
    assert all("Which sign? a b" in r["messages"][-1]["content"] for r in llm.requests)


def test_inner_params_as_a_mapping_run_like_the_text_form():
    runs = []
    for inner_params in ("k=1", {"k": 1}):
        retr = ListRetriever([doc("d1", "Which sign? a b"), doc("d2", "Which sign? c")])
        llm = SeededLLM({0: "A", sample_seed(0, Q.id, 0): "C"})
        st = _run(Deps(llm=llm, retriever=retr), inner="standard_rag", inner_params=inner_params, n=1)
        runs.append((st["sc"]["ballots"], [len(t["retrieval"]["hits"]) for t in st["trace"] if "retrieval" in t],
                     [r["messages"] for r in llm.requests]))
    assert runs[0] == runs[1] and runs[0][1] == [1]  # k=1 reached the inner graph in both forms


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
