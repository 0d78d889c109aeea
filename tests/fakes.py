"""Scripted fakes for unit tests: replies are set up front and every request is recorded."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from langchain_core.documents import Document

from ragsafe.llm.client import Completion
class ScriptedLLM:
    """Stands in for :class:`ragsafe.llm.client.LLM`. ``replies`` is a list of texts, or a function of the
    messages that returns the text (so routing tests can answer per role)."""

    def __init__(self, replies: list[str] | Callable[[list[dict]], str], model: str = "scripted") -> None:
        self.replies = replies
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.logprobs_supported = None
        self.calls = 0
        self.cache_hits = 0

    async def chat(self, messages, **params) -> Completion:
        self.requests.append({"messages": messages, **params})
        self.calls += 1
        if callable(self.replies):
            text = self.replies(messages)
        else:
            if not self.replies:
                raise AssertionError(f"ScriptedLLM ran out of replies at call {self.calls}")
            text = self.replies.pop(0)
        return Completion(text=text, model=self.model, prompt_tokens=sum(len(m["content"]) // 4 for m in messages),
                          completion_tokens=max(1, len(text) // 4), request={"model": self.model,
                                                                             "messages": messages, **params})

    def describe(self):
        return {"model": self.model}


@dataclasses.dataclass
class ListRetriever:
    """Keyword-overlap retriever over a fixed list of documents; records queries."""

    docs: list[Document]
    name: str = "list"
    queries: list[str] = dataclasses.field(default_factory=list)

    async def search(self, query: str, k: int) -> list[Document]:
        from ragsafe.retrievers.base import annotate

        self.queries.append(query)
        words = set(query.lower().split())
        scored = sorted(self.docs, key=lambda d: -len(words & set(d.page_content.lower().split())))
        top = scored[:k]
        return annotate(top, [float(len(words & set(d.page_content.lower().split()))) for d in top])

    def describe(self):
        return {"kind": "list", "n": len(self.docs)}


def doc(doc_id: str, text: str, title: str | None = None) -> Document:
    return Document(page_content=text, id=f"{doc_id}#c0",
                    metadata={"doc_id": doc_id, "chunk_id": f"{doc_id}#c0", "title": title or doc_id})
