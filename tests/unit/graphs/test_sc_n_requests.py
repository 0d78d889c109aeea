"""Self-consistency through servers with and without ``n``: requests per question, same ballots."""

from __future__ import annotations

import asyncio

from ragsafe.config import AnswerPolicy
from ragsafe.corpora.schema import Question
from ragsafe.graphs import Deps, graphs
from ragsafe.llm.client import LLM
from tests.fault_server import FaultServer, default_reply

QS = [Question(id=f"q{j}", question=f"Which sign {j}?", options={"A": "a", "B": "b", "C": "c", "D": "d"},
               answer="B") for j in range(3)]


def ballots(srv: FaultServer) -> list[list]:
    spec = graphs.get("self_consistency")
    app = spec.build(Deps(llm=LLM(srv.base_url, "fake"), policy=AnswerPolicy(seed=0)), spec.make_params({"n": 20}))
    out = []
    for q in QS:
        st = asyncio.run(app.ainvoke({"question": q, "queries": [], "trace": []}))
        out.append(st["sc"]["ballots"])
        assert len(set(st["sc"]["seeds"])) == 20
    return out


def test_sc_sends_one_request_per_question_where_n_works_and_the_ballots_match():
    with FaultServer(flavor="vllm", reply=default_reply) as srv:
        with_n = ballots(srv)
        assert srv.requests == len(QS) * 2  # greedy + one n=20 request per question
        assert sorted(b.get("n", 1) for b in srv.bodies) == [1] * 3 + [20] * 3
    with FaultServer(flavor="llamacpp", reply=default_reply) as srv:
        without = ballots(srv)
        # greedy + the n request that came back with one choice + 19 singles; then 20 singles per question
        assert srv.requests == len(QS) * 21
    assert with_n == without
    assert len({tuple(b) for b in with_n}) == len(QS)  # questions drew independently
