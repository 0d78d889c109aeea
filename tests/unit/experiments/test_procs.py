"""``--procs N``: the questions split over worker processes give the run folder, records and summary one
process gives; a killed worker loses nothing finished; every worker stops with its parent."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ragsafe.config import ConfigError, EndpointConfig
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.procs import parse_procs, run, split_total
from ragsafe.experiments.store import RunStore
from tests.fault_server import FaultServer
from tests.paths import ROOT
from tests.procs import alive, wait_gone, workers_of
from tests.unit.experiments.test_run_faults import (  # noqa: F401  (process_server: a fixture)
    ProcessServer,
    killing_at,
    local_cfg,
    process_server,
)

GRAPHS = ["closed_book", "clean_evidence", "conflict_evidence", "self_consistency[inner=closed_book,n=3]"]

TIMING = {"seconds", "latency_s", "finished_at", "started_at"}
"""Keys whose values are clock readings."""
HOW_SENT = {"batch"}
"""How a sampling call went out: whether the server takes ``n`` is learnt once per process, so each
worker's first self-consistency request may try ``n`` again (the samples it returns are the same)."""


def timeless(x):
    """A record or summary without its clock readings."""
    if isinstance(x, dict):
        return {k: timeless(v) for k, v in x.items() if k not in TIMING | HOW_SENT}
    if isinstance(x, list):
        return [timeless(v) for v in x]
    return x


def by_key(d: Path) -> dict:
    return {(r["variant"], r["question_id"]): r for r in map(json.loads, (d / "samples.jsonl").read_text().splitlines())}


def summary_without_timing(d: Path) -> dict:
    s = json.loads((d / "summary.json").read_text())
    s.pop("scored_with")  # the byte size of samples.jsonl, whose clock readings differ in length
    s["run"].pop("path")
    for v in s["variants"].values():
        v["cost"].pop("seconds")
    return timeless(s)


def cfg(srv, out: Path, procs: int, **kw) -> RunConfig:
    return RunConfig(**{"graphs": GRAPHS, "limit": 12, "out": str(out), "cache": "off", "concurrency": 4,
                        "procs": procs, "endpoint": EndpointConfig(base_url=srv.base_url, model="fake"), **kw})


def test_procs_2_gives_the_folder_records_and_summary_of_procs_1(tmp_path):
    with FaultServer(latency=0.01) as srv:
        one = run(cfg(srv, tmp_path / "one", 1), progress=lambda m: None)
        asked_one = srv.requests
        lines: list[str] = []
        two = run(cfg(srv, tmp_path / "two", 2), progress=lines.append)
        assert srv.requests - asked_one == asked_one  # every request once, none twice
        assert one.name == two.name  # the same config hash names the same folder
        a, b = by_key(one), by_key(two)
        assert len(a) == 12 * len(GRAPHS) and a.keys() == b.keys()
        for k in a:
            assert timeless(a[k]) == timeless(b[k]), k
        assert summary_without_timing(one) == summary_without_timing(two)
        assert any("starting 2 worker processes" in m for m in lines), lines
        rec = RunStore(two).read_run()
        assert rec["procs_last_session"]["workers"] == 2
        assert sorted(rec["procs_last_session"]["worker_questions"]) == [6 * len(GRAPHS)] * 2
        assert rec["llm_calls_last_session"] == asked_one  # the workers' calls, summed by the parent
        assert rec["finished_at"] and rec["execute_cpu_seconds_last_session"] > 0

        # either resumes the other: --procs 1 finds nothing to do in a --procs 2 folder ...
        n = srv.requests
        run(cfg(srv, tmp_path / "two", 1), progress=lambda m: None)
        assert srv.requests == n
        # ... and --procs 2 answers exactly what a --procs 1 folder lacks
        p = one / "samples.jsonl"
        kept = p.read_text().splitlines(keepends=True)
        p.write_text("".join(kept[:-10]))
        run(cfg(srv, tmp_path / "one", 2), progress=lambda m: None)
        after = by_key(one)
        assert len(p.read_text().splitlines()) == len(after) == len(a)
        for k in a:
            assert timeless(after[k]) == timeless(a[k]), k


def test_a_sweep_with_procs_gives_the_records_of_one_process(tmp_path):
    from ragsafe.cli.main import main

    with FaultServer(latency=0.01) as srv:
        def sweep(name: str, **extra) -> Path:
            f = tmp_path / f"{name}.yaml"
            f.write_text(yaml.safe_dump({"benchmark": "demo", "limit": 6, "seeds": [0, 1], "out": str(tmp_path / name),
                                         "graphs": ["closed_book", "clean_evidence"],
                                         "endpoints": [{"model": "fake", "base_url": srv.base_url, "concurrency": 2}],
                                         **extra}))
            return f

        assert main(["sweep", str(sweep("one")), "--no-cache"]) == 0
        assert main(["sweep", str(sweep("file", procs=2)), "--no-cache"]) == 0
        assert main(["sweep", str(sweep("flag")), "--no-cache", "--procs", "2"]) == 0
        assert srv.max_in_flight <= 2  # the endpoint's concurrency is a total over the processes
    folders = {name: sorted((tmp_path / name).glob("run-*")) for name in ("one", "file", "flag")}
    assert len(folders["one"]) == 2
    for name in ("file", "flag"):
        assert [d.name for d in folders[name]] == [d.name for d in folders["one"]]
        for d1, d2 in zip(folders["one"], folders[name]):
            a, b = by_key(d1), by_key(d2)
            assert len(a) == 12 and {k: timeless(r) for k, r in a.items()} == {k: timeless(r) for k, r in b.items()}
            assert RunStore(d2).read_run()["procs_last_session"]["workers"] == 2


def test_concurrency_is_a_total_over_the_processes(tmp_path):
    assert split_total(8, 3) == [3, 3, 2] and split_total(None, 2) == [None, None]
    with FaultServer(latency=0.05) as srv:
        run(cfg(srv, tmp_path, 2, graphs=["closed_book"], limit=40, concurrency=4), progress=lambda m: None)
        assert 2 < srv.max_in_flight <= 4  # both workers busy at once, never more than the total


def test_fewer_workers_than_questions_in_flight_are_not_started(tmp_path):
    lines: list[str] = []
    with FaultServer() as srv:
        d = run(cfg(srv, tmp_path, 3, graphs=["closed_book"], limit=5, concurrency=1), progress=lines.append)
    assert any("--procs 3: 1 worker process(es) (endpoint fake allows 1 in flight)" in m for m in lines), lines
    assert len(by_key(d)) == 5 and "procs_last_session" not in RunStore(d).read_run()


@pytest.mark.parametrize("value", ["0", "x", "-2", "1.5", ""])
def test_a_bad_procs_value_is_one_line_naming_the_fix(value, capsys, tmp_path):
    from ragsafe.cli.main import main

    rc = main(["run", "--graph", "closed_book", "--procs", value, "--base-url", "http://127.0.0.1:9/v1",
               "--model", "fake", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "Traceback" not in err
    assert err.startswith("ragsafe: error: --procs") and "whole number" in err and "auto" in err


def test_procs_values(tmp_path, capsys):
    assert parse_procs("auto") == (os.cpu_count() or 1) and parse_procs("3") == 3 and parse_procs(2) == 2
    with pytest.raises(ConfigError):
        parse_procs(True)
    from ragsafe.cli.main import main

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"procs": 0, "endpoints": [{"model": "fake", "base_url": "http://127.0.0.1:9/v1"}],
                                 "graphs": ["closed_book"]}))
    assert main(["sweep", str(f), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{f}: procs: expected a whole number" in err and "procs: auto" in err
    f.write_text(f.read_text().replace("procs: 0", "procs: auto"))
    assert main(["sweep", str(f), "--dry-run", "--procs", "zero"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ragsafe: error: --procs 'zero': expected a whole number") and "\n" not in err


# --------------------------------------------------------------------------------------------
# processes: a killed worker, a stopped parent


def start_cli(srv: FaultServer, tmp_path: Path, log: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAGSAFE_HOME": str(tmp_path / "home")}
    return subprocess.Popen([sys.executable, "-m", "ragsafe.cli", "run", "--graph", "closed_book", "--graph",
                             "clean_evidence", "--limit", "40", "--concurrency", "4", "--procs", "2", "--no-cache",
                             "--base-url", srv.base_url, "--model", "fake", "--out", str(tmp_path / "runs"), *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(log, "ab"), stdin=subprocess.DEVNULL)


def wait_for_records(proc: subprocess.Popen, out: Path, n: int, timeout: float = 120) -> list[int]:
    """The workers of ``proc`` once ``n`` records are on disk."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        files = list(out.glob("run-*/samples.jsonl"))
        if files and len(files[0].read_bytes().splitlines()) >= n:
            return workers_of(proc.pid)
        time.sleep(0.02)
    raise AssertionError(f"no {n} records within {timeout}s (exit {proc.poll()})")


def whole_records(out: Path) -> list[dict]:
    (d,) = out.glob("run-*")
    raw = (d / "samples.jsonl").read_bytes()
    assert raw.endswith(b"\n"), "a torn record was left behind"
    return [json.loads(x) for x in raw.splitlines()]


def test_a_killed_worker_loses_nothing_and_the_same_command_completes(tmp_path):
    out, log = tmp_path / "runs", tmp_path / "run.log"
    with FaultServer(latency=0.05) as srv:
        proc = start_cli(srv, tmp_path, log)
        try:
            workers = wait_for_records(proc, out, 10)
            assert len(workers) == 2, workers
            os.kill(workers[0], signal.SIGKILL)
            assert proc.wait(120) == 1, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert wait_gone(workers) == []
        err = log.read_text()
        assert re.search(r"worker process \d of 2 \(pid \d+\)[^\n]*killed by SIGKILL", err), err[-3000:]
        assert "run the same command to resume" in err and "Traceback" not in err
        kept = whole_records(out)
        assert 10 <= len(kept) < 80 and len({(r["variant"], r["question_id"]) for r in kept}) == len(kept)
        n = srv.requests
        proc = start_cli(srv, tmp_path, log)
        assert proc.wait(120) == 0, log.read_text()[-3000:]
        assert srv.requests - n == 80 - len(kept)  # only what was missing is asked
    recs = whole_records(out)
    assert len(recs) == 80 == len({(r["variant"], r["question_id"]) for r in recs})
    assert all(r["error"] is None for r in recs)
    (d,) = out.glob("run-*")
    assert RunStore(d).read_summary()["variants"]["closed_book"]["metrics"]


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_no_worker_outlives_its_parent(tmp_path, sig):
    out, log = tmp_path / "runs", tmp_path / "run.log"
    with FaultServer(latency=0.05) as srv:
        proc = start_cli(srv, tmp_path, log)
        try:
            workers = wait_for_records(proc, out, 4)
            assert len(workers) == 2 and all(alive(p) for p in workers)
            proc.send_signal(getattr(signal, sig))
            rc = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert wait_gone(workers, timeout=15) == [], f"{sig}: worker(s) left running"
        if sig == "SIGKILL":
            assert rc == -signal.SIGKILL
            return
        assert rc == 128 + getattr(signal, sig), log.read_text()[-3000:]
        assert "finished records are kept" in log.read_text()
        kept = whole_records(out)
        if sig != "SIGTERM":
            return
        proc = start_cli(srv, tmp_path, log)
        assert proc.wait(120) == 0, log.read_text()[-3000:]
    recs = whole_records(out)
    assert len(recs) == 80 == len({(r["variant"], r["question_id"]) for r in recs}) and len(kept) < 80


@pytest.mark.usefixtures("process_server")
def test_an_embedded_server_killed_mid_run_is_restarted_and_every_worker_asks_again(tmp_path):
    """The parent restarts the one server; the workers' questions that failed while it was down are asked again."""
    lines: list[str] = []
    cfg_ = dataclasses.replace(local_cfg(tmp_path, 30), procs=2, concurrency=4)
    d = run(cfg_, progress=killing_at({10}, lines))
    recs = RunStore(d).samples()
    assert len(recs) == 60 and all(r["error"] is None for r in recs), [r["error"] for r in recs if r["error"]]
    rec = RunStore(d).read_run()
    assert rec["endpoint"]["server_restarts_last_session"] == 1 and rec["procs_last_session"]["workers"] == 2
    assert any("embedded server died" in m and "restarting" in m for m in lines)
    assert len(ProcessServer.instances) == 1 and not ProcessServer.instances[0].alive()
