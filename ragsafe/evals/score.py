"""Summaries from stored samples: metric estimates with n and CI, cost, paired tests.

Everything here reads records only (no LLM call), so ``ragsafe score RUN_DIR`` recomputes a
summary from ``samples.jsonl`` at any time.
"""

from __future__ import annotations

import statistics
from typing import Any

from ..corpora.benchmark import Question
from . import stats
from .metrics import GREEDY_METRICS, metrics, per_question

FLOOR, CEILING = "closed_book", "clean_evidence"


def cost_of(rec: dict) -> dict[str, float]:
    calls = ptok = ctok = retr = 0
    for t in rec.get("trace") or []:
        for c in t.get("llm_calls") or []:
            calls += 1
            ptok += c.get("prompt_tokens") or 0
            ctok += c.get("completion_tokens") or 0
        if t.get("retrieval"):
            retr += 1
    return {"llm_calls": calls, "prompt_tokens": ptok, "completion_tokens": ctok, "retrieval_calls": retr,
            "seconds": rec.get("seconds") or 0.0}


def summarize(samples: list[dict], questions: list[Question], variants: list[str], *, B: int = 1000,
              seed: int = 42, allow_errors: bool = False) -> dict[str, Any]:
    """Per-variant metric estimates (mean, sd, 2.5–97.5% CI, n) and paired comparisons.

    A variant whose records are incomplete, or that has error records (unless ``allow_errors``;
    then errors count as null answers and their number is reported), gets a status instead of
    metrics: figures over a different question set would not be paired.
    """
    questions = sorted(questions, key=lambda q: q.id)
    n = len(questions)
    idx = stats.bootstrap_indices(n, B, seed)
    qids = {q.id for q in questions}
    by_variant: dict[str, dict[str, dict]] = {v: {} for v in variants}
    for s in samples:
        if s["variant"] in by_variant and s["question_id"] in qids:
            by_variant[s["variant"]].setdefault(s["question_id"], s)
    out: dict[str, Any] = {"n_questions": n, "bootstrap": {"B": B, "seed": seed, "order": "question id as text"},
                           "variants": {}, "comparisons": []}
    correct: dict[str, list[bool]] = {}
    values: dict[str, dict[str, list[float] | None]] = {}
    for v in variants:
        recs = by_variant[v]
        n_err = sum(1 for r in recs.values() if r.get("error"))
        cell: dict[str, Any] = {"n": n, "done": len(recs), "errors": n_err}
        costs = [cost_of(r) for r in recs.values()]
        if costs:
            cell["cost"] = {k: statistics.fmean(c[k] for c in costs) for k in costs[0]}
        fallbacks = sum(1 for r in recs.values() for t in r.get("trace") or [] if t.get("fallback"))
        cell["fallbacks"] = fallbacks
        if len(recs) < n:
            cell["status"] = f"incomplete: {len(recs)}/{n} questions"
        elif n_err and not allow_errors:
            cell["status"] = f"{n_err} error samples: re-run to retry them, or pass --allow-errors"
        else:
            cell["status"] = "ok" if not n_err else f"ok with {n_err} errors counted as null"
            samples_q = [{**recs[q.id], "letter": None if recs[q.id].get("error") else recs[q.id].get("letter")}
                         for q in questions]
            pq = per_question(samples_q, questions, GREEDY_METRICS)
            values[v] = pq
            cell["metrics"] = {name: (stats.bootstrap(vals, idx).as_dict() if vals is not None else None)
                               for name, vals in pq.items()}
            correct[v] = [bool(x) for x in pq["accuracy"]]
        out["variants"][v] = cell
    # paired comparisons: every variant against the floor and the ceiling when present
    ref_names = [r for r in variants if r.split("[")[0] in (FLOOR, CEILING) and r in values]
    comps = []
    for ref in ref_names:
        for v in variants:
            if v == ref or v not in values:
                continue
            if v.split("[")[0] == FLOOR and ref.split("[")[0] == CEILING:
                continue  # reported once, as ceiling vs floor
            c: dict[str, Any] = {"a": v, "b": ref, "mcnemar": stats.mcnemar_exact(correct[v], correct[ref]),
                                 "diff": {}}
            for name in GREEDY_METRICS:
                a, b = values[v].get(name), values[ref].get(name)
                if a is not None and b is not None:
                    c["diff"][name] = stats.paired_difference(a, b, idx).as_dict()
            comps.append(c)
    q = stats.benjamini_hochberg([c["mcnemar"]["p"] for c in comps])
    for c, qv in zip(comps, q):
        c["mcnemar"]["q_bh"] = qv
    out["comparisons"] = comps
    out["metric_info"] = {m: {"higher_is_better": metrics.get(m).higher_is_better,
                              "needs_labels": metrics.get(m).needs_labels} for m in GREEDY_METRICS}
    return out
