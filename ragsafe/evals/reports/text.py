"""The terminal report: fixed-width columns of the tables of :mod:`.tables`."""

from __future__ import annotations

from ragsafe.evals.reports.tables import Table, all_tables, header_line, main_tables
from ragsafe.records import SummaryLike, as_summary


def fixed_width(t: Table) -> list[str]:
    table = [t.header] + t.rows
    widths = [max(len(r[i]) if i < len(r) else 0 for r in table) for i in range(len(t.header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def text_table(summary: SummaryLike, ensemble: dict | None = None, full: bool = False) -> str:
    """The terminal report: the graph, self-consistency and comparison tables, or (``full``) every table."""
    summary = as_summary(summary)
    tables = all_tables(summary, ensemble) if full else main_tables(summary)
    out = [header_line(summary)]
    for t in tables:
        out += ["", f"{t.title}:"] + fixed_width(t)
    return "\n".join(out)
