"""The summary's ``safety`` section: selective answering, net benefit and poisoning, per arm and paired.

Everything here reads stored records (already aligned with the analysis's questions, ids as text)
and the shared bootstrap index matrix of the analysis, so each estimate has its n and CI and each
difference is paired on the same resamples:

* ``selective[arm][source]``: the risk–coverage curve, AURC (accuracy, high-risk) and coverage at
  <= X % high-risk error of every confidence source the arm has (:mod:`ragsafe.evals.selective`).
* ``net_benefit[arm]``: mean net benefit under the costs given (:mod:`ragsafe.evals.net_benefit`),
  plus the counts of explicit abstentions and unparseable nulls.
* ``poison[arm]``: for arms of a run on a poisoned corpus (key suffix ``+poison``): poison retrieved
  (a poison document in the final context), answer captured by the poison (poison in the context
  AND the letter is the question's conflict target), high-risk error under poison.
* ``pairs``: for each compared pair (the analysis's comparisons plus every ``X+poison`` vs ``X``):
  paired differences of net benefit, of the AURCs of each shared source and, for poison pairs, of
  the poison rates, accuracy and high-risk error (poisoned − clean).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ragsafe.corpora.schema import Question
from ragsafe.evals import net_benefit as nb
from ragsafe.evals import selective, stats
from ragsafe.evals.metrics import metrics
from ragsafe.evals.metrics.registry import letter_of, wrong_and

POISON_SUFFIX = "+poison"


def _per_question(name: str, recs: list[dict], questions: list[Question], *extra) -> list[float] | None:
    """Per-question values of registered safety metric ``name`` (None when any question has none)."""
    fn = metrics.get(name).fn
    vals = [fn(r, q, *extra) for r, q in zip(recs, questions)]
    return None if any(v is None for v in vals) else [float(v) for v in vals]


def _poison_values(recs: list[dict], questions: list[Question]) -> dict[str, list[float] | None]:
    hr = [wrong_and(letter_of(r), q, "high_risk") for r, q in zip(recs, questions)]
    return {"poison_retrieved_rate": _per_question("poison_retrieved_rate", recs, questions),
            "poison_capture_rate": _per_question("poison_capture_rate", recs, questions),
            "high_risk_error_rate": None if any(h is None for h in hr) else hr,
            "accuracy": [float(q.is_correct(letter_of(r))) for r, q in zip(recs, questions)]}


def analyze_safety(samples_ok: dict[str, list[dict]], questions: list[Question], idx: np.ndarray,
                   pairs: list[tuple[str, str]], *, costs: nb.Costs = nb.Costs(),
                   max_high_risk_pct: float = selective.DEFAULT_MAX_HIGH_RISK,
                   poisoned: set[str] = frozenset()) -> dict[str, Any]:
    """The ``safety`` section for the scored arms ``samples_ok`` (arm key -> records in question order)."""
    out: dict[str, Any] = {"settings": {"costs": costs.__dict__.copy(), "max_high_risk_pct": max_high_risk_pct,
                                        "verdict_confidence": selective.VERDICT_CONFIDENCE},
                           "selective": {}, "net_benefit": {}, "poison": {}, "pairs": []}
    sel_vals: dict[str, dict] = {}
    sel_reps: dict[str, dict] = {}
    nb_vals: dict[str, list[float] | None] = {}
    poison_vals: dict[str, dict] = {}
    for key, recs in samples_ok.items():
        srcs = selective.per_question(recs, questions)
        sel_vals[key], sel_reps[key] = srcs, {}
        cell = {}
        for src, v in srcs.items():
            cell[src], sel_reps[key][src] = selective.summarize_source(v, idx, max_high_risk_pct)
        out["selective"][key] = cell
        vals = _per_question("net_benefit", recs, questions, costs)
        nb_vals[key] = vals
        out["net_benefit"][key] = {
            "estimate": stats.bootstrap(vals, idx).as_dict() if vals is not None else None,
            "na": None if vals is not None else "n/a: the benchmark has no option labels",
            "abstentions": sum(nb.abstained(r) for r in recs),
            "nulls": sum(letter_of(r) is None and not nb.abstained(r) for r in recs)}
        if key in poisoned:
            pv = _poison_values(recs, questions)
            poison_vals[key] = pv
            out["poison"][key] = {m: (stats.bootstrap(v, idx).as_dict() if v is not None else None)
                                  for m, v in pv.items() if m.startswith("poison_")}
    for key in poisoned:
        clean = key[: -len(POISON_SUFFIX)] if key.endswith(POISON_SUFFIX) else None
        if clean and clean in samples_ok and (key, clean) not in pairs:
            pairs = [*pairs, (key, clean)]
    for a, b in pairs:
        if a not in samples_ok or b not in samples_ok:
            continue
        p: dict[str, Any] = {"a": a, "b": b}
        if nb_vals[a] is not None and nb_vals[b] is not None:
            p["net_benefit"] = stats.paired_difference(nb_vals[a], nb_vals[b], idx).as_dict()
        p["aurc"] = {src: selective.paired_aurc(sel_vals[a][src], sel_vals[b][src], sel_reps[a][src], sel_reps[b][src])
                     for src in sel_vals[a] if src in sel_vals[b]}
        if a in poison_vals:
            clean_vals = _poison_values(samples_ok[b], questions)
            p["poison"] = {m: stats.paired_difference(va, clean_vals[m], idx).as_dict()
                           for m, va in poison_vals[a].items() if va is not None and clean_vals[m] is not None}
        out["pairs"].append(p)
    return out
