"""Embedders: by packaged name and by folder, hub names failing fast offline, prefixes, identity,
and the OpenAI-compatible embeddings endpoint over real HTTP (a small stdlib server here; llama.cpp's
own server in tests/e2e)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from ragsafe.config import ConfigError
from ragsafe.retrievers.embedders import (
    DEFAULT_EMBEDDER,
    EmbedderConfig,
    EmbedderError,
    EndpointEmbedder,
    default_model_path,
    family_prefixes,
    files_sha256,
    get_embedder,
    locate,
    packaged,
)
from tests.paths import ROOT


@pytest.fixture(scope="module")
def minilm_copy(tmp_path_factory):
    """The packaged MiniLM copied to a folder of its own: an embedder "by path"."""
    dest = tmp_path_factory.mktemp("models") / "my-minilm"
    shutil.copytree(default_model_path(), dest)
    return dest


def test_embedder_by_path_loads_offline_and_records_its_files(minilm_copy):
    by_path = get_embedder(str(minilm_copy))
    default = get_embedder()
    assert by_path is not default and by_path.name == "my-minilm" and default.name == DEFAULT_EMBEDDER
    ident = by_path.identity()
    assert ident["source"] == "folder" and ident["dim"] == 384 and ident["max_seq_length"] == 256
    # the same files hash the same wherever they lie; the vectors are the same model's
    assert ident["files_sha256"] == default.identity()["files_sha256"]
    a = np.array(by_path.embed_documents(["acute appendicitis with a dilated appendix"]))
    b = np.array(default.embed_documents(["acute appendicitis with a dilated appendix"]))
    assert a.shape == (1, 384) and np.allclose(a, b, atol=1e-5)
    assert abs(np.linalg.norm(a) - 1) < 1e-5
    # another name is another index, even over the same weights
    assert by_path.key() != default.key()


def test_files_hash_changes_with_any_model_file(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"a": 1}')
    before = files_sha256(tmp_path)
    assert files_sha256(tmp_path) == before
    (tmp_path / "1_Pooling" / "config.json").write_text('{"a": 2}')
    assert files_sha256(tmp_path) != before


def test_normalisation_and_prefixes_are_applied_and_recorded():
    plain = get_embedder(EmbedderConfig(normalize=False, passage_prefix="passage: ", query_prefix="query: "))
    v = np.array(plain.embed_documents(["fat stranding around the appendix"])[0])
    # MiniLM's own pipeline ends in a Normalize module: switching ragsafe's off changes nothing, and
    # the identity says so
    assert plain.identity()["model_normalizes"] is True and abs(np.linalg.norm(v) - 1) < 1e-5
    ref = np.array(get_embedder(EmbedderConfig(normalize=False)).embed_documents(
        ["passage: fat stranding around the appendix"])[0])
    assert np.allclose(v, ref, atol=1e-5)  # the passage prefix went in front of the text
    q = np.array(plain.embed_query("appendix"))
    assert np.allclose(q, np.array(get_embedder(EmbedderConfig(normalize=False)).embed_query("query: appendix")),
                       atol=1e-5)
    ident = plain.identity()
    assert ident["passage_prefix"] == "passage: " and ident["normalize"] is False
    assert plain.key() != get_embedder().key()
    # the query prefix is not part of the stored vectors: same key
    assert get_embedder(EmbedderConfig(query_prefix="q: ")).key() == get_embedder().key()


def test_family_conventions():
    assert family_prefixes("BAAI/bge-large-en-v1.5")[1].startswith("Represent this sentence")
    assert family_prefixes("intfloat/e5-base-v2")[1:] == ("query: ", "passage: ")
    assert family_prefixes("intfloat/multilingual-e5-small")[1:] == ("query: ", "passage: ")
    assert family_prefixes("nomic-ai/nomic-embed-text-v1.5")[1:] == ("search_query: ", "search_document: ")
    assert family_prefixes("thenlper/gte-base")[1:] == ("", "")
    assert family_prefixes("all-MiniLM-L6-v2") == (None, "", "")
    cfg = EmbedderConfig(name="BAAI/bge-small-en-v1.5", query_prefix="")
    assert cfg.resolved_prefixes() == ("", "")  # an explicit "" switches the convention off


def test_hub_names_fail_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no cached copy
    t0 = time.monotonic()
    with pytest.raises(EmbedderError) as e:
        get_embedder(EmbedderConfig(name="BAAI/bge-large-en-v1.5"))
    assert time.monotonic() - t0 < 5
    msg = str(e.value)
    assert "BAAI/bge-large-en-v1.5" in msg and "HF_HUB_OFFLINE=1" in msg and "--embedder DIR" in msg


def test_hub_names_fail_fast_when_the_hub_does_not_answer(monkeypatch, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    t0 = time.monotonic()
    with pytest.raises(EmbedderError, match="does not answer"):
        locate("intfloat/e5-small-v2")
    assert time.monotonic() - t0 < 5


def test_cli_hub_name_fails_within_seconds(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT),
           "RAGSAFE_HOME": str(tmp_path / "home")}
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "ragsafe.cli", "index", "--embedder", "BAAI/bge-large-en-v1.5",
                        "--chroma-path", str(tmp_path / "chroma")], env=env, capture_output=True, text=True,
                       timeout=120)
    took = time.monotonic() - t0
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "BAAI/bge-large-en-v1.5" in r.stderr and "HF_HUB_OFFLINE=1" in r.stderr
    assert took < 30, f"took {took:.1f}s"  # interpreter start-up only: no retries, no model load
    assert not (tmp_path / "chroma").exists()


def test_bad_paths_and_settings_name_the_fix(tmp_path):
    with pytest.raises(EmbedderError, match="does not exist"):
        locate(str(tmp_path / "missing-model"))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(EmbedderError, match="is a file"):
        locate(str(tmp_path / "weights.bin"))
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(EmbedderError, match="did not load as a sentence-transformers model"):
        get_embedder(str(tmp_path / "not-a-model"))
    with pytest.raises(ConfigError, match="embed device"):
        EmbedderConfig(device="tpu")
    with pytest.raises(ConfigError, match="--embed-model"):
        EmbedderConfig(base_url="http://127.0.0.1:1/v1")
    with pytest.raises(EmbedderError, match="no CUDA device"):
        get_embedder(EmbedderConfig(device="cuda"))


def test_second_packaged_embedder_loads_offline():
    mpnet = packaged("mpnet")
    assert mpnet is not None and mpnet.name == "all-mpnet-base-v2" and mpnet.installed(), mpnet.install
    emb = get_embedder("all-mpnet-base-v2")
    ident = emb.identity()
    assert ident["dim"] == 768 and ident["max_seq_length"] == 384 and ident["source"] == "pypi"
    assert len(ident["files_sha256"]) == 64 and ident["files_sha256"] != get_embedder().identity()["files_sha256"]
    v = np.array(emb.embed_documents(["acute appendicitis with a dilated appendix",
                                      "inflamed appendix with periappendiceal fat stranding",
                                      "hyperdense middle cerebral artery sign in acute stroke"]))
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # a real model: related texts are closer


def test_from_value_reads_sweep_tables():
    cfg = EmbedderConfig.from_value({"name": "all-mpnet-base-v2", "device": "cpu", "batch_size": 8,
                                     "query_prefix": "", "replicas": []})
    assert cfg.name == "all-mpnet-base-v2" and cfg.batch_size == 8 and cfg.query_prefix == ""
    assert EmbedderConfig.from_value("minilm").name == "minilm"
    with pytest.raises(ConfigError, match=r"embedder\.batch_size"):
        EmbedderConfig.from_value({"batch_size": "eight"})
    with pytest.raises(ConfigError, match="unknown key"):
        EmbedderConfig.from_value({"nme": "x"})


# -- the embeddings endpoint over real HTTP ------------------------------------------------------------

class _Embeddings(http.server.BaseHTTPRequestHandler):
    """/v1/embeddings with bag-of-letters vectors; per-token vectors when ``tokens``; the first
    ``fail_first`` requests answer 503."""

    server_version = "test-embeddings"

    def log_message(self, *a):  # quiet
        pass

    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": "bag", "object": "model"}]})

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            srv.seen.append(body)
            srv.in_flight += 1
            srv.peak = max(srv.peak, srv.in_flight)
            fail = len(srv.seen) <= srv.fail_first
        try:
            time.sleep(srv.delay)
            if fail:
                return self._send(503, {"error": {"message": "warming up"}})
            if not self.path.endswith("/embeddings"):
                return self._send(404, {"error": {"message": "not found"}})
            data = []
            for i, text in enumerate(body["input"]):
                vec = [float(text.lower().count(c)) + 0.01 for c in "aeiourstnl"]
                emb = [vec, [x * 3 for x in vec]] if srv.tokens else vec
                data.append({"object": "embedding", "index": i, "embedding": emb})
            self._send(200, {"object": "list", "model": body["model"], "data": data[::-1],
                             "usage": {"prompt_tokens": 3, "total_tokens": 3}})
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def _send(self, status, obj):
        raw = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def _server(fail_first=0, tokens=False, delay=0.0):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    srv.seen, srv.fail_first, srv.tokens, srv.delay = [], fail_first, tokens, delay
    srv.lock, srv.in_flight, srv.peak = threading.Lock(), 0, 0
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_endpoint_embedder_batches_retries_and_spreads_over_replicas():
    a, b = _server(fail_first=1, delay=0.05), _server(delay=0.05)
    try:
        cfg = EmbedderConfig(base_url=f"http://127.0.0.1:{a.server_port}/v1", model="bag", batch_size=3,
                             replicas=(f"http://127.0.0.1:{b.server_port}/v1",), concurrency=1, max_retries=3)
        emb = EndpointEmbedder(cfg)
        texts = [f"text number {i} about the appendix" for i in range(20)]
        vecs = emb.embed_documents(texts)
        assert len(vecs) == 20 and emb.dim == 10
        assert all(abs(np.linalg.norm(v) - 1) < 1e-6 for v in vecs)
        # order is the input order although the server answered in reverse
        ref = np.array([float(texts[5].lower().count(c)) + 0.01 for c in "aeiourstnl"])
        assert np.allclose(vecs[5], ref / np.linalg.norm(ref))
        # the probe (1 text) met the 503 on a and was retried on b; then 7 batches of at most 3
        batches = sorted(len(x["input"]) for x in a.seen[1:] + b.seen)
        assert len(a.seen) + len(b.seen) == 9 and batches == sorted([1] + [3] * 6 + [2])
        assert a.seen[1:] and b.seen, "both replicas served"
        assert a.peak <= 1 and b.peak <= 1  # the per-URL bound held
        assert all(x["encoding_format"] == "float" and x["model"] == "bag" for x in a.seen + b.seen)
        assert emb.identity()["kind"] == "endpoint" and emb.identity()["pooling"] == "server"
        q = asyncio_run(emb.aembed_query("appendix"))
        assert len(q) == 10
    finally:
        for s in (a, b):
            s.shutdown()
            s.server_close()


def test_endpoint_embedder_pools_per_token_vectors_and_names_a_dead_url():
    srv = _server(tokens=True)
    try:
        emb = EndpointEmbedder(EmbedderConfig(base_url=f"http://127.0.0.1:{srv.server_port}/v1", model="bag",
                                              normalize=False))
        v = emb.embed_documents(["aa"])[0]
        ref = [(float("aa".count(c)) + 0.01) * 2 for c in "aeiourstnl"]  # mean of x and 3x
        assert np.allclose(v, ref) and emb.pooling == "client-mean"
        assert emb.identity()["pooling"] == "client-mean"
    finally:
        srv.shutdown()
        srv.server_close()  # nothing listens on the port any more
    from ragsafe.llm.errors import EndpointUnreachable

    t0 = time.monotonic()
    with pytest.raises(EndpointUnreachable, match=f"127.0.0.1:{srv.server_port}/v1/embeddings"):
        EndpointEmbedder(EmbedderConfig(base_url=f"http://127.0.0.1:{srv.server_port}/v1", model="bag",
                                        max_retries=1, timeout=5))
    assert time.monotonic() - t0 < 10


def asyncio_run(coro):
    import asyncio

    return asyncio.run(coro)


def test_cli_an_embeddings_server_that_keeps_failing_is_a_clear_error(tmp_path):
    """ragsafe index against a server whose every request fails: one message naming the URL and the
    attempts, exit 1, no traceback (an embeddings request outside a run has no error record to become)."""
    srv = _server(fail_first=10_000)
    try:
        url = f"http://127.0.0.1:{srv.server_port}/v1"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "RAGSAFE_HOME": str(tmp_path / "home")}
        r = subprocess.run([sys.executable, "-m", "ragsafe.cli", "index", "--embed-base-url", url, "--embed-model", "bag",
                            "--embed-timeout", "5", "--chroma-path", str(tmp_path / "chroma")],
                           env=env, capture_output=True, text=True, timeout=180)
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"{url}/embeddings" in r.stderr and "attempt" in r.stderr and "503" in r.stderr
    assert len(srv.seen) >= 2  # retried before giving up
