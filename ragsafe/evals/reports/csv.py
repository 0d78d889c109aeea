"""Long-format CSV: one row per (graph, figure), calibration, gap-closed and attribution figures included."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ragsafe.evals.metrics import select
from ragsafe.records import SummaryLike, as_summary

_EMPTY = {"mean": None, "sd": None, "lo": None, "hi": None}


def _row(base: dict, metric: str, e: dict | None, n: int) -> dict[str, Any]:
    e = e or _EMPTY
    return {**base, "metric": metric, "mean": e.get("mean"), "sd": e.get("sd"), "lo": e.get("lo"),
            "hi": e.get("hi"), "n": n}


def csv_rows(summary: SummaryLike) -> list[dict[str, Any]]:
    """Rows ``variant, model, graph, status, metric, mean, sd, lo, hi, n`` of every figure of ``summary``.

    Confidence metrics (ECE, MCE, ...) and the dangerous-overconfidence rate of each confidence
    source are named ``<metric>:<source>``; gap closed ``gap_closed:<metric>``; attribution counts
    ``attribution:<category>`` (in ``mean``).
    """
    cal_keys = [m.name for m in select(over="confidence")] + ["dangerous_overconfidence"]
    out = []
    for label, cell in as_summary(summary).variants.items():
        base = {"variant": label, "model": cell.model, "graph": cell.graph, "status": cell.status}
        n = cell.n
        out += [_row(base, m, est, n) for m, est in (cell.metrics or {}).items()]
        for src, cal in (cell.calibration or {}).items():
            out += [_row(base, f"{k}:{src}", cal.get(k), n) for k in cal_keys]
        out += [_row(base, f"gap_closed:{m}", g, n) for m, g in (cell.gap_closed or {}).items()
                if not m.startswith("_")]
        out += [{**base, "metric": f"attribution:{cat}", "mean": k, "sd": None, "lo": None, "hi": None, "n": n}
                for cat, k in ((cell.attribution or {}).get("counts") or {}).items()]
    return out


def write_csv(path: str | Path, summary: SummaryLike) -> None:
    rows = csv_rows(summary)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["variant"])
        w.writeheader()
        w.writerows(rows)
