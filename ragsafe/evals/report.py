"""Text and Markdown tables of a run summary: every figure with its n and CI."""

from __future__ import annotations

from typing import Any

from .metrics import GREEDY_METRICS, metrics

SHORT = {"accuracy": "accuracy", "high_risk_error_rate": "high-risk", "unsafe_answer_rate": "unsafe",
         "contradiction_rate": "contradiction", "null_rate": "null"}


def _fmt(est: dict | None) -> str:
    if est is None:
        return "n/a"
    return f"{100 * est['mean']:.1f}% [{100 * est['lo']:.1f}, {100 * est['hi']:.1f}]"


def rows(summary: dict) -> list[list[str]]:
    out = []
    for label, cell in summary["variants"].items():
        cost = cell.get("cost") or {}
        r = [label, str(cell["n"])]
        if "metrics" in cell:
            r += [_fmt(cell["metrics"].get(m)) for m in GREEDY_METRICS]
        else:
            r += [cell["status"]] + [""] * (len(GREEDY_METRICS) - 1)
        r += [f"{cost.get('llm_calls', 0):.1f}", f"{cost.get('prompt_tokens', 0):.0f}",
              f"{cost.get('seconds', 0):.1f}"]
        if cell.get("errors"):
            r[0] += f" ({cell['errors']} errors)"
        out.append(r)
    return out


HEADER = ["graph", "n"] + [SHORT[m] for m in GREEDY_METRICS] + ["calls/q", "prompt tok/q", "s/q"]


def text_table(summary: dict) -> str:
    """A fixed-width table plus the paired tests against the floor and ceiling."""
    table = [HEADER] + rows(summary)
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    run = summary.get("run", {})
    head = (f"model {run.get('model')} | benchmark {run.get('benchmark')} | n={summary['n_questions']} questions | "
            f"mean [95% percentile bootstrap CI], B={summary['bootstrap']['B']}, seed={summary['bootstrap']['seed']}, "
            f"same resamples for every graph")
    out = [head, ""] + lines
    if summary.get("comparisons"):
        out += ["", "paired vs floor/ceiling (exact McNemar on correctness, BH-adjusted q; accuracy diff with CI):"]
        for c in summary["comparisons"]:
            d = c["diff"].get("accuracy")
            hr = c["diff"].get("high_risk_error_rate")
            diff = f"{100 * d['mean']:+.1f} pp [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]" if d else "n/a"
            hrs = f"{100 * hr['mean']:+.1f} pp [{100 * hr['lo']:+.1f}, {100 * hr['hi']:+.1f}]" if hr else "n/a"
            m = c["mcnemar"]
            out.append(f"  {c['a']} vs {c['b']}: accuracy {diff}; high-risk {hrs}; "
                       f"discordant {m['b10']}/{m['b01']}, p={m['p']:.3g}, q={m['q_bh']:.3g}")
    return "\n".join(out)


def markdown_table(summary: dict) -> str:
    table = [HEADER] + rows(summary)
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in table[1:]]
    return "\n".join(lines)


def metric_direction(name: str) -> str:
    return "higher is better" if metrics.get(name).higher_is_better else "lower is better"


def as_csv_rows(summary: dict) -> list[dict[str, Any]]:
    out = []
    for label, cell in summary["variants"].items():
        for m, est in (cell.get("metrics") or {}).items():
            out.append({"variant": label, "metric": m, **(est or {"mean": None, "sd": None, "lo": None, "hi": None,
                                                                 "n": cell["n"]})})
    return out
