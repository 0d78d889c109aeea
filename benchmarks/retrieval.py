"""Retrieval: ingest rate and query latency of ragsafe's Chroma store against chromadb called directly.

Embedding 100k chunks with all-MiniLM-L6-v2 on 2 CPU cores would take most of an hour per arm and
would be the same work in both arms, so the arms share precomputed vectors and the embedder's own
rate is measured separately:

* the demo corpus is chunked as ragsafe chunks it and every chunk is embedded once, for real;
* a collection of N chunks holds copies of those chunks, each with its own text suffix and its
  vector perturbed by seeded Gaussian noise (sigma 0.05) and renormalised, so neighbours stay
  meaningful and no two vectors are equal;
* both arms get vectors from the same lookup "embedder", in batches of 256, into a fresh
  PersistentClient folder per repetition (arms alternate);
* queries: the demo question stems, embedded once for real; k = 10.

The ratio is ragsafe over direct for the rate, direct over ragsafe for latency (1.00 = no overhead,
higher is better; target >= 0.95).

    python benchmarks/retrieval.py [--sizes 10000,100000] [--reps 5]
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


def ragsafe_arm(path: Path, docs, emb, queries, k: int):
    import chromadb

    from ragsafe.retrievers.chroma import ChromaStore

    client = chromadb.PersistentClient(path=str(path))
    store = ChromaStore(client, "bench", emb)
    t0 = time.perf_counter()
    store.ingest(docs, batch=BATCH)
    ingest = time.perf_counter() - t0
    lat = []
    for q in queries:
        t = time.perf_counter()
        store.query(q, k)
        lat.append(time.perf_counter() - t)
    # the same store with its collection count held instead of asked on every query (a proposed fix)
    n = store.count()
    store.count = lambda: n
    lat_fix = []
    for q in queries:
        t = time.perf_counter()
        store.query(q, k)
        lat_fix.append(time.perf_counter() - t)
    return len(docs) / ingest, lat, lat_fix


def direct_arm(path: Path, docs, emb, queries, k: int):
    import chromadb

    from ragsafe.retrievers.chroma import _clean_md

    client = chromadb.PersistentClient(path=str(path))
    col = client.get_or_create_collection("bench", embedding_function=None, metadata={"hnsw:space": "cosine"})
    t0 = time.perf_counter()
    for i in range(0, len(docs), BATCH):
        part = docs[i:i + BATCH]
        col.upsert(ids=[d.metadata["chunk_id"] for d in part], embeddings=emb.embed_documents([d.page_content for d in part]),
                   documents=[d.page_content for d in part], metadatas=[_clean_md(d.metadata) for d in part])
    ingest = time.perf_counter() - t0
    lat = []
    for q in queries:
        t = time.perf_counter()
        col.query(query_embeddings=[emb.embed_query(q)], n_results=k, include=["documents", "metadatas", "distances"])
        lat.append(time.perf_counter() - t)
    return len(docs) / ingest, lat


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    a = ap.parse_args()
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
        res = {"ragsafe": [], "direct": []}
        with tempfile.TemporaryDirectory() as tmp:
            for rep in range(a.reps):
                order = (("ragsafe", ragsafe_arm), ("direct", direct_arm))
                for name, fn in order if rep % 2 == 0 else order[::-1]:
                    path = Path(tmp) / f"{name}{rep}"
                    res[name].append(fn(path, docs, emb, queries, a.k))
                    shutil.rmtree(path, ignore_errors=True)
        r_rate = median([r[0] for r in res["ragsafe"]])
        d_rate = median([r[0] for r in res["direct"]])
        r50 = median([pct(r[1], 50) for r in res["ragsafe"]]) * 1000
        d50 = median([pct(r[1], 50) for r in res["direct"]]) * 1000
        r95 = median([pct(r[1], 95) for r in res["ragsafe"]]) * 1000
        d95 = median([pct(r[1], 95) for r in res["direct"]]) * 1000
        f50 = median([pct(r[2], 50) for r in res["ragsafe"]]) * 1000
        f95 = median([pct(r[2], 95) for r in res["ragsafe"]]) * 1000
        rows.append([f"{n:,}", f"{r_rate:,.0f}", f"{d_rate:,.0f}", f"{r_rate / d_rate:.2f}",
                     f"{r50:.2f} / {r95:.2f}", f"{d50:.2f} / {d95:.2f}", f"{d50 / r50:.2f} / {d95 / r95:.2f}",
                     f"{f50:.2f} / {f95:.2f} ({d50 / f50:.2f} / {d95 / f95:.2f})"])
    table(["chunks", "ingest ragsafe chunks/s", "ingest direct chunks/s", "ingest ratio",
           "query ragsafe p50/p95 ms", "query direct p50/p95 ms", "query ratio p50/p95",
           "query ragsafe, count held: p50/p95 ms (ratio)"], rows)
    print(f"embedding itself (all-MiniLM-L6-v2, CPU, batch 64, the {len(base_docs)} demo chunks): "
          f"{embed_rate:,.0f} chunks/s; the same cost in both arms, so excluded from the ingest figures "
          f"(at this rate 100,000 chunks take {100_000 / embed_rate / 60:.0f} min to embed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
