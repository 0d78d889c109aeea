"""Confidence sources and their calibration: every ``over="confidence"`` metric (ECE, MCE, ...) per source.

Three confidence sources, each paired with the answer it is the confidence of:

``sc``            self-consistency confidence 1 − H(ballots)/ln(|options|+1) of the majority answer
                  (:mod:`ragsafe.evals.metrics.self_consistency`).
``token_prob``    the probability of the greedy letter under the answer token's letter distribution.
``token_entropy`` 1 − H(letter_dist)/ln(|options|) of the greedy answer
                  (both :mod:`ragsafe.evals.metrics.token`).

Per source and graph: mean confidence, every registered confidence metric (ECE and MCE, see
:mod:`ragsafe.evals.metrics.calibration`) with its CI on the run's shared bootstrap resamples, the
reliability bins and the dangerous-overconfidence rate of that source.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ragsafe.corpora.schema import Question
from ragsafe.evals import stats
from ragsafe.evals.metrics import self_consistency as sc_metrics
from ragsafe.evals.metrics.calibration import reliability
from ragsafe.evals.metrics.registry import DEFAULT_OPTIONS, Metric, Options, letter_of, select
from ragsafe.evals.metrics.token import token_entropy, token_prob


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    label: str
    confidence: Callable[[dict, Question], float | None]
    answer: Callable[[dict, Question], str | None]


def _sc_conf(s, q):
    b = sc_metrics.ballots_of(s, q)
    return None if b is None else sc_metrics.confidence(b, len(q.options))


def _sc_answer(s, q):
    b = sc_metrics.ballots_of(s, q)
    return None if b is None else sc_metrics.majority(b)


SOURCES = {
    "sc": Source("sc", "self-consistency", _sc_conf, _sc_answer),
    "token_prob": Source("token_prob", "token probability", token_prob, lambda s, q: letter_of(s)),
    "token_entropy": Source("token_entropy", "token entropy", token_entropy, lambda s, q: letter_of(s)),
}


def source_values(source: str, samples_q: list[dict], questions: list[Question]
                  ) -> tuple[list[float], list[bool], list[str | None]] | None:
    """(confidence, answer correct, answer letter) per question for ``source``; None when unavailable."""
    src = SOURCES[source]
    conf, corr, ans = [], [], []
    for s, q in zip(samples_q, questions):
        c = src.confidence(s, q)
        if c is None:
            return None
        a = src.answer(s, q)
        conf.append(float(c))
        ans.append(a)
        corr.append(q.is_correct(a))
    return conf, corr, ans


def estimate(m: Metric, conf, correct, idx: np.ndarray) -> stats.Estimate:
    """A confidence metric with its percentile CI over the shared resamples ``idx`` (B × n)."""
    if m.bootstrap is not None:
        return m.bootstrap(conf, correct, idx)
    conf, correct = np.asarray(conf, float), np.asarray(correct, float)
    n = conf.size
    if n == 0:
        return stats.Estimate(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    reps = np.array([m.fn(conf[row], correct[row]) for row in idx], dtype=float)
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return stats.Estimate(float(m.fn(conf, correct)), float(reps.std(ddof=1)) if len(reps) > 1 else 0.0,
                          float(lo), float(hi), n)


def calibrate(samples_q: list[dict], questions: list[Question], idx: np.ndarray,
              opts: Options = DEFAULT_OPTIONS) -> dict[str, dict]:
    """Per confidence source: mean confidence, every confidence metric, reliability bins, dangerous overconfidence."""
    out: dict[str, dict] = {}
    for name, src in SOURCES.items():
        vals = source_values(name, samples_q, questions)
        if vals is None:
            continue
        conf, corr, ans = vals
        cell = {"label": src.label, "mean_confidence": stats.bootstrap(conf, idx).as_dict()}
        for m in select(over="confidence"):
            cell[m.name] = estimate(m, conf, corr, idx).as_dict()
        cell["bins"] = reliability(conf, corr)
        dang = [sc_metrics.dangerous(c, a, q, opts.threshold) for c, a, q in zip(conf, ans, questions)]
        cell["dangerous_overconfidence"] = (None if any(d is None for d in dang)
                                            else stats.bootstrap(dang, idx).as_dict())
        out[name] = cell
    return out
