"""Reasoning models: the paper's 4096-token budget from one endpoint setting, cut-offs counted."""

from __future__ import annotations

import yaml

from ragsafe.cli.main import build_parser
from ragsafe.cli.run import answer_policy_of as _answer_policy
from ragsafe.config import AnswerPolicy, EndpointConfig
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.execute import run
from ragsafe.experiments.plan import plan
from ragsafe.experiments.store import RunStore
from ragsafe.experiments.sweep import load_sweep
from tests.fault_server import FaultServer

THOUGHTS = "The crescent shape crosses the sutures, which points to one option. " * 30


def reasoner(body: dict) -> dict:
    """A reasoning model behind vLLM's reasoning parser: thinks (in its own field), then answers."""
    if body["max_tokens"] < 200:
        return {"content": "", "reasoning": THOUGHTS[: body["max_tokens"] * 4], "finish_reason": "length"}
    return {"content": "B", "reasoning": THOUGHTS}


def test_reasoning_flag_gives_the_paper_budget_unless_max_tokens_is_given():
    ap = build_parser()
    base = ["run", "--graph", "closed_book"]
    assert _answer_policy(ap.parse_args(base)).max_tokens == 10
    p = _answer_policy(ap.parse_args(base + ["--reasoning"]))
    assert p.max_tokens == 4096 and p.reasoning
    assert _answer_policy(ap.parse_args(base + ["--reasoning", "--max-tokens", "512"])).max_tokens == 512
    # a policy without reasoning hashes as before (old run folders keep their names)
    assert "reasoning" not in AnswerPolicy().identity() and AnswerPolicy(reasoning=True).identity()["reasoning"]


def test_sweep_endpoint_setting_reasoning(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"graphs": ["closed_book"], "endpoints": [
        {"model": "r1", "base_url": "http://127.0.0.1:9/v1", "reasoning": True},
        {"model": "plain", "base_url": "http://127.0.0.1:9/v1"}]}))
    eps = {e.name: e for e in load_sweep(p).endpoints}
    assert eps["r1"].policy.max_tokens == 4096 and eps["r1"].policy.reasoning
    assert eps["plain"].policy.max_tokens == 10


def test_cut_off_answers_are_recorded_and_counted_and_the_budget_fixes_them(tmp_path):
    with FaultServer(flavor="vllm", reply=reasoner) as srv:
        ep = EndpointConfig(base_url=srv.base_url, model="fake")
        short = RunConfig(graphs=["closed_book"], limit=4, out=str(tmp_path / "a"), cache="off", endpoint=ep)
        d = run(short, progress=lambda m: None)
        recs = RunStore(d).samples()
        assert all(r["letter"] is None for r in recs)
        calls = [c for r in recs for t in r["trace"] if t.get("role") == "answer" for c in t["llm_calls"]]
        assert [c["finish_reason"] for c in calls] == ["length"] * 4
        cell = RunStore(d).read_summary()["variants"]["closed_book"]
        assert cell["length_cutoffs"] == {"calls": 4, "questions": 4}
        long = RunConfig(graphs=["closed_book"], limit=4, out=str(tmp_path / "b"), cache="off", endpoint=ep,
                         answer=AnswerPolicy(max_tokens=4096, reasoning=True))
        assert plan(long)["config_hash"] != plan(short)["config_hash"]
        d2 = run(long, progress=lambda m: None)
        recs = RunStore(d2).samples()
        assert [r["letter"] for r in recs] == ["B"] * 4 and all(r["reasoning"] == THOUGHTS for r in recs)
        assert all(r["trace"][-1]["llm_calls"][0]["reasoning_tokens"] > 0 for r in recs)
        assert "length_cutoffs" not in RunStore(d2).read_summary()["variants"]["closed_book"]
        assert RunStore(d2).read_run()["endpoint"]["reasoning"] is True
