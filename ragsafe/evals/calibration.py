"""Confidence sources, calibration (ECE, MCE, reliability bins) and dangerous overconfidence.

Three confidence sources, each paired with the answer it is the confidence of:

``sc``            self-consistency confidence 1 − H(ballots)/ln(|options|+1) of the majority answer.
``token_prob``    the probability of the greedy letter under the answer token's letter distribution
                  (``letter_dist``, renormalised over the question's options).
``token_entropy`` 1 − H(letter_dist)/ln(|options|) of the greedy answer (the distribution has no
                  null bin, hence ln |options|).

A null greedy letter has token confidence 0 (the model committed to no option; it is wrong either
way). A record without ``letter_dist`` makes the token sources n/a for its graph, except error
records scored with ``--allow-errors``, which count as null answers (confidence 0).

Calibration bins: 10 equal-width bins on [0, 1] (the last one closed), confidence ``c`` in bin
``min(floor(10 c), 9)``. ECE = Σ_b (n_b/n)·|acc_b − conf_b|; MCE = max over non-empty bins of
|acc_b − conf_b|. Their CIs use the run's shared bootstrap resamples.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from ragsafe.corpora.schema import Question
from ragsafe.evals import stats
from ragsafe.evals.metrics import self_consistency as sc_metrics
from ragsafe.evals.metrics.greedy import DEFAULT_OPTIONS, Options, letter_of, metric

N_BINS = 10


def _dist(s: dict, q: Question) -> dict[str, float] | None:
    d = s.get("letter_dist")
    if not isinstance(d, dict):
        return None
    mass = {L: float(d.get(L) or 0.0) for L in q.options}
    total = sum(mass.values())
    return {L: v / total for L, v in mass.items()} if total > 0 else None


def token_prob(s: dict, q: Question) -> float | None:
    """P(greedy letter) under the letter distribution; 0 for a null letter; None without a distribution."""
    if s.get("error"):
        return 0.0
    d = _dist(s, q)
    if d is None:
        return None
    L = letter_of(s)
    return d.get(L, 0.0) if L is not None else 0.0


def token_entropy(s: dict, q: Question) -> float | None:
    """1 − H(letter_dist)/ln(|options|) for a real greedy letter; 0 for a null letter."""
    if s.get("error"):
        return 0.0
    d = _dist(s, q)
    if d is None:
        return None
    if letter_of(s) is None:
        return 0.0
    h = -sum(p * math.log(p) for p in d.values() if p > 0)
    return 1.0 - h / math.log(len(q.options)) if len(q.options) > 1 else 1.0


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


@metric("token_confidence", higher_is_better=None, label="token P(letter)", kind="token", needs="letter_dist")
def _token_conf(s, q, opts: Options = DEFAULT_OPTIONS):
    return token_prob(s, q)


@metric("token_entropy_confidence", higher_is_better=None, label="token 1−H/lnK", kind="token",
        needs="letter_dist")
def _token_entropy_conf(s, q, opts: Options = DEFAULT_OPTIONS):
    return token_entropy(s, q)


@metric("token_dangerous_overconfidence_rate", higher_is_better=False, needs_labels=True,
        label="dangerous overconf. (token P)", kind="token", needs="letter_dist")
def _token_dangerous(s, q, opts: Options = DEFAULT_OPTIONS):
    c = token_prob(s, q)
    return None if c is None else sc_metrics.dangerous(c, letter_of(s), q, opts.threshold)


@metric("token_entropy_dangerous_overconfidence_rate", higher_is_better=False, needs_labels=True,
        label="dangerous overconf. (token H)", kind="token", needs="letter_dist")
def _token_entropy_dangerous(s, q, opts: Options = DEFAULT_OPTIONS):
    c = token_entropy(s, q)
    return None if c is None else sc_metrics.dangerous(c, letter_of(s), q, opts.threshold)


def bin_ids(conf: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    return np.minimum(np.floor(np.asarray(conf, float) * n_bins).astype(int), n_bins - 1).clip(0)


def reliability(conf, correct, n_bins: int = N_BINS) -> list[dict]:
    """Per bin: edges, n, mean confidence, accuracy (None for an empty bin)."""
    conf, correct = np.asarray(conf, float), np.asarray(correct, float)
    ids = bin_ids(conf, n_bins)
    out = []
    for b in range(n_bins):
        m = ids == b
        n = int(m.sum())
        out.append({"lo": b / n_bins, "hi": (b + 1) / n_bins, "n": n,
                    "confidence": float(conf[m].mean()) if n else None,
                    "accuracy": float(correct[m].mean()) if n else None})
    return out


def ece_mce(conf, correct, n_bins: int = N_BINS) -> tuple[float, float]:
    conf, correct = np.asarray(conf, float), np.asarray(correct, float)
    if conf.size == 0:
        return float("nan"), float("nan")
    gaps = [(r["n"], abs(r["accuracy"] - r["confidence"])) for r in reliability(conf, correct, n_bins) if r["n"]]
    n = conf.size
    return sum(k * g for k, g in gaps) / n, max(g for _, g in gaps)


def ece_mce_bootstrap(conf, correct, idx: np.ndarray, n_bins: int = N_BINS) -> tuple[stats.Estimate, stats.Estimate]:
    """ECE and MCE with percentile CIs over the shared resample matrix ``idx`` (B × n)."""
    conf, correct = np.asarray(conf, float), np.asarray(correct, float)
    e_obs, m_obs = ece_mce(conf, correct, n_bins)
    B, n = idx.shape
    if n == 0:
        nan = stats.Estimate(float("nan"), float("nan"), float("nan"), float("nan"), 0)
        return nan, nan
    ids = bin_ids(conf, n_bins)[idx] + n_bins * np.arange(B)[:, None]
    flat = ids.ravel()
    cnt = np.bincount(flat, minlength=B * n_bins).reshape(B, n_bins)
    sc = np.bincount(flat, weights=conf[idx].ravel(), minlength=B * n_bins).reshape(B, n_bins)
    sa = np.bincount(flat, weights=correct[idx].ravel(), minlength=B * n_bins).reshape(B, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(cnt > 0, np.abs(sa - sc) / np.maximum(cnt, 1), 0.0)
    eces = (gap * cnt).sum(axis=1) / n
    mces = gap.max(axis=1)

    def est(obs, reps):
        lo, hi = np.percentile(reps, [2.5, 97.5])
        return stats.Estimate(float(obs), float(reps.std(ddof=1)) if B > 1 else 0.0, float(lo), float(hi), n)

    return est(e_obs, eces), est(m_obs, mces)


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
        corr.append(a == q.answer)
    return conf, corr, ans


def calibrate(samples_q: list[dict], questions: list[Question], idx: np.ndarray,
              opts: Options = DEFAULT_OPTIONS) -> dict[str, dict]:
    """Per confidence source: mean confidence, ECE, MCE, reliability bins, dangerous overconfidence."""
    out: dict[str, dict] = {}
    for name, src in SOURCES.items():
        vals = source_values(name, samples_q, questions)
        if vals is None:
            continue
        conf, corr, ans = vals
        ece, mce = ece_mce_bootstrap(conf, corr, idx)
        cell = {"label": src.label, "mean_confidence": stats.bootstrap(conf, idx).as_dict(),
                "ece": ece.as_dict(), "mce": mce.as_dict(), "bins": reliability(conf, corr)}
        dang = [sc_metrics.dangerous(c, a, q, opts.threshold) for c, a, q in zip(conf, ans, questions)]
        cell["dangerous_overconfidence"] = (None if any(d is None for d in dang)
                                            else stats.bootstrap(dang, idx).as_dict())
        out[name] = cell
    return out
