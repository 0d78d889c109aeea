"""A self-contained static HTML page: the tables of :mod:`.tables` and the figures of :mod:`.figures`.

No script, no stylesheet or font from the network: the file opens anywhere, offline, and can be
mailed or archived as is. The tables are the same objects as the Markdown report's (same numbers).
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from ragsafe.evals.reports.browser import browser_section
from ragsafe.evals.reports.figures import attribution_png, bars_png, graph_diagrams, reliability_png, scatter_png
from ragsafe.evals.reports.tables import Table, all_tables, header_line
from ragsafe.experiments.runs import reference
from ragsafe.records import SummaryLike, as_summary

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


_EMPTY = {
    "calibration-table": "No confidence source: no graph carries self-consistency ballots or letter distributions.",
    "comparison-table": "No paired comparison: the report has no {floor} or {ceiling} graph (pass --compare A B).",
    "attribution-table": "No scored graph.",
    "worst-case-table": "No scored graph.",
}
"""What a section says when its table is empty (the other tables' sections are left out then);
``{floor}`` / ``{ceiling}``: the graphs with that role."""


def _empty(tid: str) -> str:
    return _EMPTY.get(tid, "").format(floor=reference("floor"), ceiling=reference("ceiling"))


def sections(summary: SummaryLike, ensemble: dict | None = None, top: int = 20) -> list[str]:
    """Every section of the page in reading order: tables, figures, diagrams."""
    summary = as_summary(summary)
    tables = {t.id: t for t in all_tables(summary, ensemble, top)}
    parts: list[str] = []

    def table_section(tid: str, fallback_title: str = "") -> None:
        t = tables.get(tid)
        if t is not None:
            parts.append(_section(tid, t.title, _table_html(t)))
        elif _empty(tid):
            parts.append(_section(tid, fallback_title, f'<p class="empty">{html.escape(_empty(tid))}</p>'))

    table_section("graph-table", "Graphs and conditions")
    parts.append(_section("scatter", "Accuracy vs high-risk errors",
                          _img(scatter_png(summary), "accuracy vs high-risk scatter",
                               "n/a: the benchmark has no option labels, so no high-risk rate.")))
    parts.append(_section("metric-bars", "Metrics with 95% CIs",
                          _img(bars_png(summary), "per-metric bars", "No scored graph.")))
    table_section("sc-table")
    parts.append(_section("reliability", "Reliability diagrams",
                          _img(reliability_png(summary), "reliability diagram", _empty("calibration-table"))))
    table_section("calibration-table", "Confidence and calibration by source")
    table_section("gap-table")
    table_section("comparison-table", "Paired comparisons")
    for tid in tables:
        if tid.startswith("breakdown-"):
            table_section(tid)
    _safety_sections(summary, parts)
    table_section("attribution-table", "Step attribution of wrong answers")
    ap = attribution_png(summary)
    if ap:
        parts.append(_section("attribution-chart", "Attribution chart", _img(ap, "attribution chart", "")))
    for tid in ("attribution-high-risk-table", "evidence-round-table"):
        table_section(tid)
    table_section("worst-case-table", "Worst-case questions")
    table_section("ensemble-table")
    diagrams = graph_diagrams(summary)
    if diagrams:
        parts.append(_section("graph-diagrams", "Graph diagrams", diagrams))
    return parts


def _safety_sections(summary: SummaryLike, parts: list[str]) -> None:
    """The summary's safety section: risk–coverage curves and the selective, net-benefit and poison tables."""
    from ragsafe.evals.reports.safety import risk_coverage_png, safety_rows

    if not as_summary(summary).safety:
        return
    parts.append(_section("risk-coverage", "Selective answering: risk–coverage curves",
                          _img(risk_coverage_png(summary), "risk-coverage curves",
                               "No confidence source: no graph carries self-consistency ballots, letter "
                               "distributions or verifier verdicts.")))
    titles = {"selective": "Selective answering (AURC, coverage at the high-risk budget)",
              "net_benefit": "Net benefit", "poison": "Poisoned corpus vs clean corpus"}
    for key, rows in safety_rows(summary).items():
        if len(rows) > 1:
            parts.append(_section(f"{key.replace('_', '-')}-table", titles[key],
                                  _table_html(Table(f"{key}-table", titles[key], rows[0], rows[1:]))))


def render_html(summary: SummaryLike, ensemble: dict | None = None, *, title: str = "ragsafe report", top: int = 20,
                samples: list[dict] | None = None) -> str:
    """The whole page as one string; ``samples`` (rows of :func:`.browser.sample_rows`) add the sample browser,
    the page's only script (inline, offline)."""
    summary = as_summary(summary)
    parts = sections(summary, ensemble, top)
    if samples is not None:
        parts.append(browser_section(samples))
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


def write_html(path: str, summary: SummaryLike, ensemble: dict | None = None, **kw: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_html(summary, ensemble, **kw))
