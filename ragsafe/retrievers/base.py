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
    out = []
    for i, d in enumerate(docs):
        md = dict(d.metadata)
        md["rank"] = i + 1
        if scores is not None:
            md["score"] = float(scores[i])
        md.setdefault("score", None)
        cid = md.get("chunk_id") or d.id or f"chunk-{i}"
        md["chunk_id"] = cid
        md.setdefault("doc_id", str(cid).split("#", 1)[0])
        out.append(Document(page_content=d.page_content, metadata=md, id=cid))
    return out


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
