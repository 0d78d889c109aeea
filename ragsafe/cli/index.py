"""`ragsafe index`: chunk a corpus and ingest it into Chroma; list, rebuild and query collections."""

from __future__ import annotations

import json

from ragsafe.cli.common import chroma_args, embedder_config
from ragsafe.config import ConfigError


def cmd_index(a) -> int:
    emb_cfg = embedder_config(a)
    if emb_cfg is not None and not emb_cfg.remote and not a.list:
        from ragsafe.retrievers.embedders import locate

        locate(emb_cfg.name)  # a bad name or an unreachable hub fails before chromadb and torch load
    from ragsafe.corpora.chunking import ChunkParams
    from ragsafe.retrievers.chroma import ChromaStore, build_index, list_collections, make_client
    from ragsafe.retrievers.embedders import get_embedder

    if a.list:
        rows = list_collections(make_client(a.chroma_path, a.chroma_url))
        print(json.dumps(rows, indent=1) if a.json else format_collections(rows))
        return 0
    if a.query:
        if not a.collection:
            raise ConfigError("--query needs --collection NAME (see `ragsafe index --list`)")
        client = make_client(a.chroma_path, a.chroma_url)
        if a.collection not in {getattr(c, "name", c) for c in client.list_collections()}:
            raise ConfigError(f"no Chroma collection {a.collection!r} here; `ragsafe index --list` shows them")
        store = ChromaStore(client, a.collection, get_embedder(emb_cfg))
        for d in store.query(a.query, a.k):
            print(f"{d.metadata['rank']:3d}  {d.metadata['score']:.3f}  {d.metadata['chunk_id']}")
        return 0
    store = build_index(a.corpus, chroma_path=a.chroma_path, chroma_url=a.chroma_url,
                        chunk=ChunkParams(size=a.chunk_size, overlap=a.chunk_overlap, tokenizer=a.chunk_tokenizer),
                        embedder=emb_cfg, rebuild=a.rebuild, progress=True)
    print(json.dumps({"collection": store.name, "count": store.count(), "embedder": store.embedder.name,
                      "where": getattr(store.embedder, "where", None), **store.last_ingest}))
    return 0


def format_collections(rows: list[dict]) -> str:
    """`ragsafe index --list` as a table."""
    if not rows:
        return "no collections"
    head = ("collection", "chunks", "embedder", "dim", "chunking", "truncated")
    body = []
    for r in rows:
        ch = r.get("chunking") or {}
        chunking = (f"{ch.get('size')}/{ch.get('overlap')} {ch.get('tokenizer_name') or ch.get('tokenizer')}"
                    if ch else "?")
        cut = r.get("truncated")
        body.append((r["name"], str(r["count"]), str(r.get("embedder") or "?"), str(r.get("dim") or "?"), chunking,
                     "?" if cut is None else f"{cut} ({cut / r['count']:.0%})" if r["count"] else str(cut)))
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *body])


def register(sub) -> None:
    p = sub.add_parser("index", help="chunk a corpus and ingest it into Chroma (idempotent); --list shows the indexes")
    chroma_args(p)
    p.add_argument("--list", action="store_true", help="list the collections with embedder, chunking and counts")
    p.add_argument("--json", action="store_true", help="with --list: print JSON")
    p.add_argument("--rebuild", action="store_true", help="delete the collection first and embed every chunk again")
    p.add_argument("--collection", default=None, help="with --query: the collection to search")
    p.add_argument("--query", default=None, metavar="TEXT",
                   help="search --collection with this text (the embedder must be the collection's)")
    p.add_argument("-k", type=int, default=5, help="with --query: hits to print")
    p.set_defaults(fn=cmd_index)
