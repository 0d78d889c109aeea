"""The content-addressed response cache across runs, variants and self-consistency samples."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
import yaml
from langgraph.graph import END, START, StateGraph

from ragsafe.agents.answer import call_summary
from ragsafe.experiments.store import RunStore
from ragsafe.experiments.sweep import load_sweep, run_sweep
from ragsafe.graphs import State, graph
from ragsafe.llm.cache import SQLiteCache, default_path, open_cache
from tests.fault_server import FaultServer


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChainParams:
    steps: int = 2
    """Sequential LLM calls; each prompt holds the previous reply."""

    def expected_llm_calls(self) -> int:
        return self.steps


@graph("cache_chain_test", params=ChainParams)
def build_chain(deps, params: ChainParams):
    """Test graph: ``steps`` calls in a row, so a longer chain shares a prefix with a shorter one."""

    async def chain(state: State) -> dict:
        q, prev, calls = state["question"], "", []
        for i in range(params.steps):
            msgs = [{"role": "user", "content": f"{q.question}\nstep {i}; previous answer: {prev}"}]
            comp = await deps.llm.chat(msgs, max_tokens=deps.policy.max_tokens, seed=deps.policy.seed)
            prev = comp.text
            calls.append(call_summary(comp.to_record()))
        letter = prev.strip() if prev.strip() in q.options else None
        return {"letter": letter, "answer": {"raw": prev, "letter_dist": None, "source": "parse", "messages": msgs},
                "trace": [{"node": "chain", "llm_calls": calls}]}

    b = StateGraph(State)
    b.add_node("chain", chain)
    b.add_edge(START, "chain")
    b.add_edge("chain", END)
    return b.compile()


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """A cache of this test's own (conftest switches caching off for every other test)."""
    monkeypatch.delenv("RAGSAFE_NO_CACHE", raising=False)
    monkeypatch.setenv("RAGSAFE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def sweep(tmp_path: Path, srv: FaultServer, graphs: list, out: str = "runs", name: str = "s.yaml", **kw) -> Path:
    data = {"benchmark": "demo", "limit": 5, "out": str(tmp_path / out), "seeds": kw.pop("seeds", [0]),
            "endpoints": [{"model": "fake", "base_url": srv.base_url, "concurrency": 4, **kw}], "graphs": graphs}
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def quiet(_msg: str) -> None:
    pass


def test_unchanged_sweep_makes_zero_calls_even_without_its_run_folders(tmp_path, cache_home):
    with FaultServer() as srv:
        p = sweep(tmp_path, srv, ["closed_book", "clean_evidence"], seeds=[0, 1])
        first = run_sweep(load_sweep(p), progress=quiet)
        assert srv.requests == 2 * 2 * 5
        run_sweep(load_sweep(p), progress=quiet)  # records there: nothing to do
        assert srv.requests == 20
        again = run_sweep(load_sweep(p), out=str(tmp_path / "fresh"), progress=quiet)  # no records: all from cache
        assert srv.requests == 20
        for a, b in zip(first, again):
            ra = {(r["variant"], r["question_id"]): r["raw_output"] for r in RunStore(a).samples()}
            rb = {(r["variant"], r["question_id"]): r["raw_output"] for r in RunStore(b).samples()}
            assert ra == rb and len(ra) == 10
            rec = RunStore(b).read_run()
            assert rec["llm_calls_last_session"] == 0 and rec["cache_hits_last_session"] == 10


def test_a_variant_sharing_a_prefix_reuses_those_calls(tmp_path, cache_home):
    with FaultServer() as srv:
        run_sweep(load_sweep(sweep(tmp_path, srv, ["cache_chain_test[steps=2]"])), progress=quiet)
        assert srv.requests == 5 * 2
        run_sweep(load_sweep(sweep(tmp_path, srv, ["cache_chain_test[steps=3]"])), progress=quiet)
        assert srv.requests == 5 * 2 + 5  # only the third step is new


def test_concurrent_variants_send_a_shared_step_once(tmp_path, cache_home):
    with FaultServer(latency=0.05) as srv:
        run_sweep(load_sweep(sweep(tmp_path, srv, ["cache_chain_test[steps=2]", "cache_chain_test[steps=3]"])),
                  progress=quiet)
        assert srv.requests == 5 * 3
        assert max(srv.by_key.values()) == 1


def test_self_consistency_samples_are_cached_per_sample_index(tmp_path, cache_home):
    with FaultServer() as srv:
        def sc(n):
            return [{"name": "self_consistency", "params": {"inner": "closed_book", "n": n, "temperature": 0.7}}]
        run_sweep(load_sweep(sweep(tmp_path, srv, sc(3))), progress=quiet)
        assert srv.requests == 5 * (1 + 3)
        sample_seeds = [b["seed"] for b in srv.bodies if b["temperature"] == 0.7]
        # a seed per (question, sample index): draws are independent across questions
        assert len(set(sample_seeds)) == 5 * 3 and len(sample_seeds) == 5 * 3
        run_sweep(load_sweep(sweep(tmp_path, srv, sc(5))), progress=quiet)
        assert srv.requests == 5 * (1 + 3) + 5 * 2  # samples 3 and 4 are new; the rest come from the cache


def test_no_cache_and_refresh_cache(tmp_path, cache_home):
    with FaultServer() as srv:
        p = sweep(tmp_path, srv, ["closed_book"])
        run_sweep(load_sweep(p), cache="off", progress=quiet)
        assert srv.requests == 5
        assert not default_path().exists() or len(SQLiteCache(default_path())) == 0
        run_sweep(load_sweep(p), cache="refresh", out=str(tmp_path / "r1"), progress=quiet)
        assert srv.requests == 10 and len(SQLiteCache(default_path())) == 5  # asked again, written
        run_sweep(load_sweep(p), cache="refresh", out=str(tmp_path / "r2"), progress=quiet)
        assert srv.requests == 15 and len(SQLiteCache(default_path())) == 5  # overwritten, not added
        run_sweep(load_sweep(p), out=str(tmp_path / "r3"), progress=quiet)
        assert srv.requests == 15  # read back
        run_sweep(load_sweep(p), cache="off", out=str(tmp_path / "r4"), progress=quiet)
        assert srv.requests == 20


def test_cache_key_covers_model_messages_params_and_seed(tmp_path, cache_home):
    from ragsafe.llm.client import LLM, run_sync
    with FaultServer(models=("fake", "other")) as srv:
        async def ask(llm, **kw):
            try:
                return await llm.chat([{"role": "user", "content": kw.pop("text", "hi")}], **kw)
            finally:
                await llm.aclose()

        cache = open_cache()
        run_sync(ask(LLM(srv.base_url, "fake", cache=cache)))
        run_sync(ask(LLM(srv.base_url, "fake", cache=cache)))
        assert srv.requests == 1
        for kw in ({"seed": 5}, {"temperature": 0.7}, {"max_tokens": 11}, {"text": "other"}):
            run_sync(ask(LLM(srv.base_url, "fake", cache=cache), **kw))
        run_sync(ask(LLM(srv.base_url, "other", cache=cache)))
        assert srv.requests == 6


def test_api_key_is_never_written(tmp_path, cache_home, monkeypatch):
    secret = "sk-test-do-not-store-4f9a"
    monkeypatch.setenv("RAGSAFE_TEST_KEY", secret)
    with FaultServer() as srv:
        run_sweep(load_sweep(sweep(tmp_path, srv, ["closed_book"], api_key_env="RAGSAFE_TEST_KEY")), progress=quiet)
        assert srv.requests == 5
    files = [f for f in list((tmp_path / "runs").rglob("*")) + list(cache_home.rglob("*")) if f.is_file()]
    assert any(f.name == "responses.sqlite" for f in files)
    for f in files:
        assert secret.encode() not in f.read_bytes(), f
    db = sqlite3.connect(str(default_path()))
    assert all(secret not in v for (v,) in db.execute("SELECT value FROM responses"))
