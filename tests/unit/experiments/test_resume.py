"""Resume: a sweep killed with SIGKILL at any point finishes with one record per (cell, question)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ragsafe.config import ConfigError, EndpointConfig
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.execute import run
from ragsafe.experiments.store import RunStore
from tests.fault_server import FaultServer
from tests.paths import ROOT as _ROOT

ROOT = _ROOT
GRAPHS = ["closed_book", "clean_evidence", "conflict_evidence"]
LIMIT, SEEDS = 30, [0, 1]
EXPECTED = LIMIT * len(GRAPHS) * len(SEEDS)


def read_lines(run_dirs: list[Path]) -> tuple[dict, int]:
    """Complete records by key, and the number of torn (partial) tail bytes."""
    recs, torn = {}, 0
    for d in run_dirs:
        p = d / "samples.jsonl"
        if not p.exists():
            continue
        data = p.read_bytes()
        complete, _, tail = data.rpartition(b"\n")
        torn += len(tail)
        for line in complete.split(b"\n") if complete else []:
            r = json.loads(line)
            recs[(d.name, r["variant"], r["question_id"])] = r
    return recs, torn


def run_dirs(out: Path) -> list[Path]:
    return sorted(d for d in out.glob("run-*") if d.is_dir()) if out.exists() else []


def start(sweep: Path, home: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAGSAFE_NO_CACHE"}
    env.update(RAGSAFE_HOME=str(home), PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "ragsafe.cli.main", "sweep", str(sweep)], cwd=str(sweep.parent),
                            env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def kill_at_random(proc: subprocess.Popen, out: Path, rng: random.Random, deadline: float = 120) -> bool:
    """Wait until records are being written, then SIGKILL after a random delay; False if it finished first."""
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < deadline:
        if any((d / "samples.jsonl").exists() for d in run_dirs(out)):
            break
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 1.5))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return True


@pytest.mark.parametrize("seed", [11, 22, 33])
def test_sigkill_at_random_points_then_resume(tmp_path, seed):
    rng = random.Random(seed)
    out, home, log = tmp_path / "runs", tmp_path / "home", tmp_path / "sweep.log"
    with FaultServer(latency=0.04) as srv:
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text(yaml.safe_dump({
            "benchmark": "demo", "limit": LIMIT, "seeds": SEEDS, "graphs": GRAPHS, "out": str(out),
            "endpoints": [{"model": "fake", "base_url": srv.base_url, "concurrency": 2}]}))
        kills = 0
        for _ in range(2):
            before = srv.requests
            kept, _ = read_lines(run_dirs(out))
            proc = start(sweep, home, log)
            killed = kill_at_random(proc, out, rng)
            kills += killed
            after, torn = read_lines(run_dirs(out))
            # records written before are never rewritten, and a session asks only for what was missing
            for k, r in kept.items():
                assert after[k] == r
            assert srv.requests - before <= EXPECTED - len(kept)
            if not killed:
                break
        missing = EXPECTED - len(read_lines(run_dirs(out))[0])
        before = srv.requests
        proc = start(sweep, home, log)
        assert proc.wait(180) == 0, log.read_text()[-3000:]
        assert srv.requests - before <= missing
    assert kills >= 1, "the sweep always finished before the kill: make it longer"
    dirs = run_dirs(out)
    assert len(dirs) == len(SEEDS)
    keys = []
    for d in dirs:
        raw = (d / "samples.jsonl").read_bytes()
        assert raw.endswith(b"\n")
        lines = raw.split(b"\n")[:-1]
        recs = [json.loads(x) for x in lines]  # no torn or garbled line anywhere
        keys += [(d.name, r["variant"], r["question_id"]) for r in recs]
        assert all(r["error"] is None for r in recs)
        assert all("metrics" in c for c in RunStore(d).read_summary()["variants"].values())
    assert len(keys) == len(set(keys)) == EXPECTED


def test_torn_tail_is_cut_and_recomputed_once(tmp_path):
    with FaultServer() as srv:
        cfg = RunConfig(graphs=["closed_book"], limit=6, out=str(tmp_path / "runs"), cache="off",
                        endpoint=EndpointConfig(base_url=srv.base_url, model="fake"))
        d = run(cfg, progress=lambda m: None)
        p = d / "samples.jsonl"
        lines = p.read_bytes().split(b"\n")[:-1]
        p.write_bytes(b"\n".join(lines[:4]) + b"\n" + lines[4][: len(lines[4]) // 2])  # a write cut short
        n = srv.requests
        run(cfg, progress=lambda m: None)
        assert srv.requests == n + 2  # the torn record and the missing one
    raw = p.read_bytes()
    recs = [json.loads(x) for x in raw.split(b"\n")[:-1]]
    assert raw.endswith(b"\n") and len(recs) == 6 == len({r["question_id"] for r in recs})


def test_a_run_folder_has_one_writer(tmp_path):
    with FaultServer() as srv:
        cfg = RunConfig(graphs=["closed_book"], limit=2, out=str(tmp_path / "runs"), cache="off",
                        endpoint=EndpointConfig(base_url=srv.base_url, model="fake"))
        d = run(cfg, progress=lambda m: None)
        with RunStore(d).lock():
            with pytest.raises(ConfigError, match="another ragsafe process is writing"):
                run(cfg, progress=lambda m: None)
