"""Statistics: paired percentile bootstrap, exact McNemar, Benjamini–Hochberg, Wilson, gap closed.

Bootstrap (SAFE_SCALE.md): questions ordered by id as text; one index matrix
``default_rng(seed).integers(0, n, size=(B, n))`` drawn once and reused for every graph and model
of a run, so differences are paired.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from ragsafe.defaults import BOOTSTRAP_B, BOOTSTRAP_SEED


def bootstrap_indices(n: int, B: int = BOOTSTRAP_B, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """The shared resample matrix (B × n) for ``n`` questions in id order."""
    if n <= 0:
        return np.zeros((B, 0), dtype=np.int64)
    return np.random.default_rng(seed).integers(0, n, size=(B, n))


@dataclasses.dataclass(frozen=True)
class Estimate:
    mean: float
    sd: float
    lo: float
    hi: float
    n: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def bootstrap(values: Sequence[float], idx: np.ndarray) -> Estimate:
    """Observed mean, sd of the bootstrap means, and the 2.5/97.5 percentiles."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    if idx.shape[1] != v.size:
        raise ValueError(f"bootstrap index matrix is for n={idx.shape[1]}, got {v.size} values")
    means = v[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return Estimate(float(v.mean()), float(means.std(ddof=1)), float(lo), float(hi), int(v.size))


def paired_difference(a: Sequence[float], b: Sequence[float], idx: np.ndarray) -> Estimate:
    """Bootstrap of mean(a - b) on the same questions and the same resamples."""
    return bootstrap(np.asarray(a, float) - np.asarray(b, float), idx)


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict:
    """Exact two-sided McNemar test on paired correctness.

    Returns the discordant counts ``b01`` (a wrong, b right) and ``b10`` (a right, b wrong) and p.
    """
    if len(a_correct) != len(b_correct):
        raise ValueError("McNemar needs the same questions in both arms")
    b10 = sum(1 for x, y in zip(a_correct, b_correct) if x and not y)
    b01 = sum(1 for x, y in zip(a_correct, b_correct) if y and not x)
    n = b10 + b01
    if n == 0:
        return {"b10": 0, "b01": 0, "p": 1.0}
    k = min(b10, b01)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return {"b10": b10, "b01": b01, "p": min(1.0, 2 * tail)}


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """BH-adjusted q-values, in the input order."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out.tolist()


def wilson_ci(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (centre - half, centre + half)


def gap_closed(graph: Sequence[float], floor: Sequence[float], ceiling: Sequence[float], idx: np.ndarray,
               refs: tuple[str, str] = ("the floor", "the ceiling")) -> dict:
    """(graph − floor) / (ceiling − floor) of per-question means, with a CI on the shared resamples.

    The ratio is bootstrapped directly: for every resample the three means come from the same
    questions. Undefined when the observed denominator is 0 (the ceiling does not beat the floor);
    resamples with a zero denominator are left out of the CI and counted in ``n_undefined``.
    ``refs`` names the floor and the ceiling in the reason.
    """
    g, f, c = (np.asarray(x, float) for x in (graph, floor, ceiling))
    den = c.mean() - f.mean() if g.size else 0.0
    if g.size == 0 or den == 0:
        return {"defined": False, "reason": f"undefined: {refs[1]} equals {refs[0]} on this metric "
                                            "(the denominator is 0)", "n": int(g.size)}
    obs = (g.mean() - f.mean()) / den
    gm, fm, cm = g[idx].mean(axis=1), f[idx].mean(axis=1), c[idx].mean(axis=1)
    d = cm - fm
    ok = d != 0
    reps = (gm[ok] - fm[ok]) / d[ok]
    out = {"defined": True, "mean": float(obs), "n": int(g.size), "n_undefined": int((~ok).sum())}
    if reps.size:
        lo, hi = np.percentile(reps, [2.5, 97.5])
        out.update(sd=float(reps.std(ddof=1)) if reps.size > 1 else 0.0, lo=float(lo), hi=float(hi))
    else:
        out.update(sd=float("nan"), lo=float("nan"), hi=float("nan"))
    return out
