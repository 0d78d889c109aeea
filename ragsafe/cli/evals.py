"""CLI subcommands of the eval layer: score, report, ensemble, export-radsafe, import-radsafe.

Every command reads stored records only: no LLM call, no network.
"""

from __future__ import annotations

import json
from pathlib import Path

from ragsafe.cli.common import plugin_args
from ragsafe.defaults import BOOTSTRAP_B, BOOTSTRAP_SEED


def _stats_args(p) -> None:
    p.add_argument("--B", type=int, default=None, help=f"bootstrap resamples (default: the run's, else {BOOTSTRAP_B})")
    p.add_argument("--seed", type=int, default=None,
                   help=f"bootstrap seed (default: the run's, else {BOOTSTRAP_SEED})")
    p.add_argument("--threshold", type=float, default=0.80,
                   help="dangerous-overconfidence confidence threshold (default 0.80)")
    p.add_argument("--allow-errors", action="store_true", help="score graphs with error samples (errors = null)")
    p.add_argument("--sc-majority", default="null-ballot", choices=("null-ballot", "nulls-dropped"),
                   help="majority of the SC safety rates: null as a ballot (SAFE_SCALE.md, default) or nulls "
                        "dropped first (the paper's safety-rate script); recorded in the summary")
    p.add_argument("--net-benefit", default="", metavar="KEY=V,...",
                   help="net-benefit costs, e.g. w=5,abstain=0 (keys correct, abstain, null, wrong, w; "
                        "default +1, 0, -1, -1, w=3)")
    p.add_argument("--max-high-risk", type=float, default=2.0, metavar="X",
                   help="X of 'coverage at <= X%% high-risk error' (percent, default 2)")
    p.add_argument("--letters", default="strict", choices=["strict", "judge"],
                   help="score the strict parser's letters (default) or the LLM judge's (after ragsafe rejudge)")


def _safety_kw(a) -> dict:
    from ragsafe.evals.net_benefit import Costs

    return {"sc_majority": a.sc_majority, "benefit_costs": Costs.parse(a.net_benefit),
            "max_high_risk_pct": a.max_high_risk}


def cmd_score(a) -> int:
    from ragsafe.evals.reports.text import text_table
    from ragsafe.evals.score import score_run_dir

    summary = score_run_dir(a.run_dir, allow_errors=a.allow_errors, B=a.B, seed=a.seed, threshold=a.threshold,
                            text=not a.no_text, letters=a.letters, **_safety_kw(a))
    print(text_table(summary, full=a.full))
    _print_safety(summary)
    return 0


def _print_safety(summary: dict) -> None:
    from ragsafe.evals.reports.safety import safety_text

    text = safety_text(summary)
    if text:
        print("\n" + text)


def _analysis(a):
    from ragsafe.evals.score import analyze
    from ragsafe.experiments.runs import combine_runs, judge_agreement, load_run

    runs = [load_run(d, letters=a.letters) for d in a.run_dir]
    arms, questions = combine_runs(runs, common_questions=a.common_questions, text=not a.no_text)
    cfg = runs[0].run.config
    B = a.B or cfg.get("bootstrap_B", BOOTSTRAP_B)
    seed = cfg.get("bootstrap_seed", BOOTSTRAP_SEED) if a.seed is None else a.seed
    pairs = None
    if a.compare:
        from ragsafe.evals.score import default_pairs

        pairs = list(dict.fromkeys(default_pairs(arms) + [tuple(p) for p in a.compare]))
    summary = analyze(arms, questions, B=B, seed=seed, allow_errors=a.allow_errors, threshold=a.threshold,
                      pairs=pairs, **_safety_kw(a))
    specs = sorted({r.run.benchmark.get("original") or r.run.benchmark["spec"] for r in runs})
    summary["run"] = {"path": ", ".join(str(r.path) for r in runs), "benchmark": ", ".join(specs),
                      "model": ", ".join(sorted({r.model for r in runs}))}
    multi = len({r.model for r in runs}) > 1
    for r in runs:  # strict-vs-judge agreement of every run that has judge letters
        agree = judge_agreement(r.path, r.samples, B=B, seed=seed)
        if agree is not None:
            into = summary.setdefault("judge_agreement", {"judge": agree["judge"], "variants": {}})
            into["variants"].update({f"{v}@{r.model}" if multi else v: c for v, c in agree["variants"].items()})
            summary["letters"] = a.letters
    return runs, summary


def _sample_rows(a, runs) -> list[dict]:
    from ragsafe.evals.reports.browser import sample_rows
    from ragsafe.experiments.runs import combine_runs

    arms, questions = combine_runs(runs, common_questions=a.common_questions, text=not a.no_text)
    return sample_rows(arms, questions, judge=_judge_letters(runs, arms))


def _judge_letters(runs, arms) -> dict[tuple[str, str], str | None]:
    """(arm key, question id) -> the judge's letter, for the runs that were re-judged (the browser shows
    it beside the strict one). With ``--letters judge`` the records carry both already."""
    from ragsafe.experiments.rejudge import read_judge

    owner = {id(s): r for r in runs for s in r.samples}
    judged = {r.path: read_judge(r.path) for r in runs}
    out: dict[tuple[str, str], str | None] = {}
    for arm in arms:
        for qid, rec in arm.records.items():
            r = owner.get(id(rec))
            if getattr(rec, "answer_source", None) == "judge":
                out[(arm.key, qid)] = rec.letter
            elif r is not None and (line := judged[r.path].get((arm.variant, qid))) is not None:
                out[(arm.key, qid)] = line.get("letter")
    return out


def cmd_report(a) -> int:
    from ragsafe.evals.reports.csv import write_csv
    from ragsafe.evals.reports.markdown import markdown_report
    from ragsafe.evals.reports.text import text_table

    runs, summary = _analysis(a)
    ens = None
    if len({r.model for r in runs}) > 1:  # an ensemble section needs several models
        from ragsafe.evals.ensemble import analyze_ensemble

        members = [m for m in (a.members or "").split(",") if m] or None
        ens = analyze_ensemble(runs, members, B=summary["bootstrap"]["B"], seed=summary["bootstrap"]["seed"],
                               threshold=a.threshold, allow_errors=a.allow_errors,
                               common_questions=a.common_questions)
    print(text_table(summary, ens, full=a.full))
    _print_safety(summary)
    if a.md:
        from ragsafe.evals.reports.safety import safety_markdown

        extra = safety_markdown(summary)
        Path(a.md).write_text(markdown_report(summary, ens, top=a.top) + (f"\n\n## Safety\n\n{extra}\n" if extra else ""),
                              encoding="utf-8")
    if a.html:
        from ragsafe.evals.reports.html import write_html

        write_html(a.html, summary, ens, title=a.title, top=a.top, samples=_sample_rows(a, runs))
    if a.csv:
        write_csv(a.csv, summary)
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": summary, "ensemble": ens}, indent=1, default=str),
                                encoding="utf-8")
    if a.parquet:
        from ragsafe.experiments.frames import load_runs

        load_runs(a.run_dir).to_parquet(a.parquet)
    for kind, path in (("markdown", a.md), ("html", a.html), ("csv", a.csv), ("json", a.json),
                       ("parquet tables (samples, summary, comparisons, questions)", a.parquet)):
        if path:
            print(f"wrote {kind}: {path}")
    return 0


def cmd_ensemble(a) -> int:
    from ragsafe.evals.ensemble import analyze_ensemble
    from ragsafe.evals.reports.tables import Table
    from ragsafe.evals.reports.text import fixed_width
    from ragsafe.experiments.runs import load_run

    runs = [load_run(d, letters=a.letters) for d in a.run_dir]
    members = [m for m in (a.members or "").split(",") if m] or None
    res = analyze_ensemble(runs, members, variants=a.graph, B=a.B or BOOTSTRAP_B, seed=BOOTSTRAP_SEED if a.seed is None else a.seed,
                           threshold=a.threshold, allow_errors=a.allow_errors, common_questions=a.common_questions)
    from ragsafe.evals.ensemble import ensemble_table

    t = ensemble_table(res)
    print(f"ensemble of {', '.join(res['members'])} | n={res['n_questions']} questions")
    print("\n".join(fixed_width(Table("ensemble", "", t[0], t[1:]))))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1), encoding="utf-8")
    return 0


def cmd_export(a) -> int:
    from ragsafe.evals.radsafe import export_radsafe

    *runs, out = a.paths
    if not runs:
        raise ValueError("usage: ragsafe export-radsafe RUN_DIR [RUN_DIR ...] OUT_DIR")
    m = export_radsafe(runs, out)
    for model, info in m["models"].items():
        print(f"{out}/phase4_checking_results/results/{model}/risk_radiorag_checked.jsonl: "
              f"{len(m['question_ids'])} questions, conditions {', '.join(info['conditions'])}")
    return 0


def cmd_import(a) -> int:
    from ragsafe.evals.radsafe import import_radsafe

    for d in import_radsafe(a.dir, a.out, model=a.model):
        print(f"run folder: {d}  (score it with `ragsafe score {d}`)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("score", help="recompute summary.json from samples.jsonl (no LLM call)")
    p.add_argument("run_dir", help="run folder holding samples.jsonl")
    _stats_args(p)
    p.add_argument("--no-text", action="store_true",
                   help="skip rebuilding chunk texts from the corpus (conflict-support test of retrieved chunks)")
    p.add_argument("--full", action="store_true", help="print every table, not only the main ones")
    plugin_args(p)
    p.set_defaults(fn=cmd_score)

    p = sub.add_parser("report", help="tables and a static HTML/Markdown/CSV report over one or more runs")
    p.add_argument("run_dir", nargs="+", help="run folders (several models: one run per model)")
    p.add_argument("--html", default=None, help="write a self-contained HTML page here")
    p.add_argument("--md", default=None, help="write the Markdown report here")
    p.add_argument("--csv", default=None, help="write every estimate in long format here")
    p.add_argument("--json", default=None, help="write the full analysis as JSON here")
    p.add_argument("--parquet", default=None, metavar="DIR",
                   help="write the DataFrames of ragsafe.load_run (samples, summary, comparisons, questions) "
                        "as Parquet files into DIR (needs the 'frames' extra: pandas, pyarrow)")
    p.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"),
                   help="an extra paired comparison of two graphs (variant, or variant@model with several models)")
    p.add_argument("--members", default=None, help="models of the ensemble section (comma-separated; default all)")
    p.add_argument("--common-questions", action="store_true", help="use the questions every run shares")
    p.add_argument("--top", type=int, default=20, help="rows of the worst-case table")
    p.add_argument("--title", default="ragsafe report", help="title of the HTML/Markdown report")
    p.add_argument("--no-text", action="store_true", help="skip rebuilding chunk texts from the corpus")
    p.add_argument("--full", action="store_true", help="print every table in the terminal")
    _stats_args(p)
    plugin_args(p)
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("ensemble", help="majority vote of several models' greedy answers")
    p.add_argument("run_dir", nargs="+", help="one run folder per model")
    p.add_argument("--members", default=None, help="comma-separated model names (default: every run's model)")
    p.add_argument("--graph", action="append", help="only these graph variants (default: those every member ran)")
    p.add_argument("--common-questions", action="store_true", help="use the questions every run shares")
    p.add_argument("--json", default=None, help="write the ensemble analysis as JSON here")
    _stats_args(p)
    plugin_args(p)
    p.set_defaults(fn=cmd_ensemble)

    p = sub.add_parser("export-radsafe", help="write runs in the paper pipeline's phase-4 layout")
    p.add_argument("paths", nargs="+", metavar="RUN_DIR... OUT_DIR",
                   help="run folders (one per model), then the folder to write the layout into")
    plugin_args(p)
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("import-radsafe", help="read a phase-4 layout folder back into run folder(s)")
    p.add_argument("dir", help="phase-4 layout folder (as export-radsafe writes it)")
    p.add_argument("--out", required=True, help="run folder (several models: a folder of run folders)")
    p.add_argument("--model", default=None, help="import only this model directory")
    plugin_args(p)
    p.set_defaults(fn=cmd_import)
