"""Diagrams of registered graphs, drawn by LangGraph itself."""

from __future__ import annotations

from .base import Deps, graphs


class _Null:
    """A stand-in dependency: building a graph only wires nodes, it calls nothing."""

    name = "null"

    async def search(self, query, k):  # pragma: no cover - never called while drawing
        raise RuntimeError("diagram-only retriever")

    def describe(self):
        return {}


def mermaid(name: str) -> str:
    spec = graphs.get(name)
    app = spec.build(Deps(llm=None, retriever=_Null()), spec.make_params({}))
    return app.get_graph(xray=True).draw_mermaid()
