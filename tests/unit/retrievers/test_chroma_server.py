"""Chroma client/server mode: a real `chroma run` server on loopback, and standard_rag through it."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ragsafe.config import EndpointConfig
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.execute import run
from ragsafe.experiments.store import RunStore
from ragsafe.llm.server import free_port
from tests.fault_server import FaultServer

DOCS = {
    "appendicitis.md": "# Acute appendicitis\n\nA dilated, non-compressible appendix over 6 mm with periappendiceal "
                       "fat stranding on ultrasound or CT indicates acute appendicitis.",
    "pneumothorax.md": "# Pneumothorax\n\nA visceral pleural line with absent lung markings beyond it on an erect "
                       "chest radiograph indicates pneumothorax; tension shifts the mediastinum away.",
    "stroke.md": "# Acute ischaemic stroke\n\nLoss of the insular ribbon and a hyperdense middle cerebral artery on "
                 "non-contrast CT are early signs; diffusion-weighted MRI shows restricted diffusion.",
}


def chroma_binary() -> str | None:
    exe = Path(sys.executable).with_name("chroma")
    return str(exe) if exe.exists() else shutil.which("chroma")


def start_chroma(tmp_path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """A `chroma run` server on loopback over ``tmp_path/db``, answering its heartbeat."""
    exe = chroma_binary()
    if exe is None:
        pytest.skip("the `chroma` CLI (from the chromadb package) is not installed")
    port = port or free_port()
    log = open(tmp_path / "chroma.log", "ab")
    proc = subprocess.Popen([exe, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(tmp_path / "db")],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"chroma run exited with {proc.returncode}: {(tmp_path / 'chroma.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_chroma(proc)
            pytest.fail("chroma run did not answer its heartbeat within 60 s")
        time.sleep(0.2)


def stop_chroma(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def chroma_server(tmp_path):
    proc, url = start_chroma(tmp_path)
    try:
        yield url
    finally:
        stop_chroma(proc)


def test_standard_rag_through_a_chroma_server(tmp_path, chroma_server):
    import chromadb

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text)
    with FaultServer() as llm:
        cfg = RunConfig(graphs=["standard_rag[k=2]"], limit=4, corpus=str(corpus), chroma_url=chroma_server,
                        out=str(tmp_path / "runs"), cache="off",
                        endpoint=EndpointConfig(base_url=llm.base_url, model="fake"))
        d = run(cfg, progress=lambda m: None)
        assert llm.answered == 4
        # every prompt carried retrieved chunks of this corpus
        for body in llm.bodies:
            user = body["messages"][-1]["content"]
            assert any(text.split("\n\n", 1)[1][:40] in user for text in DOCS.values())
    recs = RunStore(d).samples()
    assert len(recs) == 4 and all(r["error"] is None for r in recs)
    assert all(len(r["retrieved"]) == 2 and r["retrieved"][0]["doc_id"] for r in recs)
    index = RunStore(d).read_run()["corpus"]["index"]
    host, port = chroma_server.rsplit(":", 1)
    client = chromadb.HttpClient(host=host.split("//")[1], port=int(port))
    assert client.get_collection(index["collection"]).count() == index["chunks"] > 0
    assert index["ingest"]["embedded"] == index["chunks"]


def test_a_chroma_server_lost_mid_run_gives_error_samples_never_a_crash(tmp_path, monkeypatch):
    """The Chroma server is SIGKILLed after the 3rd question: its queries are retried, then recorded
    as error samples; the run finishes, and --retry-errors with the server back completes it."""
    import signal

    from ragsafe.retrievers.chroma import ChromaRetriever

    monkeypatch.setattr(ChromaRetriever, "__init__", _fast_retries(ChromaRetriever.__init__))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text)
    proc, url = start_chroma(tmp_path)
    lines: list[str] = []

    def progress(msg: str) -> None:
        lines.append(msg)
        if msg.startswith("[3/"):
            proc.send_signal(signal.SIGKILL)

    try:
        with FaultServer() as llm:
            cfg = RunConfig(graphs=["standard_rag[k=2]"], limit=8, corpus=str(corpus), chroma_url=url,
                            out=str(tmp_path / "runs"), cache="off",
                            endpoint=EndpointConfig(base_url=llm.base_url, model="fake"))
            d = run(cfg, progress=progress)
            recs = RunStore(d).samples()
            assert len(recs) == 8
            ok = [r for r in recs if r["error"] is None]
            bad = [r for r in recs if r["error"]]
            assert len(ok) >= 3 and bad, lines
            assert all("Chroma" in r["error"]["message"] and "--chroma-url" in r["error"]["message"] for r in bad)
            proc.wait(10)
            proc, _ = start_chroma(tmp_path, port=int(url.rsplit(":", 1)[1]))
            run(dataclasses.replace(cfg, retry_errors=True), progress=lambda m: None)
        recs = RunStore(d).samples()
        assert len(recs) == 8 and all(r["error"] is None for r in recs)  # 0 samples lost
    finally:
        stop_chroma(proc)


def _fast_retries(init):
    def wrapped(self, *a, **kw):
        kw.setdefault("backoff", 0.05)
        kw.setdefault("retries", 2)
        init(self, *a, **kw)
    return wrapped
