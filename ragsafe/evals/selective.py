"""Selective answering: risk–coverage curves, AURC and coverage at a high-risk error budget.

Definitions (SAFE_SCALE.md "Beyond the paper"). Given a confidence per question (higher = more
sure), questions are grouped by equal confidence; for each distinct confidence t, from the highest
down, ``answered(t)`` = questions with confidence >= t, ``coverage(t) = |answered| / n``, and the
selective rate of a metric = its count over ``answered(t)`` / ``|answered(t)|`` (accuracy: correct;
high-risk: wrong AND high_risk; a null letter is wrong and carries no flag). The curve is the step
function through these points. ``AURC`` = sum over the points, in order, of
``(coverage(t) - coverage(previous t)) * rate(t)``, coverage starting at 0. "Coverage at <= X %" =
the largest ``coverage(t)`` whose selective high-risk rate <= X / 100 (0 if none).

Ties: questions of equal confidence enter together (one point), so the curve never depends on the
order of tied questions; a source that gives every question the same confidence has one point,
coverage 1. Confidences are compared exactly (no rounding): 0.5 and 0.5000001 are two groups.

Confidence sources, per record (:func:`confidences`), each with the letter it vouches for:

* ``sc_confidence`` / ``sc_agreement``: from the self-consistency ballots; the letter is the
  majority (SAFE_SCALE.md rule, null as a ballot).
* ``letter_prob``: the probability the server gave the greedy letter among the letters of the first
  answer token (``letter_dist``); a null greedy letter has confidence 0.
* ``verifier``: the verdict on the final answer of a verifier graph: supported 1, insufficient 0.5,
  contradicted 0; the letter is the greedy (final) one.

A source is available for a graph variant only when every one of its records carries it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ragsafe.corpora.schema import Question
from ragsafe.evals import stats
from ragsafe.evals.metrics.registry import letter_of, wrong_and
from ragsafe.evals.metrics.safety import DEFAULT_MAX_HIGH_RISK, Point, aurc, coverage_at, curve  # noqa: F401
from ragsafe.evals.metrics.self_consistency import agreement, ballots_of, confidence, majority
from ragsafe.records import SampleLike, SampleRecord, sample_view

SOURCES = ["sc_confidence", "sc_agreement", "letter_prob", "verifier"]
VERDICT_CONFIDENCE = {"supported": 1.0, "insufficient": 0.5, "contradicted": 0.0}


def _verdict(rec: SampleRecord) -> float | None:
    for t in reversed(rec.trace or []):
        if t.node == "finalize" and t.verdicts is not None:
            verdicts, final = t.verdicts, t.final_round
            if not verdicts:
                return None
            v = verdicts[final] if isinstance(final, int) and 0 <= final < len(verdicts) else verdicts[-1]
            return VERDICT_CONFIDENCE.get(v, 0.5)
    return None


def confidences(rec: SampleLike, q: Question) -> dict[str, tuple[float, str | None]]:
    """Every confidence source this record carries: source -> (confidence, the letter it vouches for)."""
    rec = sample_view(rec)
    out: dict[str, tuple[float, str | None]] = {}
    b = ballots_of(rec, q)
    if b is not None and not rec.error:
        maj = majority(b)
        out["sc_confidence"] = (confidence(b, len(q.options)), maj)
        out["sc_agreement"] = (agreement(b), maj)
    letter = letter_of(rec)
    dist = rec.letter_dist
    if isinstance(dist, dict) and dist and not rec.error:
        out["letter_prob"] = (float(dist.get(letter, 0.0)) if letter else 0.0, letter)
    v = None if rec.error else _verdict(rec)
    if v is not None:
        out["verifier"] = (v, letter)
    return out


def per_question(records: list[SampleLike], questions: list[Question]) -> dict[str, dict[str, list]]:
    """Per source available on every record: aligned lists ``conf``, ``correct``, ``high_risk`` (None
    without labels)."""
    rows = [confidences(r, q) for r, q in zip(records, questions)]
    out: dict[str, dict[str, list]] = {}
    for src in SOURCES:
        if not rows or any(src not in r for r in rows):
            continue
        conf, correct, hr = [], [], []
        for r, q in zip(rows, questions):
            c, letter = r[src]
            conf.append(c)
            correct.append(float(letter is not None and letter == q.answer))
            hr.append(wrong_and(letter, q, "high_risk"))
        out[src] = {"conf": conf, "correct": correct, "high_risk": None if any(h is None for h in hr) else hr}
    return out


def _stats_of(conf, correct, hr, x: float) -> tuple[float, float | None, float | None]:
    """AURC accuracy, AURC high-risk and coverage at ``x`` of one sample, through :func:`curve`."""
    pts = curve(conf, correct, hr)
    return aurc(pts, "accuracy"), aurc(pts, "high_risk"), coverage_at(pts, x)


def replicates(src: dict[str, list], idx: np.ndarray, x: float = DEFAULT_MAX_HIGH_RISK) -> np.ndarray:
    """(B, 3) array of (AURC accuracy, AURC high-risk, coverage at x) over the shared resamples
    (NaN where a quantity is undefined: no labels).

    All B resamples at once, with the same floating-point operations as :func:`curve`,
    :func:`aurc` and :func:`coverage_at` on each (stable sort, running sums added left to right),
    so every replicate equals :func:`_stats_of` on it bit for bit (a test checks this).
    """
    c, ok = np.asarray(src["conf"], float), np.asarray(src["correct"], float)
    hr = None if src["high_risk"] is None else np.asarray(src["high_risk"], float)
    B, n = idx.shape
    out = np.full((B, 3), np.nan)
    if n == 0:
        return out
    order = np.argsort(-c[idx], axis=1, kind="stable")
    rows = np.take_along_axis(idx, order, axis=1)  # each resample, highest confidence first
    cs = c[rows]
    ends = np.ones((B, n), bool)  # the last question of each group of equal confidence
    ends[:, :-1] = cs[:, 1:] != cs[:, :-1]
    m = np.arange(1, n + 1)
    cov = m / n
    # the coverage of the previous group's end (0 before the first)
    prev_m = np.maximum.accumulate(np.where(ends, m, 0), axis=1)
    prev_cov = np.zeros((B, n))
    prev_cov[:, 1:] = prev_m[:, :-1] / n
    step = np.where(ends, cov - prev_cov, 0.0)

    def area(cum: np.ndarray) -> np.ndarray:
        return np.cumsum(step * (cum / m), axis=1)[:, -1]  # left to right, as aurc() adds

    out[:, 0] = area(np.cumsum(ok[rows], axis=1))
    if hr is not None:
        rate = np.cumsum(hr[rows], axis=1) / m
        out[:, 1] = area(np.cumsum(hr[rows], axis=1))
        lim = x / 100.0 + 1e-12
        out[:, 2] = np.where(ends & (rate <= lim), cov, 0.0).max(axis=1)
    return out


def _estimate(obs: float | None, reps: np.ndarray, n: int) -> dict | None:
    if obs is None or np.isnan(reps).all():
        return None
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return stats.Estimate(float(obs), float(np.std(reps, ddof=1)), float(lo), float(hi), n).as_dict()


def summarize_source(src: dict[str, list], idx: np.ndarray, x: float = DEFAULT_MAX_HIGH_RISK
                     ) -> tuple[dict[str, Any], np.ndarray]:
    """Observed curve and AURC / coverage estimates with bootstrap CIs; also the replicates (for pairing)."""
    pts = curve(src["conf"], src["correct"], src["high_risk"])
    a, h, cov = aurc(pts, "accuracy"), aurc(pts, "high_risk"), coverage_at(pts, x)
    reps = replicates(src, idx, x)
    n = len(src["conf"])
    return {"n": n, "max_high_risk_pct": x,
            "curve": [dataclasses.asdict(p) for p in pts],
            "aurc_accuracy": _estimate(a, reps[:, 0], n),
            "aurc_high_risk": _estimate(h, reps[:, 1], n),
            "coverage_at_max_high_risk": _estimate(cov, reps[:, 2], n)}, reps


def paired_aurc(a: dict[str, list], b: dict[str, list], reps_a: np.ndarray, reps_b: np.ndarray) -> dict[str, Any]:
    """Paired differences a − b of AURC (accuracy, high-risk) on the same resamples."""
    pa, pb = curve(a["conf"], a["correct"], a["high_risk"]), curve(b["conf"], b["correct"], b["high_risk"])
    n = len(a["conf"])
    out = {}
    for j, key in enumerate(("accuracy", "high_risk")):
        oa, ob = aurc(pa, key), aurc(pb, key)
        out[f"aurc_{key}"] = None if oa is None or ob is None else _estimate(oa - ob, reps_a[:, j] - reps_b[:, j], n)
    return out
