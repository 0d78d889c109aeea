"""Every process ragsafe starts, ragsafe stops: a real `ragsafe run` with the embedded llama.cpp
server (smollm2-135m) is signalled mid-run, and no server process may remain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests.paths import ROOT
from tests.procs import servers_of, wait_gone

pytestmark = pytest.mark.e2e


def _start_run(tmp_path, *extra: str) -> tuple[subprocess.Popen, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAGSAFE_HOME": str(tmp_path / "home"), "RAGSAFE_NO_CACHE": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "ragsafe.cli", "run", "--model", "smollm2-135m", "--benchmark", "demo",
           "--out", str(tmp_path / "runs"), *extra]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    lines: list[str] = []

    def pump() -> None:
        for line in proc.stderr:
            lines.append(line)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def _wait_for(lines: list[str], proc: subprocess.Popen, needle: str, timeout: float = 900.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(needle in ln for ln in lines):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"never saw {needle!r}; stderr:\n{''.join(lines)[-3000:]}")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_no_server_outlives_a_signalled_run(tmp_path, sig):
    proc, lines = _start_run(tmp_path, "--graph", "closed_book", "--limit", "60")
    try:
        _wait_for(lines, proc, "[2/")  # the server answers and records are being written
        servers = servers_of(proc.pid)
        assert len(servers) == 1, f"expected one embedded server child, found {servers}"
        proc.send_signal(getattr(signal, sig))
        rc = proc.wait(timeout=60)
        left = wait_gone(servers, timeout=15)
        assert left == [], f"{sig}: server process(es) {left} still running after ragsafe exited ({rc})"
        if sig == "SIGKILL":
            assert rc == -signal.SIGKILL
        else:
            assert rc == 128 + getattr(signal, sig), "".join(lines)[-2000:]
            assert "finished records are kept" in "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # what was written is whole: every line of samples.jsonl is a complete record
    (run_dir,) = (tmp_path / "runs").iterdir()
    data = (run_dir / "samples.jsonl").read_bytes() if (run_dir / "samples.jsonl").exists() else b""
    if sig != "SIGKILL":
        assert data == b"" or data.endswith(b"\n")


CRASHING_GRAPH = textwrap.dedent('''
    import dataclasses
    from langgraph.graph import END, START, StateGraph
    from ragsafe.graphs import Deps, State, graph

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Params:
        pass

    @graph("crashes_on_first_question", params=Params)
    def build(deps: Deps, params: Params):
        async def boom(state: State) -> dict:
            await deps.llm.chat([{"role": "user", "content": "Say A."}], max_tokens=1)
            raise TypeError("a bug in a user's graph")

        b = StateGraph(State)
        b.add_node("boom", boom)
        b.add_edge(START, "boom")
        b.add_edge("boom", END)
        return b.compile()
''')


def test_no_server_outlives_a_run_that_fails(tmp_path):
    mod = tmp_path / "crashing.py"
    mod.write_text(CRASHING_GRAPH)
    proc, lines = _start_run(tmp_path, "--graph-module", str(mod), "--graph", "crashes_on_first_question",
                             "--limit", "3")
    _wait_for(lines, proc, "server ready at")
    servers = servers_of(proc.pid)
    assert len(servers) == 1
    rc = proc.wait(timeout=120)
    assert rc != 0
    assert "a bug in a user's graph" in "".join(lines)
    assert wait_gone(servers, timeout=15) == []


def test_a_server_killed_mid_run_is_restarted_and_the_run_completes(tmp_path):
    """The embedded server SIGKILLed mid-run (as the OOM killer would): restarted, nothing lost."""
    proc, lines = _start_run(tmp_path, "--graph", "closed_book", "--limit", "5")
    try:
        _wait_for(lines, proc, "[2/")
        (server,) = servers_of(proc.pid)
        os.kill(server, signal.SIGKILL)
        rc = proc.wait(timeout=1800)
        assert rc == 0, "".join(lines)[-3000:]
        assert any("embedded server died" in ln for ln in lines)
        assert wait_gone(servers_of(proc.pid) + [server], timeout=15) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    import json

    (run_dir,) = (tmp_path / "runs").iterdir()
    recs = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len({r["question_id"] for r in recs}) == 5 and all(r["error"] is None for r in recs)
    assert json.loads((run_dir / "run.json").read_text())["endpoint"]["server_restarts_last_session"] == 1


def test_the_papers_k10_fits_the_embedded_context(tmp_path, demo_store):
    """standard_rag with k=10 chunks of 300 tokens on smollm2-135m: no context overflow."""
    from ragsafe.cli.main import main

    chroma = demo_store.client.get_settings().persist_directory
    out = tmp_path / "runs"
    rc = main(["run", "--graph", "standard_rag", "--set", "standard_rag.k=10", "--limit", "2", "--model",
               "smollm2-135m", "--out", str(out), "--chroma-path", chroma, "--no-cache"])
    assert rc == 0
    import json

    (run_dir,) = out.iterdir()
    recs = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["error"] is None and len(r["retrieved"]) == 10 for r in recs)
    assert json.loads((run_dir / "run.json").read_text())["endpoint"]["context_window"] == 8192
