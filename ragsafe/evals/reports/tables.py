"""Tables of a summary (one run or several) as data: every figure with its n and CI.

The same :class:`Table` objects feed the terminal (:mod:`.text`), Markdown (:mod:`.markdown`) and
HTML (:mod:`.html`) reports, so they always carry the same numbers. Estimates read
``mean ± sd [2.5%, 97.5%]`` (percentile bootstrap over questions, one shared resample matrix for
every graph and model). Which metric is a column of which table comes from its registration
(:mod:`ragsafe.evals.metrics.registry`): group greedy → the graph table, group sc → the
self-consistency table, ``gap`` → gap closed, ``compare`` → paired comparisons, ``headline`` → the
breakdown cells, confidence metrics → the calibration table. A column with no value in any row is
left out (the note says which, when they were n/a).
"""

from __future__ import annotations

import dataclasses

from ragsafe.evals.attribution import CATEGORIES, CATEGORY_LABEL
from ragsafe.evals.ensemble import ensemble_table
from ragsafe.evals.metrics import Metric, select
from ragsafe.experiments.runs import reference, role_of
from ragsafe.records import SummaryLike, VariantSummary, as_summary

EMPTY = ("", "n/a")
"""Cell values that carry no figure: a column of nothing else is left out of its table."""


@dataclasses.dataclass
class Table:
    id: str
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""

    def without_empty_columns(self, keep: int = 1) -> "Table":
        """This table minus every column (after the first ``keep``) with no figure in any row.

        A column left out because it was n/a everywhere is named in the note, so nothing goes
        missing silently.
        """
        drop = [i for i in range(keep, len(self.header))
                if all((r[i] if i < len(r) else "") in EMPTY for r in self.rows)]
        if not drop or not self.rows:
            return self
        na = [self.header[i] for i in drop if any(i < len(r) and r[i] == "n/a" for r in self.rows)]
        note = self.note + (f" Not shown (n/a in every row): {', '.join(na)}." if na else "")
        keepers = [i for i in range(len(self.header)) if i not in drop]
        return dataclasses.replace(self, header=[self.header[i] for i in keepers],
                                   rows=[[r[i] if i < len(r) else "" for i in keepers] for r in self.rows],
                                   note=note.strip())


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


def fmt_metric(m: Metric, est: dict | None, short: bool = False) -> str:
    """An estimate in the metric's unit (a rate as a percentage, a score as is)."""
    return fmt(est, pct=m.unit == "%", short=short)


def arm_label(key: str, cell: VariantSummary) -> str:
    """The arm's row label, its floor or ceiling role marked: ``closed_book (floor)``."""
    role = role_of(cell.graph or "")
    return f"{key} ({role})" if role else key


def _cost_cells(cell: VariantSummary) -> list[str]:
    c = cell.cost or {}
    return [f"{c.get('llm_calls', 0):.1f}", f"{c.get('tokens', c.get('prompt_tokens', 0)):.0f}",
            f"{c.get('seconds', 0):.2f}"]


def graph_table(summary: SummaryLike) -> Table:
    summary = as_summary(summary)
    shown = select(group="greedy")
    header = ["graph", "n"] + [m.label for m in shown] + ["LLM calls/q", "tokens/q", "s/q"]
    rows = []
    for label, cell in summary.variants.items():
        cut = (cell.length_cutoffs or {}).get("questions")
        r = [arm_label(label, cell) + (f" ({cell.errors} errors)" if cell.errors else "")
             + (f" ({cut} cut off by max_tokens)" if cut else ""), str(cell.n)]
        if cell.metrics is not None:
            r += [fmt_metric(m, cell.metrics.get(m.name)) for m in shown]
        else:
            r += [cell.status] + [""] * (len(shown) - 1)
        rows.append(r + _cost_cells(cell))
    names = {m.name for m in shown}
    na = sorted({reason for c in summary.variants.values() for m, reason in (c.na or {}).items() if m in names})
    boot = summary.bootstrap or {}
    note = ("Greedy answers; n = all questions (nulls count as wrong). mean ± sd [2.5%, 97.5%] of "
            f"B={boot['B']} bootstrap resamples (seed {boot['seed']}), the same "
            "resamples for every graph and model. Cost: mean per question." + (" " + "; ".join(na) if na else ""))
    return Table("graph-table", "Graphs and conditions", header, rows, note).without_empty_columns(2)


def sc_table(summary: SummaryLike) -> Table | None:
    summary = as_summary(summary)
    cells = {k: c for k, c in summary.variants.items() if c.sc and c.metrics is not None}
    if not cells:
        return None
    shown = select(group="sc")
    header = ["graph"] + [m.label for m in shown]
    rows = [[k] + [fmt_metric(m, c.metrics.get(m.name), short=True) for m in shown] for k, c in cells.items()]
    threshold = 0.8 if summary.threshold is None else summary.threshold
    return Table("sc-table", "Self-consistency", header, rows,
                 f"Majority of the ballots (null is its own ballot). Dangerous overconfidence: confidence ≥ "
                 f"{threshold:.2f}, a real wrong letter whose option is high-risk or unsafe."
                 ).without_empty_columns()


def calibration_table(summary: SummaryLike) -> Table | None:
    summary = as_summary(summary)
    shown = select(over="confidence")
    rows = []
    for k, c in summary.variants.items():
        for src, cal in (c.calibration or {}).items():
            rows.append([k, cal["label"], fmt(cal["mean_confidence"], pct=False, short=True)] +
                        [fmt_metric(m, cal.get(m.name), short=True) for m in shown] +
                        [fmt(cal["dangerous_overconfidence"], short=True)])
    if not rows:
        return None
    return Table("calibration-table", "Confidence and calibration by source",
                 ["graph", "confidence source", "mean confidence"] + [m.label for m in shown] +
                 ["dangerous overconf."], rows,
                 "10 equal-width bins of (confidence, answer correct). Self-consistency scores the majority answer; "
                 "token sources score the greedy answer.").without_empty_columns(2)


def gap_table(summary: SummaryLike) -> Table | None:
    summary = as_summary(summary)
    shown = select(gap=True)
    rows = []
    for k, c in summary.variants.items():
        gc = c.gap_closed
        if gc is None:
            continue
        if "_reason" in gc:
            rows.append([k, gc["_reason"]] + [""] * (len(shown) - 1))
            continue
        r = [k]
        for m in shown:
            g = gc.get(m.name)
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
    floor, ceiling = reference("floor"), reference("ceiling")
    return Table("gap-table", "Gap closed between floor and ceiling",
                 ["graph"] + [m.label for m in shown], rows,
                 f"(graph − {floor}) / ({ceiling} − {floor}) per metric, of the same model; 1 = reaches "
                 "the ceiling, 0 = no better than the floor. CI: the ratio recomputed on each shared resample. "
                 "Undefined when the denominator is 0.").without_empty_columns()


def comparison_table(summary: SummaryLike) -> Table | None:
    summary = as_summary(summary)
    comps = summary.comparisons or []
    if not comps:
        return None
    shown = select(compare=True)
    rows = []
    for c in comps:
        m = c.mcnemar
        # a metric one side lacks (SC accuracy of a greedy graph) is blank, not n/a: nothing to compare
        rows.append([c.a, c.b] + [fmt_pp(c.diff[x.name]) if x.name in c.diff else "" for x in shown] +
                    [f"{m['b10']}/{m['b01']}", f"{m['p']:.3g}", f"{m['q_bh']:.3g}"])
    return Table("comparison-table", "Paired comparisons",
                 ["A", "B"] + [f"Δ {x.label}" for x in shown] + ["discordant A✓B✗/A✗B✓", "McNemar p", "BH q"], rows,
                 "A − B on the same questions and the same resamples; exact two-sided McNemar on greedy correctness; "
                 "Benjamini–Hochberg q over this report's comparisons.").without_empty_columns(2)


def _mean_cell(m: Metric, est: dict | None) -> str:
    if est is None:
        return "n/a"
    return f"{100 * est['mean']:.0f}%" if m.unit == "%" else f"{est['mean']:.2f}"


def breakdown_tables(summary: SummaryLike) -> list[Table]:
    summary = as_summary(summary)
    shown = select(headline=True, breakdown=True)
    out = []
    for dim, groups in (summary.breakdowns or {}).items():
        keys = [k for k, c in summary.variants.items() if c.metrics is not None]
        rows = []
        for g, cell in groups.items():
            r = [g, str(cell["n"])]
            for k in keys:
                e = cell["variants"].get(k) or {}
                first = e.get(shown[0].name) if shown else None
                r.append(" / ".join(_mean_cell(m, e.get(m.name)) for m in shown) if first else "n/a")
            rows.append(r)
        if rows:
            out.append(Table(f"breakdown-{dim.replace('_', '-')}", f"By {dim.replace('_', ' ')}",
                             [dim.replace("_", " "), "n"] + keys, rows,
                             f"{' / '.join(m.label for m in shown)} of the greedy answer within each group "
                             "(CIs in summary.json)."))
    return out


def attribution_tables(summary: SummaryLike) -> list[Table]:
    summary = as_summary(summary)
    rows, hr_rows, round_rows = [], [], []
    cats = [c for c in CATEGORIES]
    for k, c in summary.variants.items():
        a = c.attribution
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


def worst_case_table(summary: SummaryLike, top: int = 20) -> Table | None:
    wc = as_summary(summary).worst_case or []
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
    t = ensemble_table(ens)
    return [Table("ensemble-table", f"Ensemble of {', '.join(ens['members'])}", t[0], t[1:],
                  f"Majority vote of greedy letters (ties → alphabetically first; a null in a tie → null). "
                  f"Dangerous overconfidence: wrong real letter with mean member agreement ≥ {ens['threshold']:.2f}.")]


def _short(text: str | None, width: int = 70) -> str:
    t = " ".join((text or "").split())
    return t if len(t) <= width else t[: width - 1] + "…"


def tool_route_table(summary: SummaryLike) -> Table | None:
    """Tool-calling graphs: how often the model searched, by which route, beside accuracy and high-risk errors."""
    summary = as_summary(summary)
    rows = []
    for label, cell in summary.variants.items():
        tr = cell.tool_routes
        if not tr:
            continue
        m = cell.metrics or {}
        hist = ", ".join(f"{k}: {v}" for k, v in tr["searches_histogram"].items())
        routes = ", ".join(f"{k} {v}" for k, v in sorted(tr["decisions_by_route"].items())) or "none (max_steps=0)"
        rows.append([arm_label(label, cell), str(tr["n"]), f"{tr['searches_per_question']:.2f}", hist, routes,
                     str(tr["native_probes"]), str(cell.fallbacks),
                     fmt(m.get("accuracy"), short=True), fmt(m.get("high_risk_error_rate"), short=True),
                     fmt(m.get("unsafe_answer_rate"), short=True)])
    if not rows:
        return None
    return Table("tool-route-table", "Tool agent: searches and routes",
                 ["graph", "n", "searches/q", "searches: questions", "decisions by route", "native probes",
                  "JSON fallbacks", "accuracy", "high-risk", "unsafe"], rows,
                 "Searches per question over all n questions; a native probe is a first decision asked again as "
                 "JSON because the server returned no tool call.")


def judge_tables(summary: SummaryLike, top: int = 20) -> list[Table]:
    """Strict parser vs LLM judge: counts and Cohen's kappa per graph, then the questions they disagree on."""
    summary = as_summary(summary)
    agree = summary.judge_agreement
    if not agree:
        return []
    rows, dis = [], []
    for v, cell in agree["variants"].items():
        for scope in ("greedy", "sc_samples"):
            g = cell.get(scope)
            if not g:
                continue
            ci = g.get("kappa_ci")
            kappa = "n/a" if g["kappa"] is None else f"{g['kappa']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
            rows.append([v, "greedy" if scope == "greedy" else "SC samples", str(g["n"]), str(g["same_letter"]),
                         str(g["both_null"]), str(g["strict_only"]), str(g["judge_only"]), str(g["different"]),
                         f"{100 * g['agreement']:.1f}%" if g["agreement"] is not None else "n/a", kappa])
        for d in cell.get("disagreements", [])[:top]:
            dis.append([v, d["question_id"], d["strict"] or "null", d["judge"] or "null", _short(d["raw_output"])])
    judge = agree.get("judge") or {}
    note = (f"Judge {judge.get('model', '?')} (prompt {judge.get('prompt_hash', '?')}) re-read every stored raw output; "
            f"letters scored: {summary.letters or 'strict'}. Kappa: Cohen's over letters + null, 95% percentile "
            "bootstrap over questions (greedy). strict-only: the strict parser found a letter the judge did not.")
    out = [Table("judge-table", "Strict parser vs judge", ["graph", "answers", "n", "same letter", "both null",
                                                            "strict only", "judge only", "different", "agreement",
                                                            "kappa [95% CI]"], rows, note)]
    if dis:
        out.append(Table("judge-disagreements", "Where strict parser and judge disagree",
                         ["graph", "question", "strict", "judge", "raw output"], dis))
    return out


def all_tables(summary: SummaryLike, ensemble: dict | None = None, top: int = 20) -> list[Table]:
    summary = as_summary(summary)
    ts: list[Table | None] = [graph_table(summary), sc_table(summary), calibration_table(summary), gap_table(summary),
                              comparison_table(summary)]
    ts += breakdown_tables(summary) + attribution_tables(summary) + [worst_case_table(summary, top)]
    ts += ensemble_tables(ensemble)
    ts += [tool_route_table(summary)] + judge_tables(summary, top)
    return [t.without_empty_columns() for t in ts if t is not None]


def main_tables(summary: SummaryLike) -> list[Table]:
    """The tables a terminal shows by default: graphs, self-consistency, paired comparisons."""
    summary = as_summary(summary)
    return [t for t in (graph_table(summary), sc_table(summary), comparison_table(summary), tool_route_table(summary))
            if t is not None] + judge_tables(summary)


def header_line(summary: SummaryLike) -> str:
    summary = as_summary(summary)
    run = summary.run or {}
    models = summary.models or ([run["model"]] if run.get("model") else [])
    boot = summary.bootstrap or {}
    return (f"model{'s' if len(models) > 1 else ''} {', '.join(models) or '?'} | benchmark {run.get('benchmark', '?')} | "
            f"n={summary.n_questions} questions | mean ± sd [2.5%, 97.5%], B={boot['B']}, "
            f"seed={boot['seed']}, same resamples for every graph and model")
