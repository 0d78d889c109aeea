"""Routing tests of the agentic graphs with scripted models (no server, no store).

Replies are scripted per role (answerer, verifier/judge, supervisor, synthesizer), so each test
states the verdicts and checks the route the graph took, the calls it made and what it traced.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math

import httpx
import pytest
from langgraph.graph import END, START, StateGraph

from ragsafe.agents import answer as answer_agent
from ragsafe.agents import plan as plan_agent
from ragsafe.agents import synthesize as synth_agent
from ragsafe.agents import verify as verify_agent
from ragsafe.config import AnswerPolicy, ConfigError
from ragsafe.corpora.schema import Question
from ragsafe.graphs import Deps, State, graphs, param_docs
from ragsafe.graphs import max_context, option_research
from tests.fakes import ListRetriever, ScriptedLLM, doc

Q = Question(
    id="t-001", answer="C",
    question="A patient has right iliac fossa pain. Ultrasound shows a blind-ending tubular structure. Diagnosis?",
    options={"A": "Mesenteric adenitis", "B": "Ovarian torsion", "C": "Acute appendicitis",
             "D": "Crohn disease terminal ileitis"})

DOCS = [
    doc("appendicitis", "acute appendicitis blind-ending non-compressible tubular structure over 6 mm iliac fossa"),
    doc("adenitis", "mesenteric adenitis enlarged lymph nodes right lower quadrant normal appendix"),
    doc("torsion", "ovarian torsion enlarged ovary peripheral follicles whirlpool sign pelvic pain"),
    doc("crohn", "crohn disease terminal ileitis bowel wall thickening creeping fat"),
    doc("mimics", "appendicitis mimics differential diagnosis features against appendicitis"),
    doc("diverticulitis", "caecal diverticulitis mimics appendicitis in the right iliac fossa"),
]

ROLES = {answer_agent.SYSTEM_PROMPT: "answer", verify_agent.VERIFY_SYSTEM: "verify",
         plan_agent.PLAN_SYSTEM: "plan", synth_agent.SYNTH_SYSTEM: "synthesize"}


class Router:
    """A ScriptedLLM reply function that answers by role from per-role scripts and logs the order."""

    def __init__(self, **scripts: list[str] | str) -> None:
        self.scripts = {k: (list(v) if isinstance(v, list) else v) for k, v in scripts.items()}
        self.log: list[tuple[str, list[dict]]] = []

    def __call__(self, messages: list[dict]) -> str:
        role = ROLES[messages[0]["content"]]
        self.log.append((role, messages))
        script = self.scripts.get(role)
        if script is None:
            raise AssertionError(f"unexpected {role} call")
        if isinstance(script, str):  # a fixed reply for every call
            return script
        if not script:
            raise AssertionError(f"{role} script ran out")
        return script.pop(0)

    def calls(self, role: str) -> list[list[dict]]:
        return [m for r, m in self.log if r == role]


def verdict(v: str, **kw) -> str:
    return json.dumps({"verdict": v, "reason": "scripted", **kw})


def run(name: str, router: Router, params: dict | None = None, *, question: Question = Q, docs=None,
        **deps_kw) -> tuple[dict, ScriptedLLM, ListRetriever]:
    spec = graphs.get(name)
    llm = ScriptedLLM(router)
    retriever = ListRetriever(list(DOCS if docs is None else docs))
    app = spec.build(Deps(llm=llm, retriever=retriever, **deps_kw), spec.make_params(params or {}))
    state = asyncio.run(app.ainvoke({"question": question, "queries": [], "trace": []}))
    return state, llm, retriever


def nodes(state: dict) -> list[str]:
    return [t["node"] for t in state["trace"]]


def user_msg(messages: list[dict]) -> str:
    return messages[-1]["content"]


# ---------------------------------------------------------------- registry and params


@pytest.mark.parametrize("name", ["verifier_loop", "option_research", "max_context", "precomputed_report"])
def test_registered_with_documented_params(name):
    spec = graphs.get(name)
    fields = [f.name for f in dataclasses.fields(spec.params)]
    assert sorted(param_docs(spec.params)) == sorted(fields)
    assert spec.retrieves(spec.make_params({})) is (name != "precomputed_report")
    from ragsafe.graphs.show import mermaid

    assert "answer" in mermaid(name)


@pytest.mark.parametrize("name,bad", [("verifier_loop", {"max_rounds": "-1"}), ("verifier_loop", {"pick": "first"}),
                                      ("option_research", {"k": "0"}), ("max_context", {"counter": "guess"}),
                                      ("max_context", {"window": "0"}), ("verifier_loop", {"rounds": "2"})])
def test_bad_params_name_the_key(name, bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        graphs.get(name).make_params(bad)


# ---------------------------------------------------------------- verifier_loop


def test_contradicted_then_retrieve_answer_again_supported_stops():
    r = Router(answer=["B", "C"], verify=[verdict("contradicted", alternative="C"), verdict("supported")])
    st, llm, ret = run("verifier_loop", r, {"k": 2, "gap_k": 1})
    assert nodes(st) == ["retrieve", "answer", "verify", "gap", "answer", "verify", "finalize"]
    assert st["letter"] == "C" and st["final_round"] == 1 and st["stop"] == "supported"
    fin = st["trace"][-1]
    assert fin["verdicts"] == ["contradicted", "supported"] and fin["letters"] == ["B", "C"]
    gap = st["trace"][3]
    # the gap query is about the option the verifier favoured, and brings a chunk not seen before
    assert gap["query_source"] == "alternative:C" and ret.queries[1].startswith("Acute appendicitis")
    first_ids = {h["chunk_id"] for h in st["trace"][0]["retrieval"]["hits"]}
    new_ids = [h["chunk_id"] for h in gap["retrieval"]["hits"]]
    assert len(new_ids) == 1 and new_ids[0] not in first_ids
    assert [d.metadata["chunk_id"] for d in st["chunks"]][-1] == new_ids[0]
    # the second answer saw the enlarged context; the second verdict checked the new letter
    new_text = next(d.page_content for d in DOCS if d.metadata["chunk_id"] == new_ids[0])
    assert new_text in user_msg(r.calls("answer")[1]) and new_text not in user_msg(r.calls("answer")[0])
    assert "Option to check: C." in user_msg(r.calls("verify")[1])
    verifies = [t for t in st["trace"] if t["node"] == "verify"]
    assert [v["round"] for v in verifies] == [0, 1]
    assert all(v["role"] == "verify" and v["prompt_hash"] and len(v["llm_calls"]) == 1 for v in verifies)
    assert [a["round"] for a in st["trace"] if a["node"] == "answer"] == [0, 1]
    assert llm.calls == 4


def test_supported_first_time_answers_once():
    r = Router(answer=["C"], verify=[verdict("supported")])
    st, llm, _ = run("verifier_loop", r)
    assert nodes(st) == ["retrieve", "answer", "verify", "finalize"]
    assert st["final_round"] == 0 and llm.calls == 2


def test_verify_false_removes_the_verifier_from_the_route():
    spec = graphs.get("verifier_loop")
    app = spec.build(Deps(llm=None, retriever=ListRetriever(DOCS)), spec.make_params({"verify": "false"}))
    assert {"verify", "gap", "finalize"}.isdisjoint(app.get_graph().nodes)
    r = Router(answer=["A"])  # a verifier call would raise: no verify script
    st, llm, _ = run("verifier_loop", r, {"verify": False, "k": 3})
    assert nodes(st) == ["retrieve", "answer"] and st["letter"] == "A" and llm.calls == 1
    # plain RAG: the same prompt standard_rag sends
    std, _, _ = run("standard_rag", Router(answer=["A"]), {"k": 3})
    assert st["answer"]["messages"] == std["answer"]["messages"]


@pytest.mark.parametrize("max_rounds", [0, 1, 3])
def test_max_rounds_bounds_the_loop(max_rounds):
    r = Router(answer="B", verify=verdict("insufficient"))
    st, llm, ret = run("verifier_loop", r, {"max_rounds": max_rounds, "k": 1, "gap_k": 1})
    assert len(r.calls("answer")) == max_rounds + 1 == len(r.calls("verify"))
    assert nodes(st).count("gap") == max_rounds
    assert st["stop"] == "max_rounds" and st["final_round"] == max_rounds
    assert len(ret.queries) == max_rounds + 1


def test_an_unparseable_verdict_takes_the_recorded_fallback():
    r = Router(answer=["B", "B"], verify=["I think it is fine", json.dumps({"verdict": "probably"})])
    st, _, _ = run("verifier_loop", r, {"max_rounds": 1, "k": 1})
    verifies = [t for t in st["trace"] if t["node"] == "verify"]
    assert [v.get("fallback") for v in verifies] == [True, True]
    assert "not JSON" in verifies[0]["fallback_reason"] and "did not fit" in verifies[1]["fallback_reason"]
    assert all(v["output"]["verdict"] == "insufficient" for v in verifies)
    assert st["trace"][-1]["verdicts"] == ["insufficient", "insufficient"]  # unverified, never a crash


def test_pick_best_keeps_the_round_with_the_best_verdict():
    script = dict(answer=["C", "B"], verify=[verdict("insufficient"), verdict("contradicted")])
    best, _, _ = run("verifier_loop", Router(**script), {"pick": "best", "max_rounds": 1})
    last, _, _ = run("verifier_loop", Router(**script), {"pick": "last", "max_rounds": 1})
    assert (best["letter"], best["final_round"]) == ("C", 0)
    assert (last["letter"], last["final_round"]) == ("B", 1)
    assert best["answer"]["raw"] == "C"


def test_gap_query_from_the_verifier_when_asked():
    r = Router(answer=["B", "B"], verify=[verdict("insufficient", query="whirlpool sign ovary"), verdict("supported")])
    st, _, ret = run("verifier_loop", r, {"gap_query": "verifier", "k": 1})
    assert ret.queries[1] == "whirlpool sign ovary" and st["trace"][3]["query_source"] == "verifier"
    r = Router(answer=["B", "B"], verify=[verdict("insufficient", query="whirlpool sign ovary"), verdict("supported")])
    st, _, ret = run("verifier_loop", r, {"gap_query": "option", "k": 1})
    assert ret.queries[1].startswith("Ovarian torsion") and st["trace"][3]["query_source"] == "chosen:B"


def test_no_letter_is_not_sent_to_the_verifier():
    r = Router(answer=["I am not sure", "C"], verify=[verdict("supported")])
    st, llm, ret = run("verifier_loop", r, {"k": 1})
    v0 = st["trace"][2]
    assert v0["skipped"] == "no letter" and v0["llm_calls"] == [] and len(r.calls("verify")) == 1
    assert st["letter"] == "C" and "Options" not in ret.queries[1] and "Mesenteric adenitis" in ret.queries[1]


def test_stops_when_the_gap_finds_nothing_new():
    r = Router(answer="B", verify=verdict("contradicted"))
    st, llm, _ = run("verifier_loop", r, {"k": 2, "max_rounds": 3}, docs=DOCS[:2])
    assert nodes(st) == ["retrieve", "answer", "verify", "gap", "finalize"]
    assert st["stop"] == "no_new_evidence" and st["final_round"] == 0 and llm.calls == 2


def test_verifier_loop_is_usable_as_a_node_of_another_graph():
    spec = graphs.get("verifier_loop")
    r = Router(answer=["B", "C"], verify=[verdict("contradicted", alternative="C"), verdict("supported")])
    inner = spec.build(Deps(llm=ScriptedLLM(r), retriever=ListRetriever(DOCS)), spec.make_params({}))

    async def after(state: State) -> dict:
        return {"trace": [{"node": "after", "saw_letter": state["letter"]}]}

    b = StateGraph(State)
    b.add_node("inner", inner)
    b.add_node("after", after)
    b.add_edge(START, "inner")
    b.add_edge("inner", "after")
    b.add_edge("after", END)
    st = asyncio.run(b.compile().ainvoke({"question": Q, "queries": [], "trace": []}))
    assert st["letter"] == "C" and st["trace"][-1] == {"node": "after", "saw_letter": "C"}
    assert [t["node"] for t in st["trace"]].count("verify") == 2


# ---------------------------------------------------------------- option_research


def plan_reply(options, **queries) -> str:
    return json.dumps({"options": options, "queries": queries})


SYNTH_OK = json.dumps({"findings": {"A": "nodes only", "C": "tubular structure"}, "summary": "scripted summary"})


def researched(st: dict, node: str = "research.judge") -> list[str]:
    return sorted(t["option"] for t in st["trace"] if t["node"] == node)


def test_option_research_researches_exactly_the_planned_options():
    r = Router(plan=[plan_reply(["C", "A"], C="appendix blind-ending")], verify=verdict("supported"),
               synthesize=[SYNTH_OK], answer=["C"])
    st, llm, ret = run("option_research", r, {"k": 1})
    assert st["plan"]["options"] == ["A", "C"]
    assert researched(st) == researched(st, "research.note") == ["A", "C"]
    assert sorted(user_msg(m).split("Option to check: ")[1][0] for m in r.calls("verify")) == ["A", "C"]
    assert "appendix blind-ending" in ret.queries  # the planner's query was searched
    assert sorted(n["option"] for n in st["research"]) == ["A", "C"]
    # the report covers the planned options only, and is the answerer's context
    assert "Option A." in st["report"] and "Option C." in st["report"] and "Option B." not in st["report"]
    assert st["context"] == st["report"] and st["report"] in user_msg(r.calls("answer")[0])
    assert "scripted summary" in st["report"] and "tubular structure" in st["report"]
    assert nodes(st)[0] == "plan" and nodes(st)[-2:] == ["synthesize", "answer"]
    assert st["letter"] == "C" and llm.calls == 1 + 2 + 1 + 1
    # every LLM call is in the trace, with its role
    traced_calls = [t["role"] for t in st["trace"] for _ in t.get("llm_calls") or []]
    assert sorted(traced_calls) == sorted(["plan", "judge", "judge", "synthesize", "answer"])
    # the records name the evidence chunks
    assert st["chunks"] and all(d.metadata["chunk_id"] for d in st["chunks"])


def test_plan_false_researches_every_option_without_a_supervisor_call():
    r = Router(verify=verdict("supported"), synthesize=[SYNTH_OK], answer=["C"])
    st, llm, _ = run("option_research", r, {"plan": False, "k": 1})
    assert researched(st) == ["A", "B", "C", "D"] and r.calls("plan") == []
    assert st["trace"][0]["skipped"] == "plan=false"


def test_unparseable_plan_falls_back_to_every_option():
    r = Router(plan=["research A and C please"], verify=verdict("contradicted"), synthesize=[SYNTH_OK], answer=["C"])
    st, _, _ = run("option_research", r, {"k": 1})
    assert st["trace"][0]["fallback"] is True and researched(st) == ["A", "B", "C", "D"]
    r = Router(plan=[plan_reply(["Z", "?"])], verify=verdict("contradicted"), synthesize=[SYNTH_OK], answer=["C"])
    st, _, _ = run("option_research", r, {"k": 1})
    assert st["trace"][0]["fallback"] is True and researched(st) == ["A", "B", "C", "D"]


def test_max_options_caps_the_plan():
    r = Router(plan=[plan_reply(["A", "B", "C", "D"])], verify=verdict("supported"), synthesize=[SYNTH_OK],
               answer=["C"])
    st, _, _ = run("option_research", r, {"k": 1, "max_options": 2})
    assert researched(st) == ["A", "B"]


def test_refinement_uses_the_judges_query_then_stops_when_settled():
    r = Router(plan=[plan_reply(["B"])],
               verify=[verdict("insufficient", query="whirlpool sign"), verdict("contradicted", contradicting=[1])],
               synthesize=[SYNTH_OK], answer=["C"])
    st, _, ret = run("option_research", r, {"k": 1, "contra": False, "max_refinements": 3})
    assert [t["node"] for t in st["trace"] if t["node"].startswith("research.")] == [
        "research.search", "research.judge", "research.refine", "research.search", "research.judge",
        "research.note"]
    refine = next(t for t in st["trace"] if t["node"] == "research.refine")
    assert refine["query"] == "whirlpool sign" and refine["query_source"] == "judge"
    assert ret.queries[-1] == "whirlpool sign"
    note = st["research"][0]
    assert note["verdict"] == "contradicted" and note["refinements"] == 1
    # the cited contradicting chunk is kept as the option's evidence
    second = next(t for t in reversed(st["trace"]) if t["node"] == "research.search")
    assert note["evidence"][0].metadata["chunk_id"] == second["retrieval"]["hits"][0]["chunk_id"]
    assert note["sides"][0] == "against"
    assert f"Evidence against: {note['evidence'][0].page_content}" in st["report"]


@pytest.mark.parametrize("max_refinements", [0, 2])
def test_max_refinements_bounds_the_research_loop(max_refinements):
    r = Router(plan=[plan_reply(["A", "C"])], verify=verdict("insufficient"), synthesize=[SYNTH_OK], answer=["C"])
    many = [doc(f"d{i}", f"appendicitis finding number {i}") for i in range(40)]
    st, _, _ = run("option_research", r, {"k": 1, "max_refinements": max_refinements}, docs=many)
    assert len(r.calls("verify")) == 2 * (max_refinements + 1)
    assert [t["node"] for t in st["trace"]].count("research.refine") == 2 * max_refinements
    # each search round brings chunks the option has not seen yet
    for L in "AC":
        ids = [h["chunk_id"] for t in st["trace"] if t["node"] == "research.search" and t["option"] == L
               for ret in t["retrievals"] for h in ret["hits"]]
        assert len(ids) == len(set(ids)) == 2 * (max_refinements + 1)


def test_many_refinements_do_not_hit_the_recursion_limit():
    r = Router(plan=[plan_reply(["A"])], verify=verdict("insufficient"), synthesize=[SYNTH_OK], answer=["C"])
    many = [doc(f"d{i}", f"appendicitis finding number {i}") for i in range(40)]
    st, _, _ = run("option_research", r, {"k": 1, "contra": False, "max_refinements": 12}, docs=many)
    assert len(r.calls("verify")) == 13


def test_synthesize_false_answers_from_raw_evidence():
    r = Router(plan=[plan_reply(["A", "C"])], verify=verdict("supported"), answer=["C"])
    st, llm, _ = run("option_research", r, {"synthesize": False, "k": 1, "chunks_per_option": 1})
    assert r.calls("synthesize") == [] and "synthesize" not in nodes(st) and "evidence" in nodes(st)
    assert "report" not in st and all(len(n["evidence"]) == 1 for n in st["research"])
    union = list(dict.fromkeys(n["evidence"][0].metadata["chunk_id"] for n in sorted(st["research"],
                                                                                 key=lambda n: n["option"])))
    assert [d.metadata["chunk_id"] for d in st["chunks"]] == union  # per option, each chunk once
    assert st["context"] == answer_agent.CHUNK_SEPARATOR.join(d.page_content for d in st["chunks"])
    assert st["context"] in user_msg(r.calls("answer")[0])


def test_unparseable_synthesis_renders_the_report_from_the_research_notes():
    r = Router(plan=[plan_reply(["A", "C"])], verify=verdict("contradicted", reason="nodes without appendix"),
               synthesize=["the answer is clearly C"], answer=["C"])
    st, _, _ = run("option_research", r, {"k": 1})
    syn = next(t for t in st["trace"] if t["node"] == "synthesize")
    assert syn["fallback"] is True and syn["output"] is None
    assert st["report"].startswith(synth_agent.REPORT_TITLE) and "Evidence verdict: contradicted" in st["report"]


def test_report_is_capped():
    r = Router(plan=[plan_reply(["A", "B", "C", "D"])], verify=verdict("supported"), synthesize=[SYNTH_OK],
               answer=["C"])
    st, _, _ = run("option_research", r, {"k": 2, "report_chars": 200})
    assert len(st["report"]) <= 202


def test_research_subgraph_runs_on_its_own():
    deps = Deps(llm=ScriptedLLM(Router(verify=verdict("supported", supporting=[1]))), retriever=ListRetriever(DOCS))
    sub = option_research.build_research(deps, option_research.Params(k=1))
    out = asyncio.run(sub.ainvoke({"question": Q, "option": "C", "query": "appendix"}))
    assert set(out) <= {"queries", "research", "trace"}
    assert out["research"][0]["option"] == "C" and out["research"][0]["verdict"] == "supported"


# ---------------------------------------------------------------- max_context


def words(text: str) -> int:
    return len(text.split())


SIZED = [doc(f"s{i}", " ".join(["appendicitis"] + [f"w{i}x{j}" for j in range(7 + 5 * (i % 7))])) for i in range(60)]


@pytest.mark.parametrize("window,reserve", [(150, 10), (400, 50), (900, 0), (20000, 128)])
def test_max_context_never_exceeds_window_minus_reserve_by_its_counter(window, reserve):
    r = Router(answer="C")
    st, llm, _ = run("max_context", r, {"reserve": reserve, "margin": 0.2}, docs=SIZED, count_tokens=words,
                     context_window=window, policy=AnswerPolicy(max_tokens=10))
    fill = st["trace"][0]
    assert fill["counter"] == "embedder(+20%)" and fill["window"] == window and fill["window_source"] == "deps"
    limit = window - 10 - reserve
    assert fill["limit"] == limit

    def counted(text: str) -> int:
        return math.ceil(words(text) * 1.2)

    sent = "\n".join(m["content"] for m in llm.requests[0]["messages"])
    assert counted(sent) == fill["prompt_tokens"] <= limit
    used = st["chunks"]
    assert len(used) == fill["chunks"]
    ranked = [d.metadata["chunk_id"] for d in SIZED]  # every doc shares one query word: rank order = list order
    assert [d.metadata["chunk_id"] for d in used] == ranked[:len(used)]
    if len(used) < len(SIZED):  # the window is full: one more ranked chunk would not fit
        more = max_context.prompt_text(Q, answer_agent.CHUNK_SEPARATOR.join(
            d.page_content for d in SIZED[:len(used) + 1]))
        assert counted(more) > limit
    else:
        assert window == 20000 and fill["retrieved"] == len(SIZED)


def test_max_context_prefers_the_servers_tokenizer(monkeypatch):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/extras/tokenize":
            text = json.loads(request.content)["input"]
            return httpx.Response(200, json={"tokens": list(range(max(1, len(text) // 4)))})
        return httpx.Response(404)

    monkeypatch.setattr(max_context, "_http_client",
                        lambda **kw: httpx.AsyncClient(transport=httpx.MockTransport(handler), **kw))
    spec = graphs.get("max_context")
    llm = ScriptedLLM(Router(answer="C"))
    llm.base_url, llm.model = "http://127.0.0.1:9/v1", "scripted"
    app = spec.build(Deps(llm=llm, retriever=ListRetriever(SIZED), count_tokens=words, context_window=300),
                     spec.make_params({"reserve": 20}))
    st = asyncio.run(app.ainvoke({"question": Q, "queries": [], "trace": []}))
    fill = st["trace"][0]
    assert fill["counter"] == "server:/extras/tokenize" and "/extras/tokenize" in seen
    sent = "\n".join(m["content"] for m in llm.requests[0]["messages"])
    assert len(sent) // 4 == fill["prompt_tokens"] <= 300 - 10 - 20
    assert 0 < len(st["chunks"]) < len(SIZED)


def test_max_context_uses_llama_servers_tokenize_route(monkeypatch):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/tokenize":  # llama.cpp's llama-server: {"content"} -> {"tokens"}
            return httpx.Response(200, json={"tokens": [1] * len(json.loads(request.content)["content"].split())})
        return httpx.Response(404)

    monkeypatch.setattr(max_context, "_http_client",
                        lambda **kw: httpx.AsyncClient(transport=httpx.MockTransport(handler), **kw))
    llm = ScriptedLLM(Router(answer="C"))
    llm.base_url = "http://127.0.0.1:9/v1"
    deps = Deps(llm=llm, retriever=ListRetriever(SIZED), count_tokens=len)
    c = asyncio.run(max_context.resolve_counter(deps, graphs.get("max_context").make_params({})))
    assert c.name == "server:/tokenize" and asyncio.run(c.count("three short words")) == 3


def test_max_context_falls_back_when_the_server_has_no_tokenizer(monkeypatch):
    monkeypatch.setattr(max_context, "_http_client",
                        lambda **kw: httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(404)),
                                                       **kw))
    llm = ScriptedLLM(Router(answer="C"))
    llm.base_url = "http://127.0.0.1:9/v1"
    deps = Deps(llm=llm, retriever=ListRetriever(SIZED), count_tokens=words, context_window=300)
    p = graphs.get("max_context").make_params
    assert asyncio.run(max_context.resolve_counter(deps, p({}))).name == "embedder(+15%)"
    no_embedder = dataclasses.replace(deps, count_tokens=None)
    assert asyncio.run(max_context.resolve_counter(no_embedder, p({}))).name.startswith("chars/3")
    with pytest.raises(ConfigError, match="no tokenizer endpoint"):
        asyncio.run(max_context.resolve_counter(deps, p({"counter": "server"})))
    with pytest.raises(ConfigError, match="count_tokens"):
        asyncio.run(max_context.resolve_counter(no_embedder, p({"counter": "embedder"})))


def test_max_context_window_sources(monkeypatch):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "other", "max_model_len": 99},
                                                      {"id": "scripted", "max_model_len": 4096}]})
        return httpx.Response(404)

    monkeypatch.setattr(max_context, "_http_client",
                        lambda **kw: httpx.AsyncClient(transport=httpx.MockTransport(handler), **kw))
    llm = ScriptedLLM(Router(answer="C"))
    llm.base_url, llm.model = "http://127.0.0.1:9/v1", "scripted"
    p = graphs.get("max_context").make_params
    deps = Deps(llm=llm, retriever=ListRetriever(SIZED), count_tokens=words)
    assert asyncio.run(max_context.resolve_window(deps, p({}))) == (4096, "server:/v1/models")
    assert asyncio.run(max_context.resolve_window(deps, p({"window": "1000"}))) == (1000, "param")
    with_deps = dataclasses.replace(deps, context_window=2048)
    assert asyncio.run(max_context.resolve_window(with_deps, p({}))) == (2048, "deps")
    with pytest.raises(ConfigError, match="max_context.window"):
        asyncio.run(max_context.resolve_window(dataclasses.replace(deps, llm=ScriptedLLM([])), p({})))


# ---------------------------------------------------------------- precomputed_report


def test_precomputed_report_is_the_context():
    report = "Research report: the blind-ending tubular structure favours appendicitis."
    r = Router(answer=["C"])
    st, llm, ret = run("precomputed_report", r, question=dataclasses.replace(Q, agentic_report=report))
    assert nodes(st) == ["report", "answer"] and st["context"] == report and ret.queries == []
    assert user_msg(r.calls("answer")[0]).startswith(report + "\n\nQuestion:") and llm.calls == 1


def test_precomputed_report_without_a_report_is_a_clear_error():
    with pytest.raises(ConfigError, match="t-001.*agentic_report"):
        run("precomputed_report", Router(answer=["C"]))


def test_the_runner_refuses_questions_without_a_report_up_front():
    from ragsafe.corpora.schema import Benchmark
    from ragsafe.experiments.plan import condition_problems
    from ragsafe.experiments.variants import resolve_variants
    with_report = dataclasses.replace(Q, id="t-002", agentic_report="a report")
    variants = resolve_variants(["precomputed_report"], [])
    probs = condition_problems(Benchmark("t", [Q, with_report], []), [Q, with_report], variants)
    assert [(p.record, p.field) for p in probs] == [("t-001", "agentic_report")]
