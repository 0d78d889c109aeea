"""Diagrams of registered graphs: LangGraph's Mermaid text, or a PNG drawn locally with matplotlib.

LangGraph's own PNG rendering needs a web service (mermaid.ink) or pygraphviz; :func:`draw_png`
lays the graph out itself (nodes in layers by their distance from the start, loops drawn as
curved edges, conditional edges dashed) so it works offline.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from ragsafe.graphs.base import Deps, graphs


class _Null:
    """A stand-in dependency: building a graph only wires nodes, it calls nothing."""

    name = "null"

    async def search(self, query, k):  # pragma: no cover - never called while drawing
        raise RuntimeError("diagram-only retriever")

    def describe(self):
        return {}


def _drawable(name: str, overrides: dict[str, Any] | None = None):
    spec = graphs.get(name)
    app = spec.build(Deps(llm=None, retriever=_Null()), spec.make_params(overrides or {}))
    return app.get_graph(xray=True)


def mermaid(name: str, overrides: dict[str, Any] | None = None) -> str:
    return _drawable(name, overrides).draw_mermaid()


def layers(nodes: list[str], edges: list[tuple[str, str]], start: str = "__start__") -> dict[str, int]:
    """Each node's layer: its shortest distance (in edges) from ``start``; unreachable nodes go last."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
    depth = {start: 0} if start in succ else {}
    todo = deque(depth)
    while todo:
        n = todo.popleft()
        for m in succ.get(n, []):
            if m not in depth:
                depth[m] = depth[n] + 1
                todo.append(m)
    last = max(depth.values(), default=-1) + 1
    return {n: depth.get(n, last) for n in nodes}


def draw_png(name: str, path: str | Path, overrides: dict[str, Any] | None = None, *, title: str | None = None) -> Path:
    """Draw graph ``name`` (built with ``overrides`` for its params) to a PNG file; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png_bytes(name, overrides, title=title))
    return out


def png_bytes(name: str, overrides: dict[str, Any] | None = None, *, title: str | None = None) -> bytes:
    """The diagram of graph ``name`` as PNG bytes (see :func:`draw_png`)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    g = _drawable(name, overrides)
    nodes = list(g.nodes)
    edges = [(e.source, e.target, bool(e.conditional)) for e in g.edges]
    layer = layers(nodes, [(a, b) for a, b, _ in edges])
    rows: dict[int, list[str]] = {}
    for n in nodes:
        rows.setdefault(layer[n], []).append(n)
    width = max(len(r) for r in rows.values())
    pos = {}
    for d, members in rows.items():
        for i, n in enumerate(members):
            pos[n] = ((i - (len(members) - 1) / 2) * 2.6, -d * 1.4)
    fig_w = max(4.0, 2.6 * width + 1.5)
    fig_h = max(3.0, 1.4 * len(rows) + 1.0)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    label = {"__start__": "start", "__end__": "end"}
    for n, (x, y) in pos.items():
        terminal = n in label
        ax.add_patch(FancyBboxPatch((x - 1.0, y - 0.3), 2.0, 0.6, boxstyle="round,pad=0.02,rounding_size=0.25",
                                    facecolor="#e8e8e8" if terminal else "#d7ecea", edgecolor="#333333", lw=1.0))
        ax.text(x, y, label.get(n, n.replace("__start__", "start").replace("__end__", "end")),
                ha="center", va="center", fontsize=9)
    for a, b, cond in edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        style = "--" if cond else "-"
        if layer[b] > layer[a]:  # forward: bottom of the source to the top of the target
            start, end, bend = (x0, y0 - 0.3), (x1, y1 + 0.3), 0.0
        elif layer[b] == layer[a]:  # a side step within a layer: facing sides
            side = 1.0 if x1 > x0 else -1.0
            start, end, bend = (x0 + side, y0), (x1 - side, y1), 0.0
        else:  # a loop back up: out of the outer side of the source, curving outside the column
            side = -1.0 if x0 <= 0 else 1.0
            start, end, bend = (x0 + side, y0), (x1 + side, y1), (-0.5 if side < 0 else 0.5)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, lw=1.0, color="#333333",
                                     linestyle=style, connectionstyle=f"arc3,rad={bend}"))
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.9, max(xs) + 1.9)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.8)
    ax.set_axis_off()
    ax.set_title(title or name, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
