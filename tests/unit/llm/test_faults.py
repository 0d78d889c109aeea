"""Sweeps through injected faults: every sample is answered or marked error, never silently wrong."""

from __future__ import annotations

from pathlib import Path

import yaml

from ragsafe.config import EndpointConfig

from ragsafe.experiments.config import RunConfig

from ragsafe.experiments.execute import run
from ragsafe.experiments.store import RunStore
from ragsafe.experiments.sweep import load_sweep, run_sweep
from tests.fault_server import FAULT_KINDS, FaultServer

GRAPHS = ["closed_book", "clean_evidence", "conflict_evidence"]


def sweep_file(tmp_path: Path, srv: FaultServer, name: str, **ep) -> Path:
    data = {"benchmark": "demo", "limit": 24, "seeds": [0, 1], "out": str(tmp_path / name), "graphs": GRAPHS,
            "endpoints": [{"model": "fake", "base_url": srv.base_url, "concurrency": 8, "timeout": 0.5,
                           "backoff_initial": 0.01, "backoff_max": 0.05, **ep}]}
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def records(dirs: list[Path]) -> dict:
    out = {}
    for d in dirs:
        seed = RunStore(d).read_run()["seeds"]["llm"]
        for r in RunStore(d).samples():
            out[(seed, r["variant"], r["question_id"])] = r
    return out


def quiet(_msg: str) -> None:
    pass


def test_twenty_percent_faults_give_the_fault_free_answers(tmp_path):
    with FaultServer() as clean:
        want = records(run_sweep(load_sweep(sweep_file(tmp_path, clean, "clean")), cache="off", progress=quiet))
    with FaultServer(fault_rate=0.2, kinds=FAULT_KINDS, hang=1.0, seed=7) as faulty:
        dirs = run_sweep(load_sweep(sweep_file(tmp_path, faulty, "faulty")), cache="off", progress=quiet)
        got = records(dirs)
        injected = sum(faulty.faults.values())
    assert len(want) == len(got) == 2 * 3 * 24
    assert injected >= 0.1 * faulty.requests  # the faults really happened
    assert set(faulty.faults) == set(FAULT_KINDS)
    answered = 0
    for key, rec in got.items():
        if rec["error"] is None:
            answered += 1
            assert rec["letter"] == want[key]["letter"] and rec["raw_output"] == want[key]["raw_output"], key
            assert rec["correct"] == want[key]["correct"]
        else:
            assert rec["letter"] is None and rec["error"]["type"] in ("RequestFailed", "EndpointUnreachable")
            assert "attempt" in rec["error"]["message"]
    assert answered >= 0.95 * len(got)
    # retried attempts show in the trace of answered samples
    attempts = [c["attempts"] for r in got.values() if r["trace"] for t in r["trace"] for c in t.get("llm_calls") or []]
    assert max(attempts) >= 2
    # summaries: a variant with errors gets no metrics unless errors are allowed
    for d in dirs:
        summary = RunStore(d).read_summary()
        for label, cell in summary["variants"].items():
            if cell["errors"]:
                assert "metrics" not in cell and "error samples" in cell["status"]
            else:
                assert "metrics" in cell


def test_failed_requests_become_error_samples_and_block_metrics(tmp_path):
    out = tmp_path / "runs"
    ep = dict(model="fake", max_retries=0)
    with FaultServer(fault_rate=0.5, kinds=("500", "503", "drop"), seed=3) as bad:
        cfg = RunConfig(graphs=["closed_book", "clean_evidence"], limit=20, out=str(out), cache="off",
                        endpoint=EndpointConfig(base_url=bad.base_url, **ep), concurrency=4)
        d = run(cfg, progress=quiet)
    recs = RunStore(d).samples()
    errors = {(r["variant"], r["question_id"]) for r in recs if r["error"]}
    assert 0 < len(errors) < len(recs) == 40
    summary = RunStore(d).read_summary()
    assert any("error samples" in c["status"] for c in summary["variants"].values())
    # --allow-errors: metrics with errors counted as null
    from ragsafe.experiments.execute import score_run
    allowed = score_run(d, allow_errors=True)
    assert all("metrics" in c for c in allowed["variants"].values())
    for r in recs:
        if r["error"]:
            assert r["letter"] is None and r["trace"] is None and r["error"]["message"]


def test_retry_errors_reruns_only_errored_samples(tmp_path):
    ep = {"concurrency": 4, "max_retries": 0}
    with FaultServer() as srv:
        srv.fault_rate, srv.kinds = 0.4, ("500", "drop")
        p = sweep_file(tmp_path, srv, "runs", **ep)
        dirs = run_sweep(load_sweep(p), cache="off", progress=quiet)
        first = records(dirs)
        errors = [k for k, r in first.items() if r["error"]]
        assert errors
        srv.fault_rate = 0.0
        srv.reset_counts()
        run_sweep(load_sweep(p), cache="off", progress=quiet)  # resume: errors are kept
        assert srv.requests == 0
        run_sweep(load_sweep(p), cache="off", retry_errors=True, progress=quiet)
        assert srv.requests == len(errors)
    final = records(dirs)
    assert all(r["error"] is None for r in final.values())
    for k, r in first.items():
        if not r["error"]:
            assert final[k] == r  # answered records untouched
    for d in dirs:
        assert RunStore(d).line_count() == len(RunStore(d).samples())  # one line per key after compaction
        assert all("metrics" in c for c in RunStore(d).read_summary()["variants"].values())


def test_fault_server_truncates_streams_mid_answer():
    import asyncio

    import openai

    async def stream(srv: FaultServer) -> str:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        out = ""
        try:
            chunks = await client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "q"}],
                                                          stream=True)
            async for ch in chunks:
                out += (ch.choices[0].delta.content or "") if ch.choices else ""
            return out
        finally:
            await client.close()

    with FaultServer(reply=lambda body: "ABCDEFGHIJ") as srv:
        assert asyncio.run(stream(srv)) == "ABCDEFGHIJ"
    with FaultServer(script=["truncate"], reply=lambda body: "ABCDEFGHIJ") as srv:
        try:
            got = asyncio.run(stream(srv))
        except openai.APIConnectionError:
            got = None
        assert got != "ABCDEFGHIJ" and srv.answered == 0 and srv.faults["truncate"] == 1
