"""Chroma store: embedded ``PersistentClient`` by default, ``HttpClient`` for a `chroma run` server.

ragsafe computes embeddings itself and hands Chroma vectors (the collection has no embedding
function, so Chroma's default model is never loaded). Ingestion is idempotent: each chunk stores
the sha256 of its text, and only new or changed chunks are embedded; chunks that left the corpus
are deleted. Search is cosine on normalised vectors (= inner product, the paper's metric); for
corpora of this size Chroma's HNSW returns the exact neighbours.

A collection records its embedder (name, revision or file hash, dimension, prefixes,
normalisation) and its chunking (window, overlap, tokenizer) in its metadata, with the number of
chunks the embedder truncated. Its name carries a hash of both, so two embedders never share a
collection; opening one with another embedder raises :class:`EmbedderMismatch` naming both.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import chromadb
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ragsafe import config
from ragsafe.config import ConfigError
from ragsafe.corpora.chunking import ChunkParams, chunk_documents, resolve_tokenizer
from ragsafe.corpora.chunking import identity as chunk_identity
from ragsafe.retrievers.base import annotated
from ragsafe.retrievers.embedders import VECTOR_FIELDS, Embedder, EmbedderConfig, get_embedder, vector_key

TRUNCATION_WARN = 0.05
"""Warn when more than this fraction of chunks is longer than the embedder's max_seq_length."""


class EmbedderMismatch(ConfigError):
    """A collection is queried or filled with an embedder other than the one that built it."""


def make_client(path: str | Path | None = None, url: str | None = None):
    """``PersistentClient`` under ``path`` (default ``$RAGSAFE_HOME/chroma``), or ``HttpClient`` for ``url``."""
    if url:
        u = urlparse(url if "://" in url else f"http://{url}")
        return chromadb.HttpClient(host=u.hostname or "127.0.0.1", port=u.port or 8000, ssl=u.scheme == "https")
    path = Path(path) if path else config.home() / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path))


def collection_name(corpus: str, embedder: str, params: ChunkParams, key: str = "",
                    chunking: dict | None = None) -> str:
    """``{corpus}-{embedder}-{size}-{overlap}[-{tokenizer}]-{hash}``, at most 63 characters; the hash
    covers the embedder's vector identity (``key``) and the chunking (``chunking``: with the name of
    the tokenizer that counted), so nothing else shares it."""
    tok = "" if params.tokenizer == "embedder" else "-" + params.tokenizer.replace(":", "_").rsplit("/", 1)[-1]
    readable = re.sub(r"[^a-zA-Z0-9._-]+", "-", f"{corpus}-{embedder}-{params.size}-{params.overlap}{tok}")
    tag = config.stable_hash({"embedder": key, "chunk": chunking or dataclasses.asdict(params)})[:10] if key else ""
    room = 63 - (len(tag) + 1 if tag else 0)
    base = readable.strip("-._")[:room].strip("-._")
    base = f"{base}-{tag}" if tag else base
    return base if len(base) >= 3 else f"rs-{base}"


def _vector_identity(ident: dict | None) -> dict:
    return {k: ident.get(k) for k in VECTOR_FIELDS} if ident else {}


def _short(ident: dict) -> str:
    bits = [str(ident.get("name") or ident.get("model"))]
    for k in ("revision", "files_sha256"):
        if ident.get(k):
            bits.append(f"{k} {str(ident[k])[:12]}")
    bits.append(f"{ident.get('dim')} dims")
    if ident.get("passage_prefix"):
        bits.append(f"passage prefix {ident['passage_prefix']!r}")
    if ident.get("normalize") is False:
        bits.append("not normalised")
    if ident.get("max_seq_length"):
        bits.append(f"max_seq_length {ident['max_seq_length']}")
    return ", ".join(bits)


def stored_facts(collection) -> dict[str, Any]:
    """What ragsafe recorded on a collection: embedder, chunking, counts (empty for foreign ones)."""
    md = collection.metadata or {}
    out: dict[str, Any] = {k: md.get(k) for k in ("embedder", "chunks", "truncated", "truncated_fraction",
                                                  "built_at", "embed_seconds", "ragsafe") if k in md}
    for k in ("embedder_identity", "chunking"):
        if md.get(k):
            try:
                out[k] = json.loads(md[k])
            except ValueError:
                out[k] = md[k]
    return out


def list_collections(client) -> list[dict[str, Any]]:
    """Every collection of a Chroma store with its embedder, chunking and counts."""
    rows = []
    for c in client.list_collections():
        col = c if hasattr(c, "count") else client.get_collection(c)
        facts = stored_facts(col)
        ident = facts.get("embedder_identity") or {}
        chunk = facts.get("chunking") or {}
        rows.append({"name": col.name, "count": col.count(), "embedder": facts.get("embedder") or ident.get("name"),
                     "embedder_key": vector_key(ident) if ident else None,
                     "dim": ident.get("dim"), "chunking": chunk, "truncated": facts.get("truncated"),
                     "built_at": facts.get("built_at"), "ragsafe": facts.get("ragsafe")})
    return sorted(rows, key=lambda r: r["name"])


class ChromaStore:
    """One chunked corpus in one Chroma collection.

    Args:
        client: a Chroma client (:func:`make_client`).
        name: collection name.
        embedder: the embedder (anything with ``embed_documents``/``embed_query``; one with an
            ``identity()`` is recorded on the collection and checked against it).
        chunking: the chunking to record (see :func:`ragsafe.corpora.chunking.identity`).

    Raises:
        EmbedderMismatch: the collection was built with another embedder.
    """

    def __init__(self, client, name: str, embedder: Any = None, *, chunking: dict | None = None) -> None:
        self.client = client
        self.name = name
        self.embedder = embedder or get_embedder()
        self.chunking = chunking
        ident = self.embedder.identity() if hasattr(self.embedder, "identity") else None
        self.identity = ident
        md = {"hnsw:space": "cosine", "embedder": self.embedder.name, "ragsafe": "2"}
        if ident:
            md["embedder_identity"] = json.dumps(ident, sort_keys=True)
        if chunking:
            md["chunking"] = json.dumps(chunking, sort_keys=True)
        self.collection = client.get_or_create_collection(name, embedding_function=None, metadata=md)
        self.check_embedder()
        self.last_ingest: dict[str, Any] = {}
        self._size: int | None = None

    def check_embedder(self) -> None:
        """Refuse an embedder other than the collection's (vector-changing fields differ)."""
        facts = stored_facts(self.collection)
        stored = facts.get("embedder_identity")
        mine = self.identity
        if isinstance(stored, dict) and mine is not None:
            if _vector_identity(stored) != _vector_identity(mine):
                differ = [k for k in VECTOR_FIELDS if stored.get(k) != mine.get(k)]
                raise EmbedderMismatch(
                    f"Chroma collection {self.name!r} was built with embedder {_short(stored)}; this query "
                    f"embeds with {_short(mine)} (they differ in {', '.join(differ)}). Pass the index's "
                    f"embedder (--embedder {stored.get('name')}), or build an index for yours with "
                    f"`ragsafe index --embedder {mine.get('name')}`")
        elif facts.get("embedder") and facts["embedder"] != self.embedder.name:
            raise EmbedderMismatch(
                f"Chroma collection {self.name!r} was built with embedder {facts['embedder']!r}; this query "
                f"embeds with {self.embedder.name!r}. Pass --embedder {facts['embedder']}, or rebuild it "
                f"with `ragsafe index --rebuild`")

    def ingest(self, chunks: list[Document], batch: int | None = None,
               progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
        """Add new/changed chunks, delete vanished ones; returns counts (embedded=0 when unchanged).

        Chunks are embedded longest first, so each batch holds texts of similar length (less
        padding); ``progress(done, total, seconds)`` is called after each batch.
        """
        t0 = time.perf_counter()
        self._size = None
        existing = self.collection.get(include=["metadatas"])
        have = {i: (m or {}).get("content_hash") for i, m in zip(existing["ids"], existing["metadatas"])}
        want = {c.metadata["chunk_id"]: c for c in chunks}
        if len(want) != len(chunks):
            raise ValueError(f"duplicate chunk ids in the corpus for collection {self.name!r}")
        todo = [c for cid, c in want.items() if have.get(cid) != c.metadata["content_hash"]]
        todo.sort(key=lambda c: -len(c.page_content))
        stale = [cid for cid in have if cid not in want]
        if stale:
            self.collection.delete(ids=stale)
        if batch is None:  # an endpoint gets enough texts per slice to fill its request slots
            emb = self.embedder
            cfg = getattr(emb, "cfg", None)
            lanes = cfg.concurrency * (1 + len(cfg.replicas)) if cfg is not None and cfg.remote else 2
            batch = max(32, getattr(emb, "batch_size", 64) * lanes)
        t_embed, embed_s = time.perf_counter(), 0.0
        for i in range(0, len(todo), batch):
            part = todo[i:i + batch]
            t1 = time.perf_counter()
            vecs = self.embedder.embed_documents([c.page_content for c in part])
            embed_s += time.perf_counter() - t1
            self.collection.upsert(ids=[c.metadata["chunk_id"] for c in part], embeddings=vecs,
                                   documents=[c.page_content for c in part],
                                   metadatas=[_clean_md(c.metadata) for c in part])
            if progress:
                progress(i + len(part), len(todo), time.perf_counter() - t_embed)
        truncated = None
        counter = getattr(self.embedder, "count_truncated", None)
        if counter is not None:
            truncated = counter([c.page_content for c in chunks])
        self.last_ingest = {"chunks": len(want), "embedded": len(todo), "deleted": len(stale),
                            "seconds": round(time.perf_counter() - t0, 3), "embed_seconds": round(embed_s, 3),
                            "chunks_per_s": round(len(todo) / embed_s, 2) if todo and embed_s > 0 else None,
                            "truncated": truncated,
                            "max_seq_length": getattr(self.embedder, "max_seq_length", None)}
        if todo or stale or "chunks" not in stored_facts(self.collection):
            self._record(len(want), truncated, embed_s)
        return self.last_ingest

    def _record(self, n: int, truncated: int | None, embed_s: float) -> None:
        md = {k: v for k, v in (self.collection.metadata or {}).items() if not k.startswith("hnsw:")}
        md.update(chunks=n, built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  embed_seconds=round(embed_s, 3))
        if truncated is not None:
            md.update(truncated=truncated, truncated_fraction=round(truncated / n, 4) if n else 0.0)
        self.collection.modify(metadata=md)

    def facts(self) -> dict[str, Any]:
        """What the collection records about itself (embedder, chunking, counts)."""
        return stored_facts(self.collection)

    def count(self) -> int:
        return self.collection.count()

    def content_hash(self) -> str:
        """Hash over (chunk id, content hash) of the stored collection: the index identity for run records."""
        got = self.collection.get(include=["metadatas"])
        pairs = sorted((i, (m or {}).get("content_hash", "")) for i, m in zip(got["ids"], got["metadatas"]))
        return hashlib.sha256(repr(pairs).encode()).hexdigest()

    def query(self, query: str, k: int) -> list[Document]:
        vec = self.embedder.embed_query(query)
        return self.query_vector(vec, k)

    async def aquery(self, query: str, k: int) -> list[Document]:
        """:meth:`query` for an event loop: an endpoint embedder embeds in the loop (through its
        gate), a local one in a worker thread; the Chroma lookup runs in a worker thread."""
        embed = getattr(self.embedder, "aembed_query", None)
        if embed is None:
            return await asyncio.to_thread(self.query, query, k)
        vec = await embed(query)
        return await asyncio.to_thread(self.query_vector, vec, k)

    def query_vector(self, vec: list[float], k: int) -> list[Document]:
        # the size is read once per ingest, not per query: a count() round trip per query would
        # double query latency against a Chroma server
        if self._size is None:
            self._size = self.count()
        n = self._size
        if n == 0:
            raise RuntimeError(f"Chroma collection {self.name!r} is empty; build it with `ragsafe index`")
        res = self.collection.query(query_embeddings=[vec], n_results=min(k, n),
                                    include=["documents", "metadatas", "distances"])
        return [annotated(text, md, rank=rank, score=1.0 - dist, fallback_id=cid)
                for rank, (cid, text, md, dist) in enumerate(zip(res["ids"][0], res["documents"][0],
                                                                  res["metadatas"][0], res["distances"][0]), start=1)]


class RetrievalFailed(RuntimeError):
    """A retrieval that still failed after its retries (the Chroma server is gone)."""


def _transient(e: BaseException) -> bool:
    """Faults of the way to a Chroma server (or of the server itself) that a retry may fix; programming
    errors (TypeError, KeyError, ...) are not."""
    if isinstance(e, (OSError, ConnectionError, TimeoutError)):
        return True
    mod = type(e).__module__ or ""
    return mod.startswith(("httpx", "httpcore", "chromadb", "urllib3", "requests"))


def _clean_md(md: dict) -> dict:
    return {k: v for k, v in md.items() if isinstance(v, (str, int, float, bool)) and k not in ("rank", "score")}


class ChromaRetriever(BaseRetriever):
    """Dense top-k over a :class:`ChromaStore`; both a ragsafe ``Retriever`` and a langchain ``BaseRetriever``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    store: Any
    k: int = 10
    name: str = "chroma"

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self.store.query(query, self.k)

    retries: int = 4
    """Retries of a query that failed on the way to a Chroma server (connection lost, timeout)."""
    backoff: float = 0.5
    """First wait between retries, seconds (doubles each time)."""

    async def search(self, query: str, k: int) -> list[Document]:
        """Top-``k`` chunks. A lost Chroma server is retried like an LLM request; a query that still
        fails raises :class:`RetrievalFailed` (the runner records an error sample, never crashes)."""
        aquery = getattr(self.store, "aquery", None)
        for attempt in range(self.retries + 1):
            try:
                if aquery is not None:
                    return await aquery(query, k)
                return await asyncio.to_thread(self.store.query, query, k)
            except Exception as e:  # noqa: BLE001  (sorted below)
                if not _transient(e):
                    raise
                if attempt == self.retries:
                    raise RetrievalFailed(f"Chroma query on collection {self.store.name!r} failed after "
                                          f"{attempt + 1} attempt(s): {type(e).__name__}: {str(e)[:200]}; is the "
                                          "Chroma server (--chroma-url) running? Rerun with --retry-errors once it "
                                          "is") from e
                await asyncio.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def describe(self) -> dict[str, Any]:
        s = self.store
        out = {"kind": "chroma", "collection": s.name, "embedder": s.embedder.name, "chunks": s.count(),
               "index_hash": s.content_hash()}
        if getattr(s, "identity", None):
            out["embedder_identity"] = s.identity
        if getattr(s, "chunking", None):
            out["chunking"] = s.chunking
        return out


def ingest_printer(label: str, where: str = "", stream=None, every: float = 2.0) -> Callable[[int, int, float], None]:
    """A progress callback: a bar with chunks/s and ETA, redrawn in place on a terminal, one line
    every ``every`` seconds otherwise."""
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    last = [0.0]

    def show(done: int, total: int, seconds: float) -> None:
        rate = done / seconds if seconds > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("nan")
        width = 24
        fill = int(width * done / total) if total else width
        line = (f"embedding {label}{f' on {where}' if where else ''}: [{'#' * fill}{'.' * (width - fill)}] "
                f"{done}/{total} chunks, {rate:.1f} chunks/s, ETA {eta:.0f}s")
        if tty:
            stream.write("\r" + line + ("\n" if done >= total else ""))
            stream.flush()
        elif done >= total or seconds - last[0] >= every:
            last[0] = seconds
            stream.write(line + "\n")
            stream.flush()

    return show


def build_index(corpus: str = "demo", *, chroma_path: str | Path | None = None, chroma_url: str | None = None,
                chunk: ChunkParams = ChunkParams(), docs: list[Document] | None = None,
                embedder: EmbedderConfig | Embedder | None = None, rebuild: bool = False,
                tokenize_with: Embedder | None = None,
                progress: Callable[[int, int, float], None] | bool | None = None,
                warn: Callable[[str], None] | None = None, label: str | None = None) -> ChromaStore:
    """Load + chunk ``corpus`` and ingest it (idempotently) into its collection.

    Args:
        corpus: registered corpus, folder or ``.jsonl`` dump (its label names the collection).
        chroma_path: PersistentClient folder; chroma_url: a ``chroma run`` server instead.
        chunk: window, overlap and tokenizer.
        docs: the corpus already loaded.
        embedder: an :class:`EmbedderConfig` (default: the packaged all-MiniLM-L6-v2) or a loaded embedder.
        rebuild: delete the collection first and embed everything again.
        tokenize_with: the embedder whose tokenizer ``chunk.tokenizer="embedder"`` means (default: the
            index's own). A grid over embedders chunks every index with the run's, so all variants
            search the same chunks and the comparison isolates the embedder.
        progress: a ``(done, total, seconds)`` callback, True for a bar on stderr, None/False for none.
        warn: where the truncation warning goes (default: stderr).
        label: names the collection instead of the corpus (a poisoned corpus gets a collection of its own).
    """
    from ragsafe.corpora.documents import load_corpus

    emb = embedder if isinstance(embedder, Embedder) or hasattr(embedder, "embed_documents") \
        else get_embedder(embedder or EmbedderConfig())
    docs = docs if docs is not None else load_corpus(corpus)
    tokenizer, tok_name = resolve_tokenizer(chunk.tokenizer, tokenize_with or emb)
    chunks = chunk_documents(docs, tokenizer, chunk)
    label = label or (Path(corpus).name if ("/" in corpus or Path(corpus).exists()) else corpus)
    client = make_client(chroma_path, chroma_url)
    chunking = chunk_identity(chunk, tok_name)
    name = collection_name(label, emb.name.rsplit("/", 1)[-1], chunk, emb.key(), chunking)
    if rebuild and name in {getattr(c, "name", c) for c in client.list_collections()}:
        client.delete_collection(name)
    store = ChromaStore(client, name, emb, chunking=chunking)
    if progress is True:
        progress = ingest_printer(label, getattr(emb, "where", ""))
    info = store.ingest(chunks, progress=progress or None)
    n, cut = info["chunks"], info.get("truncated")
    if info["embedded"] and cut is not None and n and cut / n > TRUNCATION_WARN:
        (warn or (lambda m: print(m, file=sys.stderr)))(
            f"warning: {cut} of {n} chunks ({cut / n:.0%}) of {name} are longer than {emb.name}'s "
            f"max_seq_length ({info['max_seq_length']} word pieces) and were embedded truncated (their full "
            f"text still reaches the LLM); use smaller --chunk-size or an embedder with a longer window")
    return store
