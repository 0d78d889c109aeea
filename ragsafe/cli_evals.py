"""CLI subcommands of the eval layer: score, report."""

from __future__ import annotations

import csv
from pathlib import Path


def cmd_score(a) -> int:
    from .evals.report import text_table
    from .evals.runner import score_run

    print(text_table(score_run(a.run_dir, allow_errors=a.allow_errors)))
    return 0


def cmd_report(a) -> int:
    from .evals.report import as_csv_rows, markdown_table, text_table
    from .evals.store import RunStore

    for run_dir in a.run_dir:
        summary = RunStore(run_dir).read_summary()
        if summary is None:
            from .evals.runner import score_run

            summary = score_run(run_dir)
        print(text_table(summary))
        if a.md:
            Path(a.md).write_text(markdown_table(summary) + "\n")
        if a.csv:
            rows = as_csv_rows(summary)
            with open(a.csv, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["variant"])
                w.writeheader()
                w.writerows(rows)
    return 0



def register(sub) -> None:
    p = sub.add_parser("score", help="recompute summary.json from samples.jsonl (no LLM call)")
    p.add_argument("run_dir")
    p.add_argument("--allow-errors", action="store_true")
    p.set_defaults(fn=cmd_score)

    p = sub.add_parser("report", help="print the condition table of run folders")
    p.add_argument("run_dir", nargs="+")
    p.add_argument("--md", default=None)
    p.add_argument("--csv", default=None)
    p.set_defaults(fn=cmd_report)
