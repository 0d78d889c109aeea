"""Long-format CSV: one row per (graph, figure), calibration, gap-closed and attribution figures included."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ragsafe.evals.metrics import select

_EMPTY = {"mean": None, "sd": None, "lo": None, "hi": None}


def _row(base: dict, metric: str, e: dict | None, n: int) -> dict[str, Any]:
    e = e or _EMPTY
    return {**base, "metric": metric, "mean": e.get("mean"), "sd": e.get("sd"), "lo": e.get("lo"),
            "hi": e.get("hi"), "n": n}


def csv_rows(summary: dict) -> list[dict[str, Any]]:
    """Rows ``variant, model, graph, status, metric, mean, sd, lo, hi, n`` of every figure of ``summary``.

    Confidence metrics (ECE, MCE, ...) and the dangerous-overconfidence rate of each confidence
    source are named ``<metric>:<source>``; gap closed ``gap_closed:<metric>``; attribution counts
    ``attribution:<category>`` (in ``mean``).
    """
    cal_keys = [m.name for m in select(over="confidence")] + ["dangerous_overconfidence"]
    out = []
    for label, cell in summary["variants"].items():
        base = {"variant": label, "model": cell.get("model"), "graph": cell.get("graph"), "status": cell.get("status")}
        n = cell["n"]
        out += [_row(base, m, est, n) for m, est in (cell.get("metrics") or {}).items()]
        for src, cal in (cell.get("calibration") or {}).items():
            out += [_row(base, f"{k}:{src}", cal.get(k), n) for k in cal_keys]
        out += [_row(base, f"gap_closed:{m}", g, n) for m, g in (cell.get("gap_closed") or {}).items()
                if not m.startswith("_")]
        out += [{**base, "metric": f"attribution:{cat}", "mean": k, "sd": None, "lo": None, "hi": None, "n": n}
                for cat, k in ((cell.get("attribution") or {}).get("counts") or {}).items()]
    return out


def write_csv(path: str | Path, summary: dict) -> None:
    rows = csv_rows(summary)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["variant"])
        w.writeheader()
        w.writerows(rows)
