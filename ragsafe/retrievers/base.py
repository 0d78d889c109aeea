"""The retriever protocol. Chunks are langchain-core ``Document``s.

Every returned chunk carries ``metadata['chunk_id']``, ``['doc_id']``, ``['score']`` (higher is
better) and ``['rank']`` (1-based). Any langchain-core ``BaseRetriever`` plugs in through
:class:`LangChainRetriever`, so a user's own store works in every graph.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, runtime_checkable

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever


@runtime_checkable
class Retriever(Protocol):
    name: str

    async def search(self, query: str, k: int) -> list[Document]:
        """Top-``k`` chunks for ``query``, best first."""
        ...

    def describe(self) -> dict[str, Any]:
        """Facts for the run record (collection, embedder, sizes, hashes)."""
        ...


def annotate(docs: list[Document], scores: list[float] | None = None) -> list[Document]:
    """Copy ``docs`` with rank, score and ids filled in (ids fall back to the Document id)."""
    return [annotated(d.page_content, d.metadata, rank=i + 1, score=None if scores is None else scores[i],
                      fallback_id=d.id or f"chunk-{i}") for i, d in enumerate(docs)]


def annotated(text: str, metadata: dict | None, *, rank: int, score: float | None, fallback_id: str) -> Document:
    """One hit as a Document: a copy of its metadata with rank, score (None keeps any it has), chunk
    and doc ids filled in; the id is the chunk id."""
    md = dict(metadata) if metadata else {}
    md["rank"] = rank
    if score is not None:
        md["score"] = float(score)
    md.setdefault("score", None)
    cid = md.get("chunk_id") or fallback_id
    md["chunk_id"] = cid
    md.setdefault("doc_id", str(cid).split("#", 1)[0])
    return Document(page_content=text, metadata=md, id=cid)


class LangChainRetriever:
    """Adapter: any langchain-core ``BaseRetriever`` as a ragsafe retriever.

    ``k`` is applied by truncation, and by setting the wrapped retriever's ``k``/``search_kwargs``
    when it has one.
    """

    def __init__(self, retriever: BaseRetriever, name: str | None = None) -> None:
        self.inner = retriever
        self.name = name or type(retriever).__name__

    async def search(self, query: str, k: int) -> list[Document]:
        r = self.inner
        if hasattr(r, "k"):
            r = r.model_copy(update={"k": k})
        elif isinstance(getattr(r, "search_kwargs", None), dict):
            r = r.model_copy(update={"search_kwargs": {**r.search_kwargs, "k": k}})
        docs = await r.ainvoke(query)
        return annotate(list(docs)[:k])

    def describe(self) -> dict[str, Any]:
        return {"kind": "langchain", "class": type(self.inner).__qualname__, "name": self.name}


def as_retriever(obj: Any) -> Retriever:
    """Accept a ragsafe retriever or any langchain-core ``BaseRetriever``."""
    if isinstance(obj, BaseRetriever) and not hasattr(obj, "search"):
        return LangChainRetriever(obj)
    if isinstance(obj, Retriever):
        return obj
    raise TypeError(f"{type(obj).__name__} is neither a ragsafe Retriever nor a langchain BaseRetriever")


async def to_thread(fn, *args, **kw):
    return await asyncio.to_thread(fn, *args, **kw)
