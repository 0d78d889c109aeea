"""`ragsafe run --procs 2` against the real llama.cpp server (smollm2-135m) and a real Chroma store:
one embedded server for the whole run, started by the parent and shared by its workers; one record
per (variant, question); nothing left running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import E2E_MODEL
from tests.paths import ROOT
from tests.procs import servers_of, wait_gone, workers_of

pytestmark = pytest.mark.e2e


def _cli(tmp_path, *args: str) -> tuple[subprocess.Popen, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAGSAFE_HOME": os.environ["RAGSAFE_HOME"], "RAGSAFE_NO_CACHE": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ragsafe.cli", "run", "--benchmark", "demo", "--procs", "2",
                             "--out", str(tmp_path / "runs"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    return proc, lines


def _records(tmp_path) -> list[dict]:
    (d,) = (tmp_path / "runs").iterdir()
    return [json.loads(x) for x in (d / "samples.jsonl").read_text().splitlines()]


def test_procs_2_shares_one_embedded_server(tmp_path):
    """base-url local: the parent starts the one server; the workers start none."""
    proc, lines = _cli(tmp_path, "--model", E2E_MODEL, "--graph", "closed_book", "--limit", "6",
                       "--concurrency", "2", "--timeout", "300")
    seen_servers, seen_workers, worker_servers = set(), set(), set()
    try:
        while proc.poll() is None:
            seen_servers.update(servers_of(proc.pid))
            for w in workers_of(proc.pid):
                seen_workers.add(w)
                worker_servers.update(servers_of(w))
            time.sleep(0.1)
        assert proc.wait(600) == 0, "".join(lines)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(seen_servers) == 1 and not worker_servers, (seen_servers, worker_servers)
    assert len(seen_workers) == 2
    assert wait_gone(list(seen_servers | seen_workers)) == []
    recs = _records(tmp_path)
    assert len(recs) == 6 == len({r["question_id"] for r in recs}) and all(r["error"] is None for r in recs)
    assert any("starting 2 worker processes" in ln for ln in lines)


def test_procs_2_over_a_real_server_and_chroma(tmp_path, llm_server):
    """A retrieval graph in two workers: both search the index the parent built, every record is whole."""
    proc, lines = _cli(tmp_path, "--base-url", llm_server.base_url, "--model", E2E_MODEL, "--graph", "closed_book",
                       "--graph", "standard_rag[k=2]", "--limit", "4", "--concurrency", "2", "--timeout", "300")
    try:
        assert proc.wait(600) == 0, "".join(lines)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    recs = _records(tmp_path)
    assert len({(r["variant"], r["question_id"]) for r in recs}) == len(recs) == 8
    assert all(r["error"] is None for r in recs)
    rag = [r for r in recs if r["variant"] == "standard_rag[k=2]"]
    assert all(len(r["retrieved"]) == 2 and r["retrieved"][0]["chunk_id"] for r in rag)
    (d,) = (tmp_path / "runs").iterdir()
    run = json.loads((d / "run.json").read_text())
    assert run["procs_last_session"]["workers"] == 2 and run["finished_at"]
    summary = json.loads((d / "summary.json").read_text())
    assert summary["variants"]["standard_rag[k=2]"]["n"] == 4
