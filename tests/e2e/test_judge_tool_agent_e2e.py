"""End to end on the local llama.cpp server and the real Chroma store: a run re-judged by the local
server, and the tool agent (on llama.cpp: the JSON route) with its closed-book ablation.

smollm2-135m proves plumbing, never results: these tests check records, routes and traces.
"""

from __future__ import annotations

import asyncio

import pytest

from ragsafe.config import EndpointConfig
from ragsafe.evals.score import score_run_dir
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.execute import run
from ragsafe.experiments.rejudge import read_judge, read_meta, rejudge
from ragsafe.experiments.store import RunStore
from ragsafe.graphs import graphs
from ragsafe.llm.client import LLM
from tests.conftest import E2E_BASE_URL, E2E_MODEL

LLAMACPP = E2E_BASE_URL is None
"""The embedded llama.cpp server (the default); with ``make e2e BASE_URL=...`` only what holds anywhere."""

pytestmark = pytest.mark.e2e


def test_a_local_run_rejudged_by_the_local_server(llm_server, tmp_path):
    cfg = RunConfig(graphs=["closed_book", "self_consistency[n=2]"], limit=3, out=str(tmp_path / "runs"),
                    cache="off", endpoint=EndpointConfig(base_url=llm_server.base_url, model=E2E_MODEL, timeout=300))
    d = run(cfg, progress=lambda m: None)
    recs = RunStore(d).samples()
    assert len(recs) == 6 and not any(r["error"] for r in recs)
    llm = LLM(llm_server.base_url, E2E_MODEL, timeout=300, max_retries=1)
    stats = rejudge(d, llm, judge_id={"model": E2E_MODEL, "endpoint": "remote", "base_url": llm_server.base_url},
                    progress=lambda m: None)
    assert stats["judged"] == 6 and stats["failed"] == 0
    judged = read_judge(d)
    for r in recs:
        j = judged[(r["variant"], r["question_id"])]
        assert j["letter"] is None or j["letter"] in "ABCDE"
        assert j["raw_output"] == r["raw_output"]
        if r.get("sc"):
            assert len(j["sc_ballots"]) == 2
        # the grammar holds on llama.cpp: JSON-object form, no fallback where a call was made
        if j["calls"] and LLAMACPP:
            assert j["structured_form"] == ["json_object_schema"] and j["fallbacks"] == 0
    if LLAMACPP:
        assert read_meta(d)["capabilities"]["structured"] == "json_object_schema"
    s = score_run_dir(d, letters="judge")
    agree = s["judge_agreement"]["variants"]["closed_book"]["greedy"]
    assert agree["n"] == 3 and sum(agree[k] for k in ("same_letter", "both_null", "strict_only", "judge_only",
                                                      "different")) == 3
    assert s["letters"] == "judge"


def test_tool_agent_on_llamacpp_takes_the_json_route(e2e_deps, demo_benchmark):
    import dataclasses

    # the decision prompts carry passages: a longer timeout than the fixture's on a shared machine
    e2e_deps = dataclasses.replace(e2e_deps, llm=LLM(e2e_deps.llm.base_url, E2E_MODEL, timeout=300, max_retries=1))
    spec = graphs.get("tool_agent")
    app = spec.build(e2e_deps, spec.make_params({"max_steps": 2, "k": 2}))
    q = demo_benchmark.select(limit=1)[0]
    st = asyncio.run(app.ainvoke({"question": q, "queries": [], "trace": []}))
    decides = [t for t in st["trace"] if t["node"] == "decide"]
    searches = [t for t in st["trace"] if t["node"] == "search"]
    assert decides and len(searches) <= 2
    if LLAMACPP:  # llama.cpp ignores tool_choice "required": the probe, then JSON from then on
        assert decides[0]["route"] == "json" and decides[0]["native_probe"]
        assert e2e_deps.llm.gate.caps["tools"] is False
        assert all(t["route"] == "json" for t in decides)
    else:
        assert e2e_deps.llm.gate.caps["tools"] in (True, False)
    ids = {c["chunk_id"] for t in searches for c in t["retrieval"]["hits"]}
    assert ids == {d.metadata["chunk_id"] for d in st.get("chunks") or []}  # none when it never searched
    assert st["letter"] is None or st["letter"] in q.options
    assert [t["node"] for t in st["trace"]][-1] == "answer"
    # the ablation: no decision, the closed-book prompt
    zero = spec.build(e2e_deps, spec.make_params({"max_steps": 0}))
    st0 = asyncio.run(zero.ainvoke({"question": q, "queries": [], "trace": []}))
    assert [t["node"] for t in st0["trace"]] == ["answer"] and st0["answer"]["messages"][-1]["content"].startswith(
        "Question:")
