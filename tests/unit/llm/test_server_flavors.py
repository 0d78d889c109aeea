"""What OpenAI-compatible servers disagree on, over real HTTP against scripted servers of each kind:
the JSON-Schema form each one enforces, ``n`` samples per request, reasoning fields."""

from __future__ import annotations

import asyncio
import json

from ragsafe.agents.structured import ask_structured, obj_schema
from ragsafe.llm.cache import SQLiteCache
from ragsafe.llm.client import LLM
from tests.fault_server import FaultServer

SCHEMA = obj_schema({"letter": {"type": "string", "enum": ["A", "B", "C"]}})


def json_when_enforced(body: dict) -> str:
    """A model that returns the schema's shape only when the server constrains it (as a small model does)."""
    if body.get("_enforced_schema"):
        return json.dumps({"letter": "B"})
    return "I think it is probably B, but hard to say."


def structured(llm: LLM):
    return asyncio.run(ask_structured(llm, "Pick.", "A, B or C?", validate=lambda o: o["letter"], fallback=None,
                                      schema=SCHEMA))


def test_vllm_gets_json_schema_form_and_it_is_enforced():
    with FaultServer(flavor="vllm", reply=json_when_enforced) as srv:
        llm = LLM(srv.base_url, "fake", max_retries=0)
        s = structured(llm)
        assert s.value == "B" and not s.fallback
        assert srv.requests == 1
        sent = srv.bodies[0]["response_format"]
        assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == SCHEMA
        assert sent["json_schema"]["name"]
        assert s.call["structured_form"] == "json_schema"
        assert llm.describe()["capabilities"]["structured"] == "json_schema"


def test_llamacpp_refuses_json_schema_once_then_gets_its_own_form():
    with FaultServer(flavor="llamacpp", reply=json_when_enforced) as srv:
        llm = LLM(srv.base_url, "fake", max_retries=3, backoff_initial=0.01)
        first = structured(llm)
        # the 500 "validation error" is not retried: one refused request, one in the json_object form
        assert srv.requests == 2 and srv.answered == 1
        assert first.value == "B" and not first.fallback and first.call["structured_form"] == "json_object_schema"
        srv.reset_counts()
        second = structured(llm)
        assert srv.requests == 1  # learnt once per endpoint
        assert srv.bodies[0]["response_format"] == {"type": "json_object", "schema": SCHEMA}
        assert second.value == "B"


def test_clients_of_one_endpoint_share_what_was_learnt():
    with FaultServer(flavor="llamacpp", reply=json_when_enforced) as srv:
        a = LLM(srv.base_url, "fake", max_retries=0)
        structured(a)
        b = LLM(srv.base_url, "fake", max_retries=0, seed=7, gate=a.gate)
        srv.reset_counts()
        structured(b)
        assert srv.requests == 1


def test_reply_that_ignores_the_schema_is_a_counted_fallback():
    # a server that accepts every form and constrains nothing
    with FaultServer(reply=lambda body: "I think it is probably B.") as srv:
        s = structured(LLM(srv.base_url, "fake", max_retries=0))
        assert s.fallback and s.value is None and s.reason == "reply was not JSON"
        assert s.trace("grade")["fallback"] is True
        assert s.trace("grade")["llm_calls"][0]["structured_form"] == "json_schema"


def seeded_letter(body: dict) -> str:
    """A sampled answer that depends on the seed (and the prompt), like a real sampler."""
    h = hash((body["messages"][-1]["content"], body.get("seed"), body.get("temperature")))
    return "ABCD"[h % 4]


MSGS = [{"role": "user", "content": "Question 1: A, B, C or D?"}]
SEEDS = list(range(101, 121))


def test_n_request_returns_the_samples_of_twenty_single_requests(tmp_path):
    with FaultServer(reply=seeded_letter) as plain:
        singles = asyncio.run(LLM(plain.base_url, "fake", use_n=False).sample(MSGS, seeds=SEEDS, temperature=0.7))
        assert plain.requests == 20
    with FaultServer(flavor="vllm", reply=seeded_letter) as srv:
        llm = LLM(srv.base_url, "fake")
        batched = asyncio.run(llm.sample(MSGS, seeds=SEEDS, temperature=0.7))
        assert srv.requests == 1 and srv.bodies[0]["n"] == 20 and srv.bodies[0]["seed"] == 101
        assert llm.describe()["capabilities"]["n"] is True
    assert [c.text for c in batched] == [c.text for c in singles]
    assert len({c.text for c in batched}) > 1  # really sampled
    assert [c.batch["index"] for c in batched] == list(range(20))


def test_samples_share_the_cache_with_and_without_n(tmp_path):
    cache = SQLiteCache(tmp_path / "c.sqlite")
    with FaultServer(flavor="vllm", reply=seeded_letter) as srv:
        first = asyncio.run(LLM(srv.base_url, "fake", cache=cache).sample(MSGS, seeds=SEEDS, temperature=0.7))
        srv.reset_counts()
        again = asyncio.run(LLM(srv.base_url, "fake", cache=cache, use_n=False)
                            .sample(MSGS, seeds=SEEDS, temperature=0.7))
        assert srv.requests == 0 and all(c.cached for c in again)
        # a single request for one sample index finds the sample the n request made
        one = asyncio.run(LLM(srv.base_url, "fake", cache=cache).chat(MSGS, temperature=0.7, seed=SEEDS[3]))
        assert srv.requests == 0 and one.cached and one.text == first[3].text
        # half cached: only the missing samples are asked for, in one request
        more = SEEDS + list(range(121, 126))
        srv.reset_counts()
        got = asyncio.run(LLM(srv.base_url, "fake", cache=cache).sample(MSGS, seeds=more, temperature=0.7))
        assert srv.requests == 1 and srv.bodies[0]["n"] == 5 and srv.bodies[0]["seed"] == 121
        assert [c.text for c in got[:20]] == [c.text for c in first]


def test_server_that_ignores_n_is_asked_per_sample():
    with FaultServer(flavor="llamacpp", reply=seeded_letter) as srv:
        llm = LLM(srv.base_url, "fake")
        got = asyncio.run(llm.sample(MSGS, seeds=SEEDS, temperature=0.7))
        assert len(got) == 20 and all(c is not None for c in got)
        assert srv.requests == 20  # the n request (one choice came back) + 19 single ones
        assert llm.describe()["capabilities"]["n"] is False
        srv.reset_counts()
        asyncio.run(llm.sample([{"role": "user", "content": "Question 2"}], seeds=SEEDS, temperature=0.7))
        assert srv.requests == 20 and all("n" not in b for b in srv.bodies)


def test_server_that_refuses_n_is_asked_per_sample():
    with FaultServer(reject_n=True, reply=seeded_letter) as srv:
        llm = LLM(srv.base_url, "fake", max_retries=0)
        got = asyncio.run(llm.sample(MSGS, seeds=SEEDS, temperature=0.7))
        assert [c.text for c in got] == [seeded_letter({"messages": MSGS, "seed": s, "temperature": 0.7})
                                         for s in SEEDS]
        assert llm.gate.caps["n"] is False and srv.answered == 20


def test_reasoning_field_is_kept_apart_from_the_answer():
    think = "The lesion is crescentic and crosses sutures, so " * 20

    def reasoner(body):
        if body["max_tokens"] < 100:  # the answer budget ran out while thinking
            return {"content": None, "reasoning": think[: body["max_tokens"] * 4], "finish_reason": "length"}
        return {"content": "B", "reasoning": think}

    with FaultServer(flavor="vllm", reply=reasoner) as srv:
        llm = LLM(srv.base_url, "fake")
        c = asyncio.run(llm.chat(MSGS, max_tokens=4096))
        assert c.text == "B" and c.reasoning == think and c.finish_reason == "stop"
        assert c.reasoning_tokens is not None and c.reasoning_tokens_source == "estimated"
        assert 0 < c.completion_tokens - c.reasoning_tokens < c.reasoning_tokens
        cut = asyncio.run(llm.chat(MSGS, max_tokens=10))
        assert cut.text == "" and cut.finish_reason == "length" and cut.reasoning


def test_reasoning_tokens_from_the_server_usage_win():
    from ragsafe.llm.client import _reasoning_tokens

    usage = {"completion_tokens": 50, "completion_tokens_details": {"reasoning_tokens": 42}}
    assert _reasoning_tokens(usage, "B", "long thoughts", 1) == (42, "server")
    assert _reasoning_tokens({"completion_tokens": 30}, "<think>" + "x" * 20 + "</think>B", None, 1)[1] == "estimated"
    assert _reasoning_tokens({"completion_tokens": 30}, "B", None, 1) == (None, None)


def test_models_list_of_vllm_gives_max_model_len():
    with FaultServer(flavor="vllm") as srv:
        llm = LLM(srv.base_url, "fake")
        assert asyncio.run(llm.check()) == ["fake"]
        assert llm.model_info == {"fake": {"max_model_len": 4096}}
