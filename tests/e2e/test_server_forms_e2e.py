"""The local llama.cpp server over real HTTP: which JSON-Schema form it enforces, what it does with n."""

from __future__ import annotations

import asyncio

import pytest

from ragsafe.agents.structured import ask_structured, obj_schema
from ragsafe.llm.client import LLM
from tests.conftest import E2E_BASE_URL, E2E_MODEL

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(E2E_BASE_URL is not None, reason="what the embedded llama.cpp server does")
def test_llamacpp_takes_the_json_object_form_and_ignores_n(llm_server):
    llm = LLM(llm_server.base_url, E2E_MODEL, timeout=120, max_retries=1)
    schema = obj_schema({"letter": {"type": "string", "enum": ["A", "B", "C"]}})
    s = asyncio.run(ask_structured(llm, "Answer in JSON.", "Pick one of A, B, C.", validate=lambda o: o["letter"],
                                   fallback=None, schema=schema, max_tokens=20))
    # json_schema is refused (llama-cpp-python: 500 validation error, not retried); the grammar holds
    assert s.call["structured_form"] == "json_object_schema" and not s.fallback and s.value in "ABC"
    assert llm.gate.caps["structured"] == "json_object_schema"
    msgs = [{"role": "user", "content": "Say a letter."}]
    got = asyncio.run(llm.sample(msgs, seeds=[11, 12, 13], temperature=0.7, max_tokens=3))
    assert len(got) == 3 and all(c.text is not None for c in got)
    assert llm.gate.caps["n"] is False  # one choice came back for n=3: asked per sample from then on
    assert got[0].batch is None or got[0].batch["n"] == 3


def test_any_server_structured_call_and_samples(llm_server):
    """What every server must do (``make e2e BASE_URL=...``): a structured call in some form, N samples."""
    llm = LLM(llm_server.base_url, E2E_MODEL, timeout=300, max_retries=1)
    schema = obj_schema({"letter": {"type": "string", "enum": ["A", "B", "C"]}})
    s = asyncio.run(ask_structured(llm, "Answer in JSON.", "Pick one of A, B, C.", validate=lambda o: o["letter"],
                                   fallback=None, schema=schema, max_tokens=20))
    assert s.call["structured_form"] in ("json_schema", "json_object_schema", "none")
    assert llm.gate.caps["structured"] == s.call["structured_form"]
    got = asyncio.run(llm.sample([{"role": "user", "content": "Say a letter."}], seeds=[5, 6, 7], temperature=0.7,
                                 max_tokens=3))
    assert len(got) == 3 and llm.gate.caps.get("n") in (True, False)
