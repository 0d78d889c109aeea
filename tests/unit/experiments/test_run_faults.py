"""Runs under faults: requests that can never succeed, a full disk, a damaged cache, a newer run
folder, an embedded server that dies mid-run. Nothing finished is lost; every stop says why."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from ragsafe.config import ConfigError, DiskFull, EndpointConfig
from ragsafe.experiments import store as store_mod
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.endpoints import ServerDied
from ragsafe.experiments.execute import STOP_AFTER, run
from ragsafe.experiments.store import RunStore
from ragsafe.llm.cache import SQLiteCache
from ragsafe.llm.errors import NON_RETRYABLE, _status_error, classify
from ragsafe.llm.server import free_port
from tests.fault_server import FaultServer
from tests.paths import ROOT

OVERFLOW = ("This model's maximum context length is 2048 tokens. However, you requested 2345 tokens "
            "(2335 in the messages, 10 in the completion). Please reduce the length of the messages or completion.")


def with_context(body: dict) -> tuple[int, str] | None:
    """Refuse every prompt that carries evidence (clean_evidence), as a too-small context would."""
    return None if body["messages"][-1]["content"].startswith("Question:") else (400, OVERFLOW)


def cfg_for(srv: FaultServer, tmp_path, **kw) -> RunConfig:
    return RunConfig(**{"graphs": ["closed_book", "clean_evidence"], "limit": 8, "out": str(tmp_path / "runs"),
                        "cache": "off", "endpoint": EndpointConfig(base_url=srv.base_url, model="fake",
                                                                   max_retries=1), **kw})


# --------------------------------------------------------------------------------------------
# requests that can never succeed


@pytest.mark.parametrize("status, message, kind", [
    (400, OVERFLOW, "context_overflow"),
    (400, "the request exceeds the available context size, try increasing it", "context_overflow"),
    (404, "The model `gpt-9` does not exist", "unknown_model"),
    (400, "model 'x' not found, try pulling it first", "unknown_model"),
    (401, "Incorrect API key provided", "auth"),
    (400, "temperature must be between 0 and 2", "bad_request"),
    (422, "Input should be a valid integer", "bad_request"),
    (503, "overloaded", "transient"),
])
def test_request_errors_are_classified_by_kind(status, message, kind):
    raw = json.dumps({"error": {"message": message}}).encode()
    got = classify(_status_error(status, {}, raw, "http://127.0.0.1:1/v1/chat/completions"))
    assert got == (kind, status, message)
    assert (kind in NON_RETRYABLE) == (status < 500)


def test_a_variant_whose_requests_can_never_succeed_stops_and_the_others_go_on(tmp_path):
    lines: list[str] = []
    with FaultServer(reject=with_context) as srv:
        d = run(cfg_for(srv, tmp_path), progress=lines.append)
        refused = srv.faults["400"]
    recs = RunStore(d).samples()
    by = {v: [r for r in recs if r["variant"] == v] for v in ("closed_book", "clean_evidence")}
    assert len(by["closed_book"]) == 8 and all(r["error"] is None for r in by["closed_book"])
    # a few identical errors, not one per question: the variant stopped after STOP_AFTER of them
    assert refused == STOP_AFTER and len(by["clean_evidence"]) == STOP_AFTER
    assert {r["error"]["kind"] for r in by["clean_evidence"]} == {"context_overflow"}
    stops = [m for m in lines if m.startswith("stopped variant clean_evidence")]
    assert len(stops) == 1, lines
    assert "maximum context length is 2048 tokens" in stops[0]  # quotes the server
    assert "smaller k" in stops[0] and "--n-ctx" in stops[0] and "max_context" in stops[0]  # names the fix
    assert any("error: context_overflow" in m for m in lines)  # the progress line shows the kind
    why = RunStore(d).read_run()["stopped_variants"]["clean_evidence"]
    assert why["kind"] == "context_overflow" and why["status"] == 400 and why["questions_not_run"] == 8 - STOP_AFTER


def test_cli_run_exits_1_when_a_variant_stopped(tmp_path, capsys):
    from ragsafe.cli.main import main

    with FaultServer(reject=with_context) as srv:
        rc = main(["run", "--graph", "closed_book", "--graph", "clean_evidence", "--limit", "6", "--no-cache",
                   "--base-url", srv.base_url, "--model", "fake", "--out", str(tmp_path / "runs")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "variant clean_evidence" in err and "context_overflow" in err


def test_transient_errors_do_not_stop_a_variant(tmp_path):
    """503s after their retries are error samples, but no reason to give up on the variant."""
    with FaultServer(status=503) as srv:
        d = run(cfg_for(srv, tmp_path, graphs=["closed_book"], limit=5,
                        endpoint=EndpointConfig(base_url=srv.base_url, model="fake", max_retries=0)),
                progress=lambda m: None)
    recs = RunStore(d).samples()
    assert len(recs) == 5 and all(r["error"]["kind"] == "transient" for r in recs)
    assert not RunStore(d).read_run().get("stopped_variants")


# --------------------------------------------------------------------------------------------
# a full disk


class _FillingOs(types.SimpleNamespace):
    """``os`` for the run store whose ``write`` fills the disk: after ``budget`` bytes it writes part
    of a buffer, then raises ENOSPC (as a real full disk does)."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget
        self.faults = 0

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        if self.budget <= 0:
            self.faults += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), self.budget)
        self.budget -= n
        return os.write(fd, bytes(data[:n]))


def _whole_lines(path: Path) -> list[dict]:
    data = path.read_bytes() if path.exists() else b""
    assert data == b"" or data.endswith(b"\n"), "a torn record was left behind"
    return [json.loads(x) for x in data.splitlines()]


def test_disk_full_while_appending_stops_cleanly_and_resume_completes(tmp_path, monkeypatch):
    with FaultServer() as srv:
        cfg = cfg_for(srv, tmp_path)
        fake = _FillingOs(budget=5000)  # a few records fit, then one is cut mid-write
        monkeypatch.setattr(store_mod, "os", fake)
        with pytest.raises(DiskFull, match="disk full.*run the same command to resume"):
            run(cfg, progress=lambda m: None)
        assert fake.faults >= 1
        d = next((tmp_path / "runs").iterdir())
        kept = _whole_lines(d / "samples.jsonl")
        assert 0 < len(kept) < 16
        monkeypatch.setattr(store_mod, "os", os)  # space again
        assert run(cfg, progress=lambda m: None) == d
    recs = _whole_lines(d / "samples.jsonl")
    keys = [(r["variant"], r["question_id"]) for r in recs]
    assert len(keys) == len(set(keys)) == 16 and all(r["error"] is None for r in recs)  # 0 samples lost


def test_disk_full_in_the_response_cache_stops_the_run(tmp_path, monkeypatch):
    """A cache write that fails for lack of space stops the run (it would otherwise turn every later
    answer into an error sample)."""
    def full(self, key, value):
        e = sqlite3.OperationalError("database or disk is full")
        e.sqlite_errorcode = 13
        raise DiskFull(self.path, "a response cache entry") from e

    monkeypatch.delenv("RAGSAFE_NO_CACHE", raising=False)
    monkeypatch.setenv("RAGSAFE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(SQLiteCache, "put", full)
    with FaultServer() as srv:
        cfg = cfg_for(srv, tmp_path, cache="use")
        with pytest.raises(DiskFull, match="response cache"):
            run(cfg, progress=lambda m: None)
        monkeypatch.undo()
        monkeypatch.setenv("RAGSAFE_HOME", str(tmp_path / "home"))
        d = run(cfg, progress=lambda m: None)
    assert len(_whole_lines(d / "samples.jsonl")) == 16


def test_sqlite_full_is_disk_full(tmp_path):
    cache = SQLiteCache(tmp_path / "c.sqlite")
    real = cache._db

    class Full:
        def execute(self, *a):
            e = sqlite3.OperationalError("database or disk is full")
            e.sqlite_errorcode = 13
            raise e

        def rollback(self):
            pass

    cache._db = Full()
    with pytest.raises(DiskFull, match="disk full while writing a response cache entry"):
        cache.put("k", {"text": "A"})
    cache._db = real
    cache.close()


def _can_mount_tmpfs(target: Path) -> bool:
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return False
    target.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(target)], capture_output=True)
    return r.returncode == 0


def test_a_real_full_filesystem_loses_nothing(tmp_path):
    """A 512 KiB tmpfs filled up mid-run: the run stops with the message, every line on disk is
    whole, and after space is freed the same run completes."""
    mnt = tmp_path / "small"
    if not _can_mount_tmpfs(mnt):
        pytest.skip("needs root and tmpfs to mount a small filesystem")
    try:
        with FaultServer() as srv:
            cfg = cfg_for(srv, tmp_path, out=str(mnt / "runs"), limit=40)
            filler = mnt / "filler"
            with open(filler, "wb") as f:  # leave ~60 KiB: run.json fits, the samples do not
                f.write(b"\0" * (512 * 1024 - 60 * 1024))
            with pytest.raises(DiskFull):
                run(cfg, progress=lambda m: None)
            d = next((mnt / "runs").iterdir())
            kept = len(_whole_lines(d / "samples.jsonl"))
            filler.unlink()
            run(cfg, progress=lambda m: None)
        recs = _whole_lines(d / "samples.jsonl")
        keys = {(r["variant"], r["question_id"]) for r in recs}
        assert len(keys) == len(recs) == 80 and kept < 80
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# --------------------------------------------------------------------------------------------
# a damaged cache, a newer run folder


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_cache_is_set_aside_and_the_run_goes_on(tmp_path, damage, monkeypatch):
    path = tmp_path / "home" / "cache" / "responses.sqlite"
    path.parent.mkdir(parents=True)
    c = SQLiteCache(path)
    for i in range(400):
        c.put(f"k{i}", {"text": "x" * 200})
    c.close()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] if damage == "truncate" else os.urandom(len(data)))
    warnings: list[str] = []
    c = SQLiteCache(path, warn=warnings.append)
    if not c.set_aside:  # sqlite may open a truncated file and only fail on the pages it lacks
        for i in range(400):
            c.get(f"k{i}")
    assert len(c.set_aside) == 1 and c.set_aside[0].exists()
    assert len(warnings) == 1 and "damaged" in warnings[0] and str(c.set_aside[0]) in warnings[0]
    c.put("new", {"text": "A"})
    assert c.get("new") == {"text": "A"}
    c.close()
    # and a run over the damaged cache answers every question
    path.write_bytes(os.urandom(8192))
    monkeypatch.delenv("RAGSAFE_NO_CACHE", raising=False)
    monkeypatch.setenv("RAGSAFE_HOME", str(tmp_path / "home"))
    with FaultServer() as srv:
        d = run(cfg_for(srv, tmp_path, cache="use", limit=3), progress=lambda m: None)
    assert len(RunStore(d).samples()) == 6 and all(r["error"] is None for r in RunStore(d).samples())


def test_a_run_folder_of_a_newer_schema_is_refused(tmp_path):
    with FaultServer() as srv:
        cfg = cfg_for(srv, tmp_path, limit=2)
        d = run(cfg, progress=lambda m: None)
        rec = json.loads((d / "run.json").read_text())
        rec["schema_version"] = 99
        (d / "run.json").write_text(json.dumps(rec))
        with pytest.raises(ConfigError, match="run.json: schema_version 99 is newer than this ragsafe.*upgrade"):
            run(cfg, progress=lambda m: None)
    from ragsafe.cli.main import main

    assert main(["runs", "show", str(d)]) == 2


# --------------------------------------------------------------------------------------------
# an embedded server that dies mid-run


class ProcessServer:
    """A stand-in for LocalServer: tests/fault_server.py in its own process, restartable on its port."""

    instances: list["ProcessServer"] = []
    fail_restart = False

    def __init__(self, model: str, *, n_ctx=None, **_) -> None:
        self.model = types.SimpleNamespace(name=model)
        self.port = free_port()
        self.n_ctx = n_ctx or 4096
        self.proc = None
        self.restarts = 0
        self.log_path = Path("/dev/null")
        ProcessServer.instances.append(self)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self):
        cmd = [sys.executable, str(ROOT / "tests" / "fault_server.py"), "--port", str(self.port), "--latency", "0.05"]
        if self.restarts and ProcessServer.fail_restart:
            cmd = [sys.executable, "-c", "raise SystemExit(3)"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import urllib.request

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}")
            try:
                urllib.request.urlopen(self.base_url + "/models", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("no answer")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_status(self) -> str:
        return f"exit code {self.proc.returncode}" if self.proc else "not started"

    def restart(self):
        self.stop()
        self.restarts += 1
        return self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)

    __enter__ = start

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def process_server(monkeypatch):
    import ragsafe.llm.server as server_mod

    ProcessServer.instances = []
    ProcessServer.fail_restart = False
    monkeypatch.setattr(server_mod, "LocalServer", ProcessServer)
    yield ProcessServer
    for s in ProcessServer.instances:
        s.stop()


def killing_at(counts: set[int], lines: list[str]):
    """A progress callback that SIGKILLs the server when the n-th question finishes, for n in ``counts``."""
    def progress(msg: str) -> None:
        lines.append(msg)
        if msg.startswith("[") and "/" in msg:
            n = int(msg[1:msg.index("/")])
            if n in counts:
                counts.discard(n)
                for s in ProcessServer.instances:
                    s.kill()

    return progress


def local_cfg(tmp_path, limit: int) -> RunConfig:
    return RunConfig(graphs=["closed_book", "clean_evidence"], limit=limit, out=str(tmp_path / "runs"), cache="off",
                     endpoint=EndpointConfig(base_url="local", model="fake", max_retries=1, timeout=10))


def test_a_server_killed_mid_run_is_restarted_and_nothing_is_lost(tmp_path, process_server):
    lines: list[str] = []
    d = run(local_cfg(tmp_path, 30), progress=killing_at({10}, lines))
    recs = RunStore(d).samples()
    assert len(recs) == 60 and all(r["error"] is None for r in recs), [r["error"] for r in recs if r["error"]]
    assert RunStore(d).read_run()["endpoint"]["server_restarts_last_session"] == 1
    assert any("embedded server died" in m and "restarting" in m for m in lines)
    assert not any(s.alive() for s in process_server.instances)


def test_a_server_that_keeps_dying_stops_the_run_and_resume_completes(tmp_path, process_server):
    with pytest.raises(ServerDied, match="died again.*after 3 restart.*run the same command to resume"):
        run(local_cfg(tmp_path, 60), progress=killing_at({5, 15, 25, 35}, []))
    d = next((tmp_path / "runs").iterdir())
    kept = _whole_lines(d / "samples.jsonl")
    assert all(r["error"] is None for r in kept)  # no question was given up while the server was gone
    assert RunStore(d).read_run()["endpoint"]["server_restarts_last_session"] == 3
    run(local_cfg(tmp_path, 60), progress=lambda m: None)
    recs = _whole_lines(d / "samples.jsonl")
    assert len({(r["variant"], r["question_id"]) for r in recs}) == 120 and all(r["error"] is None for r in recs)
    assert not any(s.alive() for s in process_server.instances)


def test_a_server_that_does_not_come_back_stops_the_run(tmp_path, process_server):
    process_server.fail_restart = True
    with pytest.raises(ServerDied, match="did not start again"):
        run(local_cfg(tmp_path, 60), progress=killing_at({5}, []))
    assert not any(s.alive() for s in process_server.instances)
