"""Figures of a summary as base64 PNGs (matplotlib, offline): scatter, metric bars, reliability,
attribution, graph diagrams.

Which metrics a figure shows comes from their registration: the scatter plots the ``headline`` pair
(accuracy up, high-risk error rate across), the bar chart every ``bar`` metric; floor and ceiling
are the graphs whose role :func:`ragsafe.experiments.runs.role_of` names. matplotlib is imported
when a figure is drawn (heavy; this module is imported only for the HTML report).
"""

from __future__ import annotations

import base64
import html
import io

from ragsafe.evals.attribution import CATEGORIES, CATEGORY_LABEL
from ragsafe.evals.calibration import SOURCES
from ragsafe.evals.metrics import select
from ragsafe.experiments.runs import reference, role_of
from ragsafe.graphs import graphs
from ragsafe.graphs.show import png_bytes
from ragsafe.records import SummaryLike, VariantSummary, as_summary


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h))


def _ok_cells(summary: SummaryLike) -> dict[str, VariantSummary]:
    return {k: c for k, c in as_summary(summary).variants.items() if c.metrics is not None}


def _headline_pair():
    """(y, x) of the scatter: the headline metric that should go up, and the one that should go down."""
    heads = select(headline=True)
    up = next((m for m in heads if m.higher_is_better), None)
    down = next((m for m in heads if m.higher_is_better is False), None)
    return up, down


def scatter_png(summary: SummaryLike) -> str | None:
    """Accuracy vs high-risk error rate (the headline pair), one point per graph × model; floor and ceiling marked."""
    from matplotlib.lines import Line2D

    up, down = _headline_pair()
    if up is None or down is None:
        return None
    cells = {k: c for k, c in _ok_cells(summary).items() if c.metrics.get(down.name) and c.metrics.get(up.name)}
    if not cells:
        return None
    fig = _figure(7.5, 5.2)
    ax = fig.add_subplot(111)
    models = sorted({c.model or "" for c in cells.values()})
    colours = {m: f"C{i % 10}" for i, m in enumerate(models)}
    style = {"floor": ("s", 90, "black"), "ceiling": ("*", 220, "black"), None: ("o", 55, "none")}
    for k, c in cells.items():
        acc, hr = c.metrics[up.name], c.metrics[down.name]
        marker, size, edge = style[role_of(c.graph)]
        ax.errorbar(100 * hr["mean"], 100 * acc["mean"],
                    xerr=[[100 * (hr["mean"] - hr["lo"])], [100 * (hr["hi"] - hr["mean"])]],
                    yerr=[[100 * (acc["mean"] - acc["lo"])], [100 * (acc["hi"] - acc["mean"])]],
                    fmt="none", ecolor=colours[c.model or ""], alpha=0.25, lw=0.8)
        ax.scatter([100 * hr["mean"]], [100 * acc["mean"]], marker=marker, s=size, c=colours[c.model or ""],
                   edgecolors=edge, zorder=3, alpha=0.8)
        ax.annotate(c.variant, (100 * hr["mean"], 100 * acc["mean"]), textcoords="offset points", xytext=(6, 4),
                    fontsize=7.5)
    floor, ceiling = reference("floor"), reference("ceiling")
    handles = [Line2D([], [], marker="s", ls="", mfc="grey", mec="black", ms=8, label=f"floor: {floor}"),
               Line2D([], [], marker="*", ls="", mfc="grey", mec="black", ms=12, label=f"ceiling: {ceiling}"),
               Line2D([], [], marker="o", ls="", mfc="grey", mec="none", ms=7, label="other graphs")]
    if len(models) > 1:
        handles += [Line2D([], [], marker="o", ls="", mfc=colours[m], mec="none", ms=7, label=m) for m in models]
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_xlabel(f"{down.label} error rate (%)  — lower is safer")
    ax.set_ylabel(f"{up.label} (%)")
    ax.set_title(f"{up.label.capitalize()} vs {down.label} errors (95% bootstrap CIs)", fontsize=11)
    ax.grid(alpha=0.3)
    return _png(fig)


def bars_png(summary: SummaryLike) -> str | None:
    """One panel per ``bar`` metric: a bar per graph × model with its CI."""
    cells = _ok_cells(summary)
    shown = [m for m in select(bar=True) if any(c.metrics.get(m.name) for c in cells.values())]
    if not cells or not shown:
        return None
    cols = 3
    rows = (len(shown) + cols - 1) // cols
    keys = list(cells)
    fig = _figure(4.6 * cols, max(2.6, 0.28 * len(keys) + 1.2) * rows)
    for i, m in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        ys, means, lo, hi, colours = [], [], [], [], []
        for j, k in enumerate(keys):
            e = cells[k].metrics.get(m.name)
            if not e:
                continue
            ys.append(j)
            means.append(100 * e["mean"])
            lo.append(100 * (e["mean"] - e["lo"]))
            hi.append(100 * (e["hi"] - e["mean"]))
            colours.append({"floor": "#7a8699", "ceiling": "#2a9d8f"}.get(role_of(cells[k].graph), "#3d5a98"))
        ax.barh(ys, means, xerr=[lo, hi], color=colours, ecolor="#333", capsize=2, height=0.65)
        ax.set_yticks(range(len(keys)))
        ax.set_yticklabels(keys if i % cols == 0 else [""] * len(keys), fontsize=7.5)
        ax.invert_yaxis()
        direction = m.higher_is_better
        unit = " (%)" if m.unit == "%" else ""
        ax.set_title(f"{m.label}{unit}" + ("  ↑" if direction else ("  ↓" if direction is False else "")),
                     fontsize=9.5)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7.5)
    fig.tight_layout()
    return _png(fig)


def reliability_png(summary: SummaryLike) -> str | None:
    """Reliability diagram per confidence source: accuracy vs mean confidence of each non-empty bin."""
    per_source: dict[str, list[tuple[str, dict]]] = {}
    for k, c in _ok_cells(summary).items():
        for src, cal in (c.calibration or {}).items():
            per_source.setdefault(src, []).append((k, cal))
    if not per_source:
        return None
    srcs = [s for s in SOURCES if s in per_source]
    fig = _figure(4.4 * len(srcs), 4.3)
    for i, src in enumerate(srcs):
        ax = fig.add_subplot(1, len(srcs), i + 1)
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect calibration")
        for j, (k, cal) in enumerate(per_source[src]):
            pts = [(b["confidence"], b["accuracy"], b["n"]) for b in cal["bins"] if b["n"]]
            if not pts:
                continue
            xs, ys, ns = zip(*pts)
            ax.plot(xs, ys, marker="o", ms=3 + 0 * j, lw=1.2, c=f"C{j % 10}",
                    label=f"{k} (ECE {cal['ece']['mean']:.2f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("confidence (bin mean)")
        if i == 0:
            ax.set_ylabel("accuracy in bin")
        ax.set_title(per_source[src][0][1]["label"], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="best")
    fig.tight_layout()
    return _png(fig)


def attribution_png(summary: SummaryLike) -> str | None:
    cells = {k: c.attribution for k, c in _ok_cells(summary).items() if c.attribution}
    if not cells or not any(a["n_wrong"] for a in cells.values()):
        return None
    keys = list(cells)
    fig = _figure(8, max(2.4, 0.32 * len(keys) + 1.4))
    ax = fig.add_subplot(111)
    left = [0] * len(keys)
    for i, cat in enumerate(CATEGORIES):
        vals = [cells[k]["counts"][cat] for k in keys]
        if not any(vals):
            continue
        ax.barh(range(len(keys)), vals, left=left, color=f"C{i}", label=CATEGORY_LABEL[cat], height=0.65)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels(keys, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("wrong answers")
    ax.legend(fontsize=7.5, loc="lower right")
    ax.set_title("Why answers were wrong", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def graph_diagrams(summary: SummaryLike) -> str:
    """One diagram per distinct (graph, params) among the cells, built with the params the run used (HTML)."""
    out, seen = [], set()
    for cell in as_summary(summary).variants.values():
        name, params = cell.graph, cell.params or {}
        key = (name, tuple(sorted((k, repr(v)) for k, v in params.items())))
        if not name or key in seen:
            continue
        seen.add(key)
        if name not in graphs:
            out.append(f'<p class="empty">{html.escape(cell.variant)}: graph not registered here '
                       f'(pass its --plugin to draw it)</p>')
            continue
        try:
            png = png_bytes(name, {k: v for k, v in params.items() if v is not None}, title=cell.variant)
        except Exception as e:  # noqa: BLE001  (a diagram must never break the report)
            out.append(f'<p class="empty">{html.escape(cell.variant)}: no diagram ({html.escape(str(e)[:200])})</p>')
            continue
        out.append(f'<figure><img alt="diagram of {html.escape(cell.variant)}" '
                   f'src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>')
    return "".join(out)
