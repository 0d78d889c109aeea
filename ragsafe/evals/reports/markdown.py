"""Markdown: the graph table alone, or every table of the HTML report (same numbers, :mod:`.tables`)."""

from __future__ import annotations

from ragsafe.evals.reports.tables import Table, all_tables, graph_table, header_line
from ragsafe.records import SummaryLike, as_summary


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def markdown_lines(t: Table) -> list[str]:
    return [_md_row(t.header), "|" + "---|" * len(t.header)] + [_md_row(r) for r in t.rows]


def markdown_table(summary: SummaryLike) -> str:
    """The graph table alone, in Markdown."""
    return "\n".join(markdown_lines(graph_table(summary)))


def markdown_report(summary: SummaryLike, ensemble: dict | None = None, top: int = 20) -> str:
    """Every table of the HTML report, in Markdown."""
    summary = as_summary(summary)
    out = ["# ragsafe report", "", header_line(summary)]
    for t in all_tables(summary, ensemble, top):
        out += ["", f"## {t.title}", ""] + markdown_lines(t)
        if t.note:
            out += ["", f"_{t.note}_"]
    return "\n".join(out) + "\n"
