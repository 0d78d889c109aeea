"""Calibration of (confidence, answer correct) pairs: reliability bins, ECE and MCE.

Calibration bins: 10 equal-width bins on [0, 1] (the last one closed), confidence ``c`` in bin
``min(floor(10 c), 9)``. ECE = Σ_b (n_b/n)·|acc_b − conf_b|; MCE = max over non-empty bins of
|acc_b − conf_b|. Both are registered ``over="confidence"`` metrics: :mod:`ragsafe.evals.calibration`
computes them for every confidence source, their CIs on the run's shared bootstrap resamples
(vectorised here: one ``bincount`` over all resamples).
"""

from __future__ import annotations

import numpy as np

from ragsafe.evals import stats
from ragsafe.evals.metrics.registry import metric

N_BINS = 10


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


@metric("ece", higher_is_better=False, label="ECE", over="confidence", group="calibration", unit="",
        bootstrap=lambda conf, correct, idx: ece_mce_bootstrap(conf, correct, idx)[0])
def ece(conf, correct) -> float:
    """Expected calibration error over 10 equal-width bins."""
    return ece_mce(conf, correct)[0]


@metric("mce", higher_is_better=False, label="MCE", over="confidence", group="calibration", unit="",
        bootstrap=lambda conf, correct, idx: ece_mce_bootstrap(conf, correct, idx)[1])
def mce(conf, correct) -> float:
    """Maximum calibration error: the largest gap of a non-empty bin."""
    return ece_mce(conf, correct)[1]
