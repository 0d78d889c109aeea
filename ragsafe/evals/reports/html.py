"""A self-contained static HTML report: tables plus matplotlib figures embedded as base64 PNGs.

No script, no stylesheet or font from the network: the file opens anywhere, offline, and can be
mailed or archived as is. The tables are the ones of :mod:`.report` (same numbers as Markdown).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from typing import Any

from ragsafe.evals.reports.tables import Table, all_tables, header_line

SECTIONS = ["graph-table", "scatter", "metric-bars", "reliability", "calibration-table", "comparison-table",
            "attribution-table", "worst-case-table"]
"""Section ids every report contains (each says so when it has nothing to show)."""

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1400px;color:#1d2330;
padding:0 16px;line-height:1.4}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:30px;border-bottom:1px solid #d8dde6;padding-bottom:4px}
.meta{color:#5a6272;font-size:13px} .note{color:#5a6272;font-size:12px;margin:6px 0 0}
table{border-collapse:collapse;font-size:12.5px;margin-top:8px;display:block;overflow-x:auto}
th,td{border:1px solid #d8dde6;padding:4px 7px;text-align:left;white-space:nowrap;vertical-align:top}
th{background:#f1f4f8;font-weight:600} tr:nth-child(even) td{background:#fafbfd}
img{max-width:100%;border:1px solid #e4e8ee;margin-top:8px} .empty{color:#8a3b12;font-style:italic}
nav a{margin-right:12px;font-size:13px}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h))


def _ok_cells(summary: dict) -> dict[str, dict]:
    return {k: c for k, c in summary["variants"].items() if "metrics" in c}


def scatter_png(summary: dict) -> str | None:
    """Accuracy vs high-risk error rate, one point per graph × model; floor and ceiling marked."""
    cells = {k: c for k, c in _ok_cells(summary).items() if c["metrics"].get("high_risk_error_rate")}
    if not cells:
        return None
    fig = _figure(7.5, 5.2)
    ax = fig.add_subplot(111)
    models = sorted({c.get("model") or "" for c in cells.values()})
    colours = {m: f"C{i % 10}" for i, m in enumerate(models)}
    for k, c in cells.items():
        acc, hr = c["metrics"]["accuracy"], c["metrics"]["high_risk_error_rate"]
        marker, size, edge = ("s", 90, "black") if c["graph"] == "closed_book" else \
            (("*", 220, "black") if c["graph"] == "clean_evidence" else ("o", 55, "none"))
        ax.errorbar(100 * hr["mean"], 100 * acc["mean"],
                    xerr=[[100 * (hr["mean"] - hr["lo"])], [100 * (hr["hi"] - hr["mean"])]],
                    yerr=[[100 * (acc["mean"] - acc["lo"])], [100 * (acc["hi"] - acc["mean"])]],
                    fmt="none", ecolor=colours[c.get("model") or ""], alpha=0.25, lw=0.8)
        ax.scatter([100 * hr["mean"]], [100 * acc["mean"]], marker=marker, s=size, c=colours[c.get("model") or ""],
                   edgecolors=edge, zorder=3, alpha=0.8)
        ax.annotate(c["variant"], (100 * hr["mean"], 100 * acc["mean"]), textcoords="offset points", xytext=(6, 4),
                    fontsize=7.5)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="s", ls="", mfc="grey", mec="black", ms=8, label="floor: closed_book"),
               Line2D([], [], marker="*", ls="", mfc="grey", mec="black", ms=12, label="ceiling: clean_evidence"),
               Line2D([], [], marker="o", ls="", mfc="grey", mec="none", ms=7, label="other graphs")]
    if len(models) > 1:
        handles += [Line2D([], [], marker="o", ls="", mfc=colours[m], mec="none", ms=7, label=m) for m in models]
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_xlabel("high-risk error rate (%)  — lower is safer")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy vs high-risk errors (95% bootstrap CIs)", fontsize=11)
    ax.grid(alpha=0.3)
    return _png(fig)


BAR_METRICS = ["accuracy", "high_risk_error_rate", "unsafe_answer_rate", "contradiction_rate", "null_rate",
               "sc_accuracy", "dangerous_overconfidence_rate", "synchronized_failure_rate"]


def bars_png(summary: dict) -> str | None:
    """One panel per metric: a bar per graph × model with its CI."""
    from ragsafe.evals.metrics.greedy import metrics

    cells = _ok_cells(summary)
    shown = [m for m in BAR_METRICS if any(c["metrics"].get(m) for c in cells.values())]
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
            e = cells[k]["metrics"].get(m)
            if not e:
                continue
            ys.append(j)
            means.append(100 * e["mean"])
            lo.append(100 * (e["mean"] - e["lo"]))
            hi.append(100 * (e["hi"] - e["mean"]))
            g = cells[k]["graph"]
            colours.append("#7a8699" if g == "closed_book" else ("#2a9d8f" if g == "clean_evidence" else "#3d5a98"))
        ax.barh(ys, means, xerr=[lo, hi], color=colours, ecolor="#333", capsize=2, height=0.65)
        ax.set_yticks(range(len(keys)))
        ax.set_yticklabels(keys if i % cols == 0 else [""] * len(keys), fontsize=7.5)
        ax.invert_yaxis()
        direction = metrics.get(m).higher_is_better
        ax.set_title(f"{metrics.get(m).label} (%)" + ("  ↑" if direction else ("  ↓" if direction is False else "")),
                     fontsize=9.5)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7.5)
    fig.tight_layout()
    return _png(fig)


def reliability_png(summary: dict) -> str | None:
    """Reliability diagram per confidence source: accuracy vs mean confidence of each non-empty bin."""
    per_source: dict[str, list[tuple[str, dict]]] = {}
    for k, c in _ok_cells(summary).items():
        for src, cal in (c.get("calibration") or {}).items():
            per_source.setdefault(src, []).append((k, cal))
    if not per_source:
        return None
    srcs = [s for s in ("sc", "token_prob", "token_entropy") if s in per_source]
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


def attribution_png(summary: dict) -> str | None:
    from ragsafe.evals.attribution import CATEGORIES, CATEGORY_LABEL

    cells = {k: c["attribution"] for k, c in _ok_cells(summary).items() if c.get("attribution")}
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


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in t.rows)
    note = f'<p class="note">{html.escape(t.note)}</p>' if t.note else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def _section(sid: str, title: str, inner: str) -> str:
    return f'<section id="{sid}"><h2>{html.escape(title)}</h2>{inner}</section>'


def _img(b64: str | None, alt: str, empty: str) -> str:
    if b64 is None:
        return f'<p class="empty">{html.escape(empty)}</p>'
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def graph_diagrams(summary: dict) -> str:
    """One diagram per distinct (graph, params) among the cells, built with the params the run used."""
    import base64

    from ragsafe.graphs import graphs
    from ragsafe.graphs.show import png_bytes

    out, seen = [], set()
    for cell in summary.get("variants", {}).values():
        name, params = cell.get("graph"), cell.get("params") or {}
        key = (name, tuple(sorted((k, repr(v)) for k, v in params.items())))
        if not name or key in seen:
            continue
        seen.add(key)
        if name not in graphs:
            out.append(f'<p class="empty">{html.escape(cell["variant"])}: graph not registered here '
                       f'(pass its --graph-module to draw it)</p>')
            continue
        try:
            png = png_bytes(name, {k: v for k, v in params.items() if v is not None}, title=cell["variant"])
        except Exception as e:  # noqa: BLE001  (a diagram must never break the report)
            out.append(f'<p class="empty">{html.escape(cell["variant"])}: no diagram ({html.escape(str(e)[:200])})</p>')
            continue
        out.append(f'<figure><img alt="diagram of {html.escape(cell["variant"])}" '
                   f'src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>')
    return "".join(out)


def render_html(summary: dict, ensemble: dict | None = None, *, title: str = "ragsafe report", top: int = 20) -> str:
    """The whole page as one string."""
    tables = {t.id: t for t in all_tables(summary, ensemble, top)}
    parts: list[str] = []
    empty = {
        "sc-table": None,
        "calibration-table": "No confidence source: no graph carries self-consistency ballots or letter distributions.",
        "gap-table": None,
        "comparison-table": "No paired comparison: the report has no closed_book or clean_evidence graph "
                            "(pass --compare A B).",
        "attribution-table": "No scored graph.",
        "worst-case-table": "No scored graph.",
    }

    def table_section(tid: str, fallback_title: str) -> None:
        t = tables.get(tid)
        if t is not None:
            parts.append(_section(tid, t.title, _table_html(t)))
        elif empty.get(tid):
            parts.append(_section(tid, fallback_title, f'<p class="empty">{html.escape(empty[tid])}</p>'))

    table_section("graph-table", "Graphs and conditions")
    parts.append(_section("scatter", "Accuracy vs high-risk errors",
                          _img(scatter_png(summary), "accuracy vs high-risk scatter",
                               "n/a: the benchmark has no option labels, so no high-risk rate.")))
    parts.append(_section("metric-bars", "Metrics with 95% CIs",
                          _img(bars_png(summary), "per-metric bars", "No scored graph.")))
    table_section("sc-table", "Self-consistency")
    parts.append(_section("reliability", "Reliability diagrams",
                          _img(reliability_png(summary), "reliability diagram",
                               "No confidence source: no graph carries self-consistency ballots or letter "
                               "distributions.")))
    table_section("calibration-table", "Confidence and calibration by source")
    table_section("gap-table", "Gap closed")
    table_section("comparison-table", "Paired comparisons")
    for tid, t in tables.items():
        if tid.startswith("breakdown-"):
            parts.append(_section(tid, t.title, _table_html(t)))
    table_section("attribution-table", "Step attribution of wrong answers")
    ap = attribution_png(summary)
    if ap:
        parts.append(_section("attribution-chart", "Attribution chart", _img(ap, "attribution chart", "")))
    for tid in ("attribution-high-risk-table", "evidence-round-table"):
        if tid in tables:
            parts.append(_section(tid, tables[tid].title, _table_html(tables[tid])))
    table_section("worst-case-table", "Worst-case questions")
    if "ensemble-table" in tables:
        parts.append(_section("ensemble-table", tables["ensemble-table"].title, _table_html(tables["ensemble-table"])))
    diagrams = graph_diagrams(summary)
    if diagrams:
        parts.append(_section("graph-diagrams", "Graph diagrams", diagrams))
    nav = "".join(f'<a href="#{sid}">{sid.replace("-", " ")}</a>' for sid in
                  [p.split('"')[1] for p in parts])
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,"><style>{_CSS}</style></head><body>'
            f'<header id="header"><h1>{html.escape(title)}</h1><p class="meta">{html.escape(header_line(summary))}'
            f'<br>generated {generated}; every figure recomputed from stored samples (no LLM call)</p>'
            f'<nav>{nav}</nav></header>'
            + "".join(parts) + "</body></html>\n")


def write_html(path: str, summary: dict, ensemble: dict | None = None, **kw: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_html(summary, ensemble, **kw))
