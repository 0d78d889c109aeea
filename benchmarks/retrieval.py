"""Retrieval: ingest rate and query latency of ragsafe's Chroma store against chromadb called directly.

Embedding 100k chunks with all-MiniLM-L6-v2 on 2 CPU cores would take most of an hour per arm and
would be the same work in both arms, so the arms share precomputed vectors and the embedder's own
rate is measured separately:

* the demo corpus is chunked as ragsafe chunks it and every chunk is embedded once, for real;
* a collection of N chunks holds copies of those chunks, each with its own text suffix and its
  vector perturbed by seeded Gaussian noise (sigma 0.05) and renormalised, so neighbours stay
  meaningful and no two vectors are equal;
* both arms get vectors from the same lookup "embedder", in batches of 256, into a fresh
  PersistentClient folder per repetition (which arm ingests first alternates);
* queries: the demo question stems, embedded once for real; k = 10. Both arms query the same
  collection, interleaved query by query in a seeded random order (ragsafe's ``ChromaStore.query``
  returning annotated Documents vs ``collection.query``), so machine-load drift and index warm-up
  fall on both alike.

The ratio is ragsafe over direct for the rate, direct over ragsafe for latency (1.00 = no overhead,
higher is better; target >= 0.95).

The ingest table (``--part ingest``) includes embedding: ``build_index`` over the first N demo
chunks into a fresh PersistentClient (chunking, embedding, upserts), for the packaged MiniLM on this
CPU (all-MiniLM-L6-v2 and all-mpnet-base-v2) and for llama.cpp's own server in embedding mode (smollm2-135m's GGUF; ragsafe mean-pools its
per-token vectors) on 127.0.0.1. Each row gives chunks/s and the useful FLOP rate as a fraction of
the CPU's fp32 peak, measured in the same run with a numpy float32 matmul (best of 5); a model's
FLOPs are counted from its architecture (2 per multiply-add over the tokens it embedded, attention
included, padding not).

    python benchmarks/retrieval.py [--part all|store|ingest] [--sizes 10000,100000] [--reps 5] [--rounds 5]
                                   [--ingest-chunks 339] [--ingest-reps 3] [--endpoint-chunks 80]
                                   [--endpoint-batch 8] [--no-endpoint]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, median, table  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

BATCH = 256


class LookupEmbedder:
    """Returns precomputed vectors for known texts (the same object serves both arms)."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, texts, vecs, queries, qvecs) -> None:
        self.row = {t: i for i, t in enumerate(texts)}
        self.vecs = vecs
        self.qrow = {t: i for i, t in enumerate(queries)}
        self.qvecs = qvecs

    def embed_documents(self, texts):
        return self.vecs[[self.row[t] for t in texts]].tolist()

    def embed_query(self, text):
        return self.qvecs[self.qrow[text]].tolist()


def make_data(n: int, base_docs, base_vecs, seed: int = 0):
    import numpy as np
    from langchain_core.documents import Document

    rng = np.random.default_rng(seed)
    m = len(base_docs)
    idx = np.arange(n) % m
    vecs = base_vecs[idx] + rng.normal(0, 0.05, size=(n, base_vecs.shape[1])).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    docs = []
    for i in range(n):
        b = base_docs[idx[i]]
        text = f"{b.page_content} [copy {i // m}]"
        md = dict(b.metadata)
        md["chunk_id"] = f"{md['chunk_id']}~{i // m}"
        md["content_hash"] = hashlib.sha256(text.encode()).hexdigest()
        docs.append(Document(page_content=text, metadata=md, id=md["chunk_id"]))
    return docs, vecs


def ragsafe_ingest(path: Path, docs, emb):
    import chromadb

    from ragsafe.retrievers.chroma import ChromaStore

    client = chromadb.PersistentClient(path=str(path))
    store = ChromaStore(client, "bench", emb)
    t0 = time.perf_counter()
    store.ingest(docs, batch=BATCH)
    return len(docs) / (time.perf_counter() - t0), store, client


def direct_ingest(path: Path, docs, emb):
    import chromadb

    from ragsafe.retrievers.chroma import _clean_md

    client = chromadb.PersistentClient(path=str(path))
    col = client.get_or_create_collection("bench", embedding_function=None, metadata={"hnsw:space": "cosine"})
    t0 = time.perf_counter()
    for i in range(0, len(docs), BATCH):
        part = docs[i:i + BATCH]
        col.upsert(ids=[d.metadata["chunk_id"] for d in part], embeddings=emb.embed_documents([d.page_content for d in part]),
                   documents=[d.page_content for d in part], metadatas=[_clean_md(d.metadata) for d in part])
    return len(docs) / (time.perf_counter() - t0)


def query_latencies(store, client, emb, queries, k: int, rounds: int, seed: int):
    """Both arms query the same collection, interleaved query by query in a seeded random order, so
    drifting machine load and the index's warm-up hit both alike. ragsafe: ``ChromaStore.query``
    (embed, search, Documents with rank and score); direct: ``collection.query`` with the same
    embedder and includes."""
    import random

    col = client.get_collection("bench")
    store.query(queries[0], k)  # the one count() read after ingest, as in a run
    rng = random.Random(seed)
    ours, direct = [], []
    for _ in range(rounds):
        for q in queries:
            arms = [(ours, lambda q=q: store.query(q, k)),
                    (direct, lambda q=q: col.query(query_embeddings=[emb.embed_query(q)], n_results=k,
                                                   include=["documents", "metadatas", "distances"]))]
            rng.shuffle(arms)
            for sink, fn in arms:
                t = time.perf_counter()
                fn()
                sink.append(time.perf_counter() - t)
    return ours, direct


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def fp32_peak(n: int = 2048, reps: int = 5) -> float:
    """The CPU's fp32 FLOP rate with a numpy float32 matmul (all cores, best of ``reps``)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def encoder_flops(n_tokens: list[int], layers: int, hidden: int, ffn: int, kv: int | None = None,
                  gated: bool = False) -> float:
    """Forward FLOPs of a transformer over sequences of these lengths: projections, FFN (3 matrices
    when gated) and attention scores/values; 2 FLOPs per multiply-add; no embedding lookups, no padding."""
    kv = kv or hidden
    proj = 2 * hidden * hidden + 2 * hidden * kv  # q, o + k, v
    mlp = (3 if gated else 2) * hidden * ffn
    return float(sum(2 * layers * (L * (proj + mlp) + 2 * L * L * hidden) for L in n_tokens))


def _docs_for(docs, tokenizer, n_chunks: int):
    """The first documents whose chunks add up to at least ``n_chunks``."""
    from ragsafe.corpora.chunking import ChunkParams, chunk_documents

    out, n = [], 0
    for d in docs:
        if n >= n_chunks:
            break
        out.append(d)
        n += len(chunk_documents([d], tokenizer, ChunkParams()))
    return out


INGEST_HEAD = ["embedder", "chunks", "chunks/s", "fraction of fp32 peak", "where"]


def _row(cells: list[str]) -> None:
    print("| " + " | ".join(cells) + " |", flush=True)


def ingest_rows(n_chunks: int, reps: int, endpoint: bool, endpoint_chunks: int, endpoint_batch: int
                ) -> tuple[list[list[str]], float]:
    """Each arm's row is printed as soon as it is measured (the endpoint arm is the slow one)."""
    from ragsafe.corpora.chunking import resolve_tokenizer
    from ragsafe.corpora.documents import load_corpus
    from ragsafe.retrievers.chroma import build_index
    from ragsafe.retrievers.embedders import EmbedderConfig, EndpointEmbedder, get_embedder

    peak = fp32_peak()
    print(f"CPU fp32 peak in this run (numpy float32 2048x2048 matmul, all cores, best of 5): "
          f"{peak / 1e9:.1f} GFLOP/s\n", flush=True)
    _row(INGEST_HEAD)
    _row(["---"] * len(INGEST_HEAD))
    docs = load_corpus("demo")
    rows = []

    def arm(label: str, emb, flops_of, chunks: int) -> None:
        tok, _ = resolve_tokenizer("embedder", emb)
        sub = _docs_for(docs, tok, chunks)
        rates, fracs, n = [], [], 0
        for _ in range(reps):
            with tempfile.TemporaryDirectory() as tmp:
                before = getattr(emb, "prompt_tokens", 0)
                t0 = time.perf_counter()
                store = build_index("bench", chroma_path=tmp, docs=sub, embedder=emb, warn=lambda m: None)
                secs = time.perf_counter() - t0
                n = store.count()
                texts = store.collection.get(include=["documents"])["documents"]
                rates.append(n / secs)
                fracs.append(flops_of(texts, getattr(emb, "prompt_tokens", 0) - before) / secs / peak)
        rows.append([label, str(n), f"{median(rates):.1f}", f"{median(fracs):.3f}", getattr(emb, "where", "")])
        _row(rows[-1])

    def st_arm(name: str) -> None:
        emb = get_embedder(name)
        cfg = emb.model[0].auto_model.config

        def flops(texts, _tokens):
            ids = emb.tokenizer(texts, add_special_tokens=True)["input_ids"]
            lens = [min(len(x), emb.max_seq_length) for x in ids]
            return encoder_flops(lens, cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size)

        arm(f"{name} (sentence-transformers, fp32, batch {emb.cfg.batch_size if hasattr(emb, 'cfg') else 64})",
            emb, flops, n_chunks)

    st_arm("all-MiniLM-L6-v2")
    st_arm("all-mpnet-base-v2")
    if endpoint:
        from ragsafe.llm.server import LocalServer

        with LocalServer("smollm2-135m", embedding=True) as srv:
            emb = EndpointEmbedder(EmbedderConfig(base_url=srv.base_url, model="smollm2-135m",
                                                  batch_size=endpoint_batch, concurrency=1))

            def smol_flops(texts, tokens):
                # SmolLM2-135M: 30 layers, hidden 576, 3 KV heads of 64, SwiGLU FFN 1536; the server
                # reports the tokens it embedded (per request): spread evenly over the texts
                avg = tokens / max(len(texts), 1)
                return encoder_flops([round(avg)] * len(texts), 30, 576, 1536, kv=192, gated=True)

            arm(f"smollm2-135m via llama.cpp /v1/embeddings (Q4_1 weights, batch {endpoint_batch})", emb, smol_flops,
                endpoint_chunks)
    return rows, peak


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="all", choices=["all", "store", "ingest"],
                    help="store: ragsafe vs chromadb on shared vectors; ingest: build_index including embedding")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5, help="passes over the queries per repetition")
    ap.add_argument("--ingest-chunks", type=int, default=339, help="demo chunks per ingest (all: 339)")
    ap.add_argument("--ingest-reps", type=int, default=3)
    ap.add_argument("--endpoint-chunks", type=int, default=80,
                    help="demo chunks per ingest through the llama.cpp endpoint (slow on 2 cores; default 80)")
    ap.add_argument("--endpoint-batch", type=int, default=8, help="texts per /v1/embeddings request (default 8)")
    ap.add_argument("--no-endpoint", action="store_true", help="skip the llama.cpp embeddings row")
    a = ap.parse_args()
    if a.part in ("all", "ingest"):
        header(f"Ingest including embedding (build_index into a fresh PersistentClient, medians of {a.ingest_reps})")
        ingest_rows(a.ingest_chunks, a.ingest_reps, not a.no_endpoint, a.endpoint_chunks, a.endpoint_batch)
        print("\nChunks/s is end to end (chunking, embedding, Chroma upserts); the FLOP fraction counts the "
              "model's forward pass only.\n")
        if a.part == "ingest":
            return 0
    import numpy as np

    from ragsafe.corpora.benchmark import load_benchmark
    from ragsafe.corpora.chunking import ChunkParams, chunk_documents
    from ragsafe.corpora.documents import load_corpus
    from ragsafe.retrievers.embedders import get_embedder

    embedder = get_embedder()
    base_docs = chunk_documents(load_corpus("demo"), embedder.tokenizer, ChunkParams())
    t0 = time.perf_counter()
    base_vecs = np.asarray(embedder.embed_documents([d.page_content for d in base_docs]), dtype=np.float32)
    embed_rate = len(base_docs) / (time.perf_counter() - t0)
    queries = [q.question for q in load_benchmark("demo").select()]
    qvecs = np.asarray(embedder.embed_documents(queries), dtype=np.float32)

    header(f"Retrieval: ragsafe ChromaStore vs chromadb direct (PersistentClient, k={a.k}, medians of {a.reps})")
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        docs, vecs = make_data(n, base_docs, base_vecs)
        emb = LookupEmbedder([d.page_content for d in docs], vecs, queries, qvecs)
        rates = {"ragsafe": [], "direct": []}
        lat = {"ragsafe": [], "direct": []}
        with tempfile.TemporaryDirectory() as tmp:
            for rep in range(a.reps):
                first_ours = rep % 2 == 0  # arms alternate which ingests first
                if not first_ours:
                    rates["direct"].append(direct_ingest(Path(tmp) / f"direct{rep}", docs, emb))
                rate, store, client = ragsafe_ingest(Path(tmp) / f"ragsafe{rep}", docs, emb)
                rates["ragsafe"].append(rate)
                if first_ours:
                    rates["direct"].append(direct_ingest(Path(tmp) / f"direct{rep}", docs, emb))
                ours, direct = query_latencies(store, client, emb, queries, a.k, a.rounds, seed=rep)
                lat["ragsafe"].append(ours)
                lat["direct"].append(direct)
                del store, client
                for name in ("ragsafe", "direct"):
                    shutil.rmtree(Path(tmp) / f"{name}{rep}", ignore_errors=True)
        r_rate, d_rate = median(rates["ragsafe"]), median(rates["direct"])
        r50, d50 = (median([pct(x, 50) for x in lat[arm]]) * 1000 for arm in ("ragsafe", "direct"))
        r95, d95 = (median([pct(x, 95) for x in lat[arm]]) * 1000 for arm in ("ragsafe", "direct"))
        rows.append([f"{n:,}", f"{r_rate:,.0f}", f"{d_rate:,.0f}", f"{r_rate / d_rate:.2f}",
                     f"{r50:.2f} / {r95:.2f}", f"{d50:.2f} / {d95:.2f}", f"{d50 / r50:.2f} / {d95 / r95:.2f}"])
    table(["chunks", "ingest ragsafe chunks/s", "ingest direct chunks/s", "ingest ratio",
           "query ragsafe p50/p95 ms", "query direct p50/p95 ms", "query ratio p50/p95"], rows)
    print(f"query latencies: {len(queries)} demo question stems x {a.rounds} rounds per repetition, both arms "
          f"on the same collection, interleaved in random order; medians over repetitions of each percentile")
    print(f"embedding itself (all-MiniLM-L6-v2, CPU, batch 64, the {len(base_docs)} demo chunks): "
          f"{embed_rate:,.0f} chunks/s; the same cost in both arms, so excluded from the ingest figures "
          f"(at this rate 100,000 chunks take {100_000 / embed_rate / 60:.0f} min to embed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
