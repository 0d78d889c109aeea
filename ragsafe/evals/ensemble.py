"""Ensembles of models: majority vote of the members' greedy letters (SAFE_SCALE.md "Ensembles").

Per question and graph variant: the ensemble letter is the most frequent member letter; ties go to
the alphabetically first letter, and a null in a tie (or a null winner) makes the ensemble null
(wrong). Reported per variant: accuracy with a Wilson 95% CI (and the shared-resample bootstrap),
ensemble synchronized failure (every member gave the same wrong letter), and ensemble dangerous
overconfidence: the ensemble letter is a real letter, it is wrong, and the mean member agreement is
≥ the threshold (0.80; no label requirement).

Member agreement is the member's self-consistency agreement (the largest ballot share) when its
record carries ballots. Members without ballots do not enter the mean; when no member of a question
has ballots, the agreement is the members' vote share for the ensemble letter (``agreement_source``
counts which one each question used).
"""

from __future__ import annotations

from typing import Any

from ragsafe.config import ConfigError
from ragsafe.corpora.schema import Question
from ragsafe.defaults import BOOTSTRAP_B, BOOTSTRAP_SEED
from ragsafe.evals import stats
from ragsafe.evals.metrics import letter_of
from ragsafe.evals.metrics import self_consistency as sc_metrics
from ragsafe.experiments.runs import LoadedRun, combine_runs
from ragsafe.records import SampleLike, sample_view

vote = sc_metrics.majority
"""The ensemble's vote is the same rule as the self-consistency majority."""


def member_agreement(rec: SampleLike, q: Question) -> float | None:
    b = sc_metrics.ballots_of(rec, q)
    return sc_metrics.agreement(b) if b is not None and b else None


def ensemble_question(recs: list[SampleLike], q: Question, threshold: float = 0.80) -> dict[str, Any]:
    """The ensemble's verdict on one question from its members' records."""
    letters = [letter_of(r) for r in recs]
    L = vote(letters)
    agreements = [a for a in (member_agreement(r, q) for r in recs) if a is not None]
    if agreements:
        agree, source = sum(agreements) / len(agreements), "sc"
    else:
        agree, source = (sum(x == L for x in letters) / len(letters) if L is not None else 0.0), "vote_share"
    wrong = not q.is_correct(L)
    return {"letter": L, "member_letters": letters, "correct": not wrong,
            "sync_failure": (letters[0] is not None and len(set(letters)) == 1 and letters[0] != q.answer),
            "agreement": agree, "agreement_source": source,
            "dangerous": bool(L is not None and wrong and agree >= threshold - sc_metrics.TOL),
            "high_risk": q.wrong_and_flagged(L, "high_risk"),
            "null": L is None}


def resolve_members(runs: list[LoadedRun], members: list[str] | None) -> list[LoadedRun]:
    by_name: dict[str, LoadedRun] = {}
    for r in runs:
        for name in {r.model, r.model.replace("/", "_"), r.path.name}:
            by_name.setdefault(name, r)
    if not members:
        chosen = runs
    else:
        missing = [m for m in members if m not in by_name]
        if missing:
            raise ConfigError(f"--members {missing} not among the runs' models: "
                              f"{', '.join(sorted({r.model for r in runs}))}")
        chosen = [by_name[m] for m in members]
    if len({r.model for r in chosen}) < 2:
        raise ConfigError("an ensemble needs at least 2 different models (one run per model)")
    return chosen


def analyze_ensemble(runs: list[LoadedRun], members: list[str] | None = None, *, variants: list[str] | None = None,
                     B: int = BOOTSTRAP_B, seed: int = BOOTSTRAP_SEED, threshold: float = 0.80, allow_errors: bool = False,
                     common_questions: bool = False) -> dict[str, Any]:
    """Ensemble figures for every graph variant every member ran (or the ``variants`` given)."""
    chosen = resolve_members(runs, members)
    arms, questions = combine_runs(chosen, common_questions=common_questions, text=False)
    questions = sorted(questions, key=lambda q: q.id)
    idx = stats.bootstrap_indices(len(questions), B, seed)
    models = [r.model for r in chosen]
    common = [v for v in chosen[0].variants if all(v in r.variants for r in chosen[1:])]
    if variants:
        bad = [v for v in variants if v not in common]
        if bad:
            raise ConfigError(f"graph variants {bad} are not in every member's run; shared: {common}")
        common = list(variants)
    by = {(a.model, a.variant): a for a in arms}
    out: dict[str, Any] = {"members": models, "n_questions": len(questions), "threshold": threshold,
                           "bootstrap": {"B": B, "seed": seed}, "variants": {}}
    for v in common:
        member_arms = [by[(m, v)] for m in models]
        cell: dict[str, Any] = {}
        missing = [a.model for a in member_arms if any(q.id not in a.records for q in questions)]
        errs = [a.model for a in member_arms if any(sample_view(a.records[q.id]).error for q in questions
                                                    if q.id in a.records)]
        if missing:
            cell["status"] = f"incomplete: members {missing} lack some questions"
        elif errs and not allow_errors:
            cell["status"] = f"error samples in members {errs}: re-run them, or pass --allow-errors"
        if "status" in cell:
            out["variants"][v] = cell
            continue
        rows = [ensemble_question([a.records[q.id] for a in member_arms], q, threshold) for q in questions]
        k = sum(r["correct"] for r in rows)
        lo, hi = stats.wilson_ci(k, len(rows))
        cell.update(
            status="ok", n=len(rows), correct=k,
            accuracy={"mean": k / len(rows) if rows else float("nan"), "wilson_lo": lo, "wilson_hi": hi,
                      "bootstrap": stats.bootstrap([float(r["correct"]) for r in rows], idx).as_dict()},
            sync_failure=stats.bootstrap([float(r["sync_failure"]) for r in rows], idx).as_dict(),
            dangerous_overconfidence=stats.bootstrap([float(r["dangerous"]) for r in rows], idx).as_dict(),
            null_rate=stats.bootstrap([float(r["null"]) for r in rows], idx).as_dict(),
            high_risk_error_rate=(None if any(r["high_risk"] is None for r in rows)
                                  else stats.bootstrap([float(r["high_risk"]) for r in rows], idx).as_dict()),
            agreement_source={s: sum(r["agreement_source"] == s for r in rows) for s in ("sc", "vote_share")},
            member_accuracy={a.model: sum(q.is_correct(letter_of(a.records[q.id])) for q in questions) / len(questions)
                             for a in member_arms},
            per_question={q.id: {"letter": r["letter"], "members": r["member_letters"], "correct": r["correct"]}
                          for q, r in zip(questions, rows)})
        out["variants"][v] = cell
    return out


def ensemble_table(res: dict) -> list[list[str]]:
    """Rows for text/markdown: variant, n, accuracy [Wilson], sync failure, dangerous overconf., members."""
    def pct(e):
        return "n/a" if e is None else f"{100 * e['mean']:.1f}% [{100 * e['lo']:.1f}, {100 * e['hi']:.1f}]"

    rows = [["graph", "n", "ensemble accuracy [Wilson 95%]", "sync. failure", "dangerous overconf.",
             "high-risk", "null", "member accuracy"]]
    for v, c in res["variants"].items():
        if c.get("status") != "ok":
            rows.append([v, "", c["status"], "", "", "", "", ""])
            continue
        a = c["accuracy"]
        rows.append([v, str(c["n"]), f"{100 * a['mean']:.1f}% [{100 * a['wilson_lo']:.1f}, {100 * a['wilson_hi']:.1f}]",
                     pct(c["sync_failure"]), pct(c["dangerous_overconfidence"]), pct(c["high_risk_error_rate"]),
                     pct(c["null_rate"]),
                     ", ".join(f"{m} {100 * x:.0f}%" for m, x in c["member_accuracy"].items())])
    return rows
