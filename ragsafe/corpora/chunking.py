"""Token-window chunking (the paper's setup: 300 tokens, 50 overlap, title prepended).

Tokens are counted with the embedder's own tokenizer; chunk text is cut from the original string
with the tokenizer's character offsets, so formatting survives. Chunk ids are stable:
``{doc_id}#c{index}``, and each chunk carries the sha256 of its text, which makes ingestion
idempotent.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Protocol

from langchain_core.documents import Document

from ragsafe.defaults import CHUNK_OVERLAP, CHUNK_SIZE


class OffsetTokenizer(Protocol):
    def __call__(self, text: str, **kw): ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChunkParams:
    size: int = CHUNK_SIZE
    """Tokens of body text per chunk (the title is prepended on top)."""
    overlap: int = CHUNK_OVERLAP
    """Tokens shared by consecutive chunks."""
    prepend_title: bool = True
    """Start each chunk with the document title (the paper's setup)."""

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"chunk size={self.size}: must be > 0 tokens")
        if not 0 <= self.overlap < self.size:
            raise ValueError(f"chunk overlap={self.overlap}: must be >= 0 and < size ({self.size})")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_documents(docs: list[Document], tokenizer, params: ChunkParams = ChunkParams()) -> list[Document]:
    """Split ``docs`` into overlapping token windows.

    Args:
        docs: documents with ``metadata['doc_id']`` and ``['title']``.
        tokenizer: a Hugging Face fast tokenizer (offsets needed).
        params: window size, overlap, title.

    Returns:
        Chunk ``Document``s with metadata ``chunk_id``, ``doc_id``, ``title``, ``chunk_index``,
        ``n_tokens``, ``content_hash``.
    """
    out: list[Document] = []
    step = params.size - params.overlap
    for doc in docs:
        text = doc.page_content
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        n = len(offsets)
        starts, s = [], 0
        while True:
            starts.append(s)
            if s + params.size >= n:
                break
            s += step
        for i, s in enumerate(starts):
            e = min(s + params.size, n)
            if n == 0:
                body = text
            else:
                # extend the window's end to the end of its last token, the start to its first token
                c0 = offsets[s][0] if s < n else 0
                c1 = offsets[e - 1][1] if e - 1 < n else len(text)
                body = text[c0:c1]
            title = doc.metadata.get("title", "")
            chunk_text = f"{title}\n{body}" if params.prepend_title and title else body
            doc_id = doc.metadata["doc_id"]
            cid = f"{doc_id}#c{i}"
            md = {k: v for k, v in doc.metadata.items() if isinstance(v, (str, int, float, bool))}
            md.update(chunk_id=cid, doc_id=doc_id, chunk_index=i, n_tokens=e - s,
                      content_hash=content_hash(chunk_text))
            out.append(Document(page_content=chunk_text, metadata=md, id=cid))
    return out
