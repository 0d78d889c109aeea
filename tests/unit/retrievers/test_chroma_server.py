"""Chroma client/server mode: a real `chroma run` server on loopback, and standard_rag through it."""

from __future__ import annotations

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


@pytest.fixture
def chroma_server(tmp_path):
    exe = chroma_binary()
    if exe is None:
        pytest.skip("the `chroma` CLI (from the chromadb package) is not installed")
    port = free_port()
    log = open(tmp_path / "chroma.log", "wb")
    proc = subprocess.Popen([exe, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(tmp_path / "db")],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with {proc.returncode}: {(tmp_path / 'chroma.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("chroma run did not answer its heartbeat within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


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
