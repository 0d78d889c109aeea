"""Strict parser vs LLM judge: how often the two read the same letter out of the same raw output.

Pure functions over stored records (the strict letters in ``samples.jsonl``, the judge's in
``judge.jsonl``). Categories are the option letters plus null. Cohen's kappa corrects the raw
agreement for the agreement the two marginal distributions give by chance; its 95% interval is a
percentile bootstrap over questions (the same index matrix convention as every other estimate).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ragsafe.evals import stats
from ragsafe.records import SampleLike, sample_view

NULL = "null"


def _cat(letter: str | None) -> str:
    return NULL if letter is None else letter


def cohen_kappa(a: list[str | None], b: list[str | None]) -> float | None:
    """Cohen's kappa of two raters' categories (None is its own category); None when undefined (n=0).

    Example:
        >>> cohen_kappa(["A", "B", None, "A"], ["A", "B", None, "A"])
        1.0
        >>> round(cohen_kappa(["A", "A", "B", "B"], ["A", "B", "A", "B"]), 3)
        0.0
    """
    n = len(a)
    if n == 0:
        return None
    ca, cb = Counter(map(_cat, a)), Counter(map(_cat, b))
    po = sum(_cat(x) == _cat(y) for x, y in zip(a, b)) / n
    pe = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else 0.0  # one category for both raters: agreement is total or nil
    return (po - pe) / (1 - pe)


def counts(strict: list[str | None], judge: list[str | None]) -> dict[str, int]:
    """Both the same letter; both null; strict letter / judge null; strict null / judge letter; two letters."""
    out = {"n": len(strict), "same_letter": 0, "both_null": 0, "strict_only": 0, "judge_only": 0, "different": 0}
    for s, j in zip(strict, judge):
        if s is None and j is None:
            out["both_null"] += 1
        elif s is None:
            out["judge_only"] += 1
        elif j is None:
            out["strict_only"] += 1
        elif s == j:
            out["same_letter"] += 1
        else:
            out["different"] += 1
    return out


def agreement(strict_recs: list[SampleLike], judged: dict[tuple[str, str], dict], *, B: int = 1000,
              seed: int = 42) -> dict[str, Any]:
    """Per variant: counts, raw agreement, kappa with its bootstrap CI, and the disagreeing questions.

    Args:
        strict_recs: sample records as stored (strict letters; error records are skipped).
        judged: judge lines by (variant, question id) (see :mod:`ragsafe.experiments.rejudge`).
        B, seed: bootstrap resamples over questions for the kappa interval.
    """
    out: dict[str, Any] = {}
    by_variant: dict[str, list[tuple[dict, dict]]] = {}
    for r in sorted(map(sample_view, strict_recs), key=lambda r: r.key):
        j = judged.get(r.key)
        if j is not None and not r.error:
            by_variant.setdefault(r.variant, []).append((r, j))
    for v, pairs in by_variant.items():
        s = [r.letter for r, _ in pairs]
        g = [j.get("letter") for _, j in pairs]
        cell: dict[str, Any] = {"greedy": _summary(s, g, B, seed)}
        sc_s = [b for r, j in pairs if j.get("sc_ballots") is not None for b in (r.sc or {}).get("ballots") or []]
        sc_g = [b for r, j in pairs if j.get("sc_ballots") is not None for b in j["sc_ballots"]]
        if sc_s and len(sc_s) == len(sc_g):
            cell["sc_samples"] = _summary(sc_s, sc_g, 0, seed)  # samples of one question are not independent
        cell["disagreements"] = [{"question_id": r.question_id, "strict": r.letter, "judge": j.get("letter"),
                                  "raw_output": r.raw_output, "judge_raw": j.get("judge_raw")}
                                 for r, j in pairs if r.letter != j.get("letter")]
        cell["judge_fallbacks"] = sum(j.get("fallbacks") or 0 for _, j in pairs)
        out[v] = cell
    return out


def _summary(s: list, g: list, B: int, seed: int) -> dict[str, Any]:
    c = counts(s, g)
    n = c["n"]
    out: dict[str, Any] = {**c, "agreement": (c["same_letter"] + c["both_null"]) / n if n else None,
                           "kappa": cohen_kappa(s, g)}
    if B and n > 1:
        idx = stats.bootstrap_indices(n, B, seed)
        ks = [cohen_kappa([s[i] for i in row], [g[i] for i in row]) for row in idx]
        ks = np.array([k for k in ks if k is not None], dtype=float)
        if len(ks):
            out["kappa_ci"] = [float(np.percentile(ks, 2.5)), float(np.percentile(ks, 97.5))]
            out["kappa_B"] = B
    return out
