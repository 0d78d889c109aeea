"""`ragsafe index`: chunk a corpus and ingest it into Chroma."""

from __future__ import annotations

import json

from ragsafe.cli.common import chroma_args


def cmd_index(a) -> int:
    from ragsafe.corpora.chunking import ChunkParams
    from ragsafe.retrievers.chroma import build_index

    store = build_index(a.corpus, chroma_path=a.chroma_path, chroma_url=a.chroma_url,
                        chunk=ChunkParams(size=a.chunk_size, overlap=a.chunk_overlap))
    print(json.dumps({"collection": store.name, "count": store.count(), **store.last_ingest}))
    return 0


def register(sub) -> None:
    p = sub.add_parser("index", help="chunk a corpus and ingest it into Chroma (idempotent)")
    chroma_args(p)
    p.set_defaults(fn=cmd_index)
