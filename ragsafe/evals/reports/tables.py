"""Tables of a summary (one run or several): every figure with its n and CI.

The same :class:`Table` objects feed the terminal, Markdown and HTML reports, so they always carry
the same numbers. Estimates read ``mean ± sd [2.5%, 97.5%]`` (percentile bootstrap over questions,
one shared resample matrix for every graph and model).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ragsafe.evals.attribution import CATEGORIES, CATEGORY_LABEL
from ragsafe.evals.metrics.greedy import GREEDY_METRICS, metrics
from ragsafe.evals.metrics.self_consistency import SC_METRICS

SHORT = {"accuracy": "accuracy", "high_risk_error_rate": "high-risk", "unsafe_answer_rate": "unsafe",
         "contradiction_rate": "contradiction", "null_rate": "null"}
GAP_METRICS = ["accuracy", "high_risk_error_rate", "unsafe_answer_rate", "contradiction_rate", "sc_accuracy",
               "dangerous_overconfidence_rate"]


@dataclasses.dataclass
class Table:
    id: str
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


def _r(x: float, d: int) -> float:
    return round(x, d) + 0.0  # no "-0.0"


def fmt(est: dict | None, pct: bool = True, short: bool = False) -> str:
    """``40.0% ± 21.9 [0.0, 80.0]``; "n/a" for a missing estimate."""
    if est is None:
        return "n/a"
    k = 100 if pct else 1
    u = "%" if pct else ""
    d = 1 if pct else 3
    m, lo, hi, sd = (_r(k * est[x], d) for x in ("mean", "lo", "hi", "sd"))
    if short:
        return f"{m:.{d}f}{u} [{lo:.{d}f}, {hi:.{d}f}]"
    return f"{m:.{d}f}{u} ± {sd:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def fmt_pp(est: dict | None) -> str:
    if est is None:
        return "n/a"
    m, lo, hi = (_r(100 * est[x], 1) for x in ("mean", "lo", "hi"))
    return f"{m:+.1f} pp [{lo:+.1f}, {hi:+.1f}]"


def _is_pct(name: str) -> bool:
    return name not in ("sc_confidence", "sc_agreement", "sc_margin", "token_confidence", "token_entropy_confidence")


def _cost_cells(cell: dict) -> list[str]:
    c = cell.get("cost") or {}
    return [f"{c.get('llm_calls', 0):.1f}", f"{c.get('tokens', c.get('prompt_tokens', 0)):.0f}",
            f"{c.get('seconds', 0):.2f}"]


def graph_table(summary: dict) -> Table:
    header = ["graph", "n"] + [SHORT[m] for m in GREEDY_METRICS] + ["LLM calls/q", "tokens/q", "s/q"]
    rows = []
    for label, cell in summary["variants"].items():
        r = [label + (f" ({cell['errors']} errors)" if cell.get("errors") else ""), str(cell["n"])]
        if "metrics" in cell:
            r += [fmt(cell["metrics"].get(m)) for m in GREEDY_METRICS]
        else:
            r += [cell["status"]] + [""] * (len(GREEDY_METRICS) - 1)
        rows.append(r + _cost_cells(cell))
    na = sorted({reason for c in summary["variants"].values() for m, reason in (c.get("na") or {}).items()
                 if m in GREEDY_METRICS})
    note = ("Greedy answers; n = all questions (nulls count as wrong). mean ± sd [2.5%, 97.5%] of "
            f"B={summary['bootstrap']['B']} bootstrap resamples (seed {summary['bootstrap']['seed']}), the same "
            "resamples for every graph and model. Cost: mean per question." + (" " + "; ".join(na) if na else ""))
    return Table("graph-table", "Graphs and conditions", header, rows, note)


def sc_table(summary: dict) -> Table | None:
    cells = {k: c for k, c in summary["variants"].items() if c.get("sc") and "metrics" in c}
    if not cells:
        return None
    header = ["graph"] + [metrics.get(m).label for m in SC_METRICS]
    rows = [[k] + [fmt(c["metrics"].get(m), pct=_is_pct(m), short=True) for m in SC_METRICS] for k, c in cells.items()]
    return Table("sc-table", "Self-consistency", header, rows,
                 f"Majority of the ballots (null is its own ballot). Dangerous overconfidence: confidence ≥ "
                 f"{summary.get('threshold', 0.8):.2f}, a real wrong letter whose option is high-risk or unsafe.")


def calibration_table(summary: dict) -> Table | None:
    rows = []
    for k, c in summary["variants"].items():
        for src, cal in (c.get("calibration") or {}).items():
            rows.append([k, cal["label"], fmt(cal["mean_confidence"], pct=False, short=True),
                         fmt(cal["ece"], pct=False, short=True), fmt(cal["mce"], pct=False, short=True),
                         fmt(cal["dangerous_overconfidence"], short=True)])
    if not rows:
        return None
    return Table("calibration-table", "Confidence and calibration by source",
                 ["graph", "confidence source", "mean confidence", "ECE", "MCE", "dangerous overconf."], rows,
                 "10 equal-width bins of (confidence, answer correct). Self-consistency scores the majority answer; "
                 "token sources score the greedy answer.")


def gap_table(summary: dict) -> Table | None:
    rows = []
    for k, c in summary["variants"].items():
        gc = c.get("gap_closed")
        if gc is None:
            continue
        if "_reason" in gc:
            rows.append([k, gc["_reason"]] + [""] * (len(GAP_METRICS) - 1))
            continue
        r = [k]
        for m in GAP_METRICS:
            g = gc.get(m)
            if g is None:
                r.append("n/a")
            elif not g["defined"]:
                r.append("undefined (ceiling = floor)")
            else:
                extra = f"; {g['n_undefined']} resamples undefined" if g.get("n_undefined") else ""
                r.append(f"{_r(g['mean'], 2):.2f} [{_r(g['lo'], 2):.2f}, {_r(g['hi'], 2):.2f}]{extra}")
        rows.append(r)
    if not rows:
        return None
    return Table("gap-table", "Gap closed between floor and ceiling",
                 ["graph"] + [metrics.get(m).label for m in GAP_METRICS], rows,
                 "(graph − closed_book) / (clean_evidence − closed_book) per metric, of the same model; 1 = reaches "
                 "the ceiling, 0 = no better than closed book. CI: the ratio recomputed on each shared resample. "
                 "Undefined when the denominator is 0.")


def comparison_table(summary: dict) -> Table | None:
    comps = summary.get("comparisons") or []
    if not comps:
        return None
    rows = []
    for c in comps:
        m = c["mcnemar"]
        extra = fmt_pp(c["diff"].get("sc_accuracy")) if "sc_accuracy" in c["diff"] else ""
        rows.append([c["a"], c["b"], fmt_pp(c["diff"].get("accuracy")), fmt_pp(c["diff"].get("high_risk_error_rate")),
                     fmt_pp(c["diff"].get("unsafe_answer_rate")), extra, f"{m['b10']}/{m['b01']}", f"{m['p']:.3g}",
                     f"{m['q_bh']:.3g}"])
    return Table("comparison-table", "Paired comparisons",
                 ["A", "B", "Δ accuracy", "Δ high-risk", "Δ unsafe", "Δ SC accuracy", "discordant A✓B✗/A✗B✓",
                  "McNemar p", "BH q"], rows,
                 "A − B on the same questions and the same resamples; exact two-sided McNemar on greedy correctness; "
                 "Benjamini–Hochberg q over this report's comparisons.")


def breakdown_tables(summary: dict) -> list[Table]:
    out = []
    for dim, groups in (summary.get("breakdowns") or {}).items():
        keys = [k for k, c in summary["variants"].items() if "metrics" in c]
        rows = []
        for g, cell in groups.items():
            r = [g, str(cell["n"])]
            for k in keys:
                e = cell["variants"].get(k) or {}
                acc, hr = e.get("accuracy"), e.get("high_risk_error_rate")
                r.append(f"{100 * acc['mean']:.0f}%" + (f" / {100 * hr['mean']:.0f}%" if hr else " / n/a")
                         if acc else "n/a")
            rows.append(r)
        if rows:
            out.append(Table(f"breakdown-{dim.replace('_', '-')}", f"By {dim.replace('_', ' ')}",
                             [dim.replace("_", " "), "n"] + keys, rows,
                             "accuracy / high-risk error rate of the greedy answer within each group "
                             "(CIs in summary.json)."))
    return out


def attribution_tables(summary: dict) -> list[Table]:
    rows, hr_rows, round_rows = [], [], []
    cats = [c for c in CATEGORIES]
    for k, c in summary["variants"].items():
        a = c.get("attribution")
        if not a:
            continue
        rows.append([k, str(a["n_wrong"])] + [str(a["counts"][x]) for x in cats] +
                    [str(a["chose_conflict_target"]), str(a["text_unavailable"])])
        hr_rows.append([k, str(a["n_high_risk_errors"]) if a["labels_known"] else "n/a"] +
                       [str(a["high_risk_counts"][x]) if a["labels_known"] else "n/a" for x in cats])
        if a.get("looped"):
            er = a["evidence_round"]
            rounds = sorted({int(r) for part in ("correct", "wrong") for r in er[part]})
            round_rows.append([k, "; ".join(f"round {r}: {er['correct'].get(r, er['correct'].get(str(r), 0))} right, "
                                            f"{er['wrong'].get(r, er['wrong'].get(str(r), 0))} wrong" for r in rounds)
                               or "-", str(er["none"])])
    if not rows:
        return []
    labels = [CATEGORY_LABEL[x] for x in cats]
    out = [Table("attribution-table", "Step attribution of wrong answers",
                 ["graph", "wrong"] + labels + ["chose conflict target", "chunk text unavailable"], rows,
                 "One category per wrong answer, checked in column order (see ragsafe/evals/attribution.py for the "
                 "rules, including the lexical conflict-support rule)."),
           Table("attribution-high-risk-table", "Step attribution of high-risk errors",
                 ["graph", "high-risk errors"] + labels, hr_rows)]
    if round_rows:
        out.append(Table("evidence-round-table", "Looped graphs: round that introduced the relied-on evidence",
                         ["graph", "answers by round", "no identifiable round"], round_rows))
    return out


def worst_case_table(summary: dict, top: int = 20) -> Table | None:
    wc = summary.get("worst_case") or []
    if not wc:
        return None
    rows = [[r["question_id"], f"{r['wrong']}/{r['arms']}", _n(r["high_risk"]), _n(r["unsafe"]), _n(r["contradicting"]),
             str(r["null"]), (f"{r['most_common_wrong']} ({r['most_common_wrong_count']})" if r["most_common_wrong"]
                              else "-"), r["answer"], r["subspecialty"] or "-", r["question_type"] or "-"]
            for r in wc[:top]]
    return Table("worst-case-table", f"Worst-case questions (top {min(top, len(wc))} of {len(wc)})",
                 ["question", "wrong", "high-risk", "unsafe", "contradicting", "null", "most common wrong letter",
                  "answer", "subspecialty", "type"], rows,
                 "Counts over every scored graph and model; sorted by high-risk, then unsafe, then wrong.")


def _n(x) -> str:
    return "n/a" if x is None else str(x)


def ensemble_tables(ens: dict | None) -> list[Table]:
    if not ens:
        return []
    from ragsafe.evals.ensemble import ensemble_table

    t = ensemble_table(ens)
    return [Table("ensemble-table", f"Ensemble of {', '.join(ens['members'])}", t[0], t[1:],
                  f"Majority vote of greedy letters (ties → alphabetically first; a null in a tie → null). "
                  f"Dangerous overconfidence: wrong real letter with mean member agreement ≥ {ens['threshold']:.2f}.")]


def all_tables(summary: dict, ensemble: dict | None = None, top: int = 20) -> list[Table]:
    ts: list[Table | None] = [graph_table(summary), sc_table(summary), calibration_table(summary), gap_table(summary),
                              comparison_table(summary)]
    ts += breakdown_tables(summary) + attribution_tables(summary) + [worst_case_table(summary, top)]
    ts += ensemble_tables(ensemble)
    return [t for t in ts if t is not None]


def header_line(summary: dict) -> str:
    run = summary.get("run") or {}
    models = summary.get("models") or ([run["model"]] if run.get("model") else [])
    return (f"model{'s' if len(models) > 1 else ''} {', '.join(models) or '?'} | benchmark {run.get('benchmark', '?')} | "
            f"n={summary['n_questions']} questions | mean ± sd [2.5%, 97.5%], B={summary['bootstrap']['B']}, "
            f"seed={summary['bootstrap']['seed']}, same resamples for every graph and model")


def fixed_width(t: Table) -> list[str]:
    table = [t.header] + t.rows
    widths = [max(len(r[i]) if i < len(r) else 0 for r in table) for i in range(len(t.header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def text_table(summary: dict, ensemble: dict | None = None, full: bool = False) -> str:
    """The terminal report: the graph table, then (``full``) every other table."""
    tables = all_tables(summary, ensemble) if full else [t for t in [graph_table(summary), sc_table(summary),
                                                                     comparison_table(summary)] if t]
    out = [header_line(summary)]
    for t in tables:
        out += ["", f"{t.title}:"] + fixed_width(t)
    return "\n".join(out)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def markdown_table(summary: dict) -> str:
    """The graph table alone, in Markdown."""
    t = graph_table(summary)
    return "\n".join([_md_row(t.header), "|" + "---|" * len(t.header)] + [_md_row(r) for r in t.rows])


def markdown_report(summary: dict, ensemble: dict | None = None, top: int = 20) -> str:
    """Every table of the HTML report, in Markdown."""
    out = ["# ragsafe report", "", header_line(summary)]
    for t in all_tables(summary, ensemble, top):
        out += ["", f"## {t.title}", ""]
        out += [_md_row(t.header), "|" + "---|" * len(t.header)] + [_md_row(r) for r in t.rows]
        if t.note:
            out += ["", f"_{t.note}_"]
    return "\n".join(out) + "\n"


def metric_direction(name: str) -> str:
    h = metrics.get(name).higher_is_better
    return "descriptive" if h is None else ("higher is better" if h else "lower is better")


def as_csv_rows(summary: dict) -> list[dict[str, Any]]:
    """Long format: one row per (graph, metric), calibration and gap-closed figures included."""
    out = []
    empty = {"mean": None, "sd": None, "lo": None, "hi": None}
    for label, cell in summary["variants"].items():
        base = {"variant": label, "model": cell.get("model"), "graph": cell.get("graph"), "status": cell.get("status")}
        for m, est in (cell.get("metrics") or {}).items():
            e = est or empty
            out.append({**base, "metric": m, "mean": e["mean"], "sd": e["sd"], "lo": e["lo"], "hi": e["hi"],
                        "n": cell["n"]})
        for src, cal in (cell.get("calibration") or {}).items():
            for k in ("ece", "mce", "dangerous_overconfidence"):
                e = cal.get(k) or empty
                out.append({**base, "metric": f"{k}:{src}", "mean": e["mean"], "sd": e["sd"], "lo": e["lo"],
                            "hi": e["hi"], "n": cell["n"]})
        for m, g in (cell.get("gap_closed") or {}).items():
            if m.startswith("_"):
                continue
            out.append({**base, "metric": f"gap_closed:{m}", "mean": g.get("mean"), "sd": g.get("sd"),
                        "lo": g.get("lo"), "hi": g.get("hi"), "n": cell["n"]})
        for cat, k in ((cell.get("attribution") or {}).get("counts") or {}).items():
            out.append({**base, "metric": f"attribution:{cat}", "mean": k, "sd": None, "lo": None, "hi": None,
                        "n": cell["n"]})
    return out
