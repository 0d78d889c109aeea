"""The runner: run folders, resume, record fields, interleaving, progress lines."""

from __future__ import annotations

import dataclasses

import pytest
from langgraph.graph import END, START, StateGraph

from ragsafe.config import EndpointConfig
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.execute import Cell, interleave, run
from ragsafe.experiments.plan import prepare
from ragsafe.experiments.progress import CellLog, QuestionLog, RichCells
from ragsafe.experiments.store import RunStore
from ragsafe.graphs import State, graph
from ragsafe.records import SampleRecord
from tests.fault_server import FaultServer

RECORD_FIELDS = {"schema_version", "variant", "graph", "params", "question_id", "answer_key", "seed", "letter",
                 "correct", "raw_output", "letter_dist", "answer_source", "messages", "queries", "retrieved",
                 "trace", "error", "seconds", "finished_at"}


def cfg_for(srv: FaultServer, tmp_path, **kw) -> RunConfig:
    return RunConfig(**{"graphs": ["closed_book", "clean_evidence"], "limit": 5, "out": str(tmp_path / "runs"),
                        "cache": "off", "endpoint": EndpointConfig(base_url=srv.base_url, model="fake"), **kw})


def test_run_writes_a_folder_and_resumes_without_calls(tmp_path):
    with FaultServer() as srv:
        cfg = cfg_for(srv, tmp_path)
        d = run(cfg, progress=lambda m: None)
        assert srv.requests == 10
        recs = RunStore(d).samples()
        assert len(recs) == 10 and all(set(r) == RECORD_FIELDS for r in recs)
        rec = RunStore(d).read_run()
        assert rec["config_hash"].startswith(d.name[4:]) and rec["llm_calls_last_session"] == 10
        assert d == run(cfg, progress=lambda m: None)
        assert srv.requests == 10
        # a new variant is a new config: its own folder
        d2 = run(cfg_for(srv, tmp_path, graphs=["closed_book"]), progress=lambda m: None)
        assert d2 != d and srv.requests == 15


def test_concurrency_bounds_questions_in_flight(tmp_path):
    with FaultServer(latency=0.05) as srv:
        run(cfg_for(srv, tmp_path, limit=12, concurrency=3), progress=lambda m: None)
        assert srv.max_in_flight == 3


@dataclasses.dataclass(frozen=True, kw_only=True)
class BoomParams:
    after: int = 2


@graph("runner_boom_test", params=BoomParams)
def build_boom(deps, params: BoomParams):
    """Test graph: a programming error on one question."""
    seen = []

    async def node(state: State) -> dict:
        seen.append(1)
        if len(seen) > params.after:
            raise TypeError("a bug, not a fault")
        comp = await deps.llm.chat([{"role": "user", "content": state["question"].question}])
        return {"letter": comp.text, "answer": {"raw": comp.text}}

    b = StateGraph(State)
    b.add_node("n", node)
    b.add_edge(START, "n")
    b.add_edge("n", END)
    return b.compile()


def test_a_programming_error_stops_the_run_and_keeps_what_finished(tmp_path):
    with FaultServer() as srv:
        cfg = cfg_for(srv, tmp_path, graphs=["runner_boom_test"])
        with pytest.raises(TypeError, match="a bug"):
            run(cfg, progress=lambda m: None)
        d = prepare(cfg).run_dir
        recs = RunStore(d).samples()
        assert len(recs) == 2 and all(r["error"] is None for r in recs)


def _cells(n_cells: int, sizes: list[int]) -> list[Cell]:
    return [Cell(label=f"c{i}", job=None, variant=None, app=None, deps=None, todo=list(range(s)))
            for i, s in zip(range(n_cells), sizes)]


def test_interleave_round_robins_cells_question_by_question():
    a, b, c = _cells(3, [3, 1, 2])
    order = [(cell.label, q) for cell, q in interleave([a, b, c])]
    assert order == [("c0", 0), ("c1", 0), ("c2", 0), ("c0", 1), ("c2", 1), ("c0", 2)]


def test_progress_lines_carry_rate_and_eta():
    lines = []
    a, b = _cells(2, [4, 4])
    log = CellLog(lines.append, interval=0.0)
    log.start([a, b])
    for cell in (a, b, a, a):
        log.advance(cell, SampleRecord(variant="v", question_id="q", error=None))
    log.advance(a, SampleRecord(variant="v", question_id="q", error={"type": "RequestFailed"}))
    status = [x for x in lines if x.startswith("[")]
    assert status and "q/s" in status[-1] and "ETA" in status[-1]
    assert any(x.startswith("done c0: 4/4, 1 errors") for x in lines)
    q = []
    ql = QuestionLog(q.append)
    ql.start([a])
    ql.advance(a, SampleRecord(variant="v", error=None, correct=True, letter="B", question_id="x1", seconds=0.2))
    assert q == ["[1/4] c0 x1: B (ok, 0.2s)"]


def test_rich_table_redraws_at_most_every_interval_and_ends_up_to_date():
    import io

    from rich.console import Console

    out = io.StringIO()
    a, b = _cells(2, [60, 40])
    bars = RichCells(console=Console(file=out, force_terminal=True, width=100), min_interval=3600.0)
    bars.start([a, b])
    for i in range(60):
        bars.advance(a, SampleRecord(variant="v", question_id=f"a{i}", error={"type": "RequestFailed"} if i == 7 else None))
        if i < 40:
            bars.advance(b, SampleRecord(variant="v", question_id=f"b{i}", error=None))
    assert bars.redraws == 1  # the last question only: nothing in between within the interval
    bars.close()
    text = out.getvalue()
    assert "60/60" in text and "40/40" in text and "1 err" in text
    busy = RichCells(console=Console(file=io.StringIO(), force_terminal=True, width=100), min_interval=0.0)
    busy.start(_cells(1, [5]))
    for i in range(5):
        busy.advance(busy.cells[0], SampleRecord(variant="v", question_id=f"q{i}", error=None))
    assert busy.redraws == 5  # with no interval, every question redraws


def test_lean_gc_restores_the_collector_even_after_an_error():
    import gc

    from ragsafe.experiments.execute import lean_gc
    before = gc.get_threshold()
    with pytest.raises(RuntimeError):
        with lean_gc(gen0=12345):
            assert gc.get_threshold()[0] == max(before[0], 12345)
            assert gc.get_freeze_count() > 0
            raise RuntimeError("boom")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_run_record_names_the_sc_seed_rule_and_questions_get_their_own_seeds(tmp_path):
    with FaultServer() as srv:
        d = run(cfg_for(srv, tmp_path, graphs=["self_consistency[n=2]", "closed_book"], limit=3),
                progress=lambda m: None)
        rule = RunStore(d).read_run()["seeds"]["sc_sample_seeds"]
        assert list(rule) == ["self_consistency[n=2]"] and rule["self_consistency[n=2]"]["rule"] == "per_question_block"
        sc = [r["sc"] for r in RunStore(d).samples() if r["graph"] == "self_consistency"]
        assert len({tuple(s["seeds"]) for s in sc}) == 3 and all(s["seed_rule"] == "per_question_block" for s in sc)
