"""Retry policy of the LLM client over real HTTP (loopback fault server)."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from ragsafe.llm.client import LLM

from ragsafe.llm.errors import EndpointUnreachable, RequestFailed

from ragsafe.llm.gate import Gate
from tests.fault_server import FAULT_KINDS, FaultServer, free_port

MSG = [{"role": "user", "content": "Which letter?"}]


@pytest.fixture(params=["aiohttp", "openai"], autouse=True)
def http(request, monkeypatch):
    """Every test runs over both request paths: aiohttp and the OpenAI SDK's client."""
    monkeypatch.setenv("RAGSAFE_HTTP", request.param)
    return request.param


def chat(llm: LLM, **kw):
    async def go():
        try:
            return await llm.chat(MSG, **kw)
        finally:
            await llm.aclose()

    return asyncio.run(go())


def test_503_then_200_is_one_completion_after_two_attempts():
    with FaultServer(script=["503", "ok"]) as srv:
        comp = chat(LLM(srv.base_url, "fake", backoff_initial=0.01))
        assert comp.attempts == 2
        assert comp.text in "ABCD" and comp.text
        assert srv.requests == 2 and srv.answered == 1 and srv.faults["503"] == 1


def test_400_is_not_retried():
    with FaultServer(status=400) as srv:
        llm = LLM(srv.base_url, "fake", backoff_initial=0.01)
        with pytest.raises(openai.BadRequestError):
            chat(llm)
        assert srv.requests == 1
        assert llm.failed_attempts == 0


def test_unreachable_url_fails_within_seconds_naming_it():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    t0 = time.perf_counter()
    with pytest.raises(EndpointUnreachable) as e:
        chat(LLM(url, "fake", max_retries=3, backoff_initial=0.05, backoff_max=0.5))
    assert time.perf_counter() - t0 < 10
    assert url in str(e.value) and e.value.attempts == 4

    t0 = time.perf_counter()
    with pytest.raises(EndpointUnreachable) as e:
        asyncio.run(LLM(url, "fake").check(timeout=2))
    assert time.perf_counter() - t0 < 5
    assert f"{url}/models" in str(e.value)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_every_transient_fault_is_retried(kind):
    with FaultServer(script=[kind, "ok"], hang=3.0) as srv:
        comp = chat(LLM(srv.base_url, "fake", timeout=0.5, backoff_initial=0.01))
        assert comp.attempts == 2, kind
        assert srv.answered == 1 and srv.faults[kind] == 1


def test_exhausted_retries_raise_request_failed_naming_url_and_fault():
    with FaultServer(script=["500"] * 3) as srv:
        with pytest.raises(RequestFailed) as e:
            chat(LLM(srv.base_url, "fake", max_retries=2, backoff_initial=0.01))
        assert srv.requests == 3
        assert srv.base_url in str(e.value) and "3 attempt" in str(e.value) and "500" in str(e.value)
        assert not isinstance(e.value, EndpointUnreachable)


def test_retry_after_is_honoured():
    with FaultServer(script=["429", "ok"], retry_after="1") as srv:
        t0 = time.perf_counter()
        comp = chat(LLM(srv.base_url, "fake", backoff_initial=0.01, backoff_max=0.05))
        assert comp.attempts == 2
        assert time.perf_counter() - t0 >= 0.95


def test_in_flight_bound_and_replicas_share_load():
    with FaultServer(latency=0.05) as a, FaultServer(latency=0.05) as b:
        llm = LLM(a.base_url, "fake", replicas=[b.base_url], max_in_flight=3, cache=None)

        async def go():
            try:
                return await asyncio.gather(*(llm.chat([{"role": "user", "content": f"q{i}"}]) for i in range(24)))
            finally:
                await llm.aclose()

        out = asyncio.run(go())
        assert len(out) == 24
        assert a.max_in_flight <= 3 and b.max_in_flight <= 3
        assert a.answered >= 6 and b.answered >= 6 and a.answered + b.answered == 24
        assert llm.gate.peak <= 6


def test_a_retry_goes_to_another_replica():
    with FaultServer(status=503) as bad, FaultServer() as good:
        llm = LLM(bad.base_url, "fake", replicas=[good.base_url], backoff_initial=0.01)

        async def go():
            try:
                return await asyncio.gather(*(llm.chat([{"role": "user", "content": f"q{i}"}]) for i in range(10)))
            finally:
                await llm.aclose()

        out = asyncio.run(go())
        assert all(c.attempts <= 2 for c in out)
        assert good.answered == 10


def test_backoff_wait_holds_no_slot():
    """With one slot, a request waiting out a Retry-After must not block the next request."""
    with FaultServer(script=["429"], retry_after="1") as srv:
        llm = LLM(srv.base_url, "fake", max_in_flight=1, backoff_initial=0.01, backoff_max=0.05)
        done: dict[str, float] = {}

        async def one(name: str, delay: float):
            await asyncio.sleep(delay)
            await llm.chat([{"role": "user", "content": name}])
            done[name] = time.perf_counter()

        async def go():
            try:
                await asyncio.gather(one("slow", 0), one("fast", 0.1))
            finally:
                await llm.aclose()

        asyncio.run(go())
        assert done["fast"] < done["slow"]


def test_gate_cancellation_passes_the_turn_on():
    async def go():
        gate = Gate(["http://x"], per_url=1)
        first = await gate.acquire()
        w1 = asyncio.create_task(gate.acquire())
        w2 = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        gate.release(first)  # wakes w1 ...
        w1.cancel()          # ... which is cancelled before it runs: w2 must get the slot
        got = await asyncio.wait_for(w2, 1)
        assert got == "http://x" and gate.busy["http://x"] == 1

    asyncio.run(go())


def test_logprobs_are_parsed_and_a_refusal_falls_back_once():
    with FaultServer() as srv:
        comp = chat(LLM(srv.base_url, "fake"), top_logprobs=4)
        assert comp.top_logprobs and comp.text in comp.top_logprobs and len(comp.top_logprobs) == 4
    with FaultServer(reject_logprobs=True) as srv:
        llm = LLM(srv.base_url, "fake")
        comp = chat(llm, top_logprobs=4)
        assert comp.top_logprobs is None and comp.text and llm.logprobs_supported is False
        assert srv.requests == 2 and llm.failed_attempts == 0


def test_requests_honour_the_proxy_environment(monkeypatch):
    """HTTP_PROXY routes requests through the proxy (looked up once per URL, not per request);
    NO_PROXY sends them straight to the endpoint."""
    with FaultServer() as endpoint, FaultServer() as proxy:
        for var in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        chat(LLM(endpoint.base_url, "fake"))
        assert proxy.answered == 1 and endpoint.requests == 0
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        chat(LLM(endpoint.base_url, "fake"))
        assert endpoint.answered == 1 and proxy.answered == 1


def test_clients_sharing_a_gate_share_connections(http):
    """The clients of one endpoint (one per seed in a sweep) reuse one pool of keep-alive connections."""
    if http != "aiohttp":
        pytest.skip("connection sharing is the aiohttp path's")
    with FaultServer() as srv:
        gate = Gate([srv.base_url], 4)
        a, b = LLM(srv.base_url, "fake", gate=gate, seed=0), LLM(srv.base_url, "fake", gate=gate, seed=1)

        async def go():
            for i in range(3):
                await a.chat([{"role": "user", "content": f"a{i}"}])
                await b.chat([{"role": "user", "content": f"b{i}"}])
            await a.aclose()
            await b.aclose()

        asyncio.run(go())
        assert srv.answered == 6
        assert srv.connections == 1
