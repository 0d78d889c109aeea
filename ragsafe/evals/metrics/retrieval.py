"""Retrieval ceiling: how often the question text alone retrieves the gold articles.

A standard-RAG answer can only be as good as what retrieval hands the model, so before comparing
graphs it helps to know how often the gold articles are in the top-k chunks at all. The query is
the question text (the paper's standard RAG); ``k`` counts chunks, as in the paper's top-k
context. Matching is at document level: a gold document counts as found at the rank of the first
retrieved chunk that belongs to it, and later chunks of the same document add nothing.

Metrics per question (then means, overall and per subspecialty), each registered ``over="ranking"``
in the metric registry (group ``retrieval``):
    * ``recall@k``: fraction of the question's gold documents found in the top-k chunks.
    * ``hit@k``: 1 if at least one gold document is in the top-k chunks.
    * ``mrr``: 1 / rank of the first chunk of any gold document (0 if none within the depth).
    * ``ndcg@k``: binary-gain nDCG with the document-level de-duplication above; the ideal ranking
      puts one chunk of each gold document first.
The table shows a ``headline`` metric at every k, the others at the largest k, and ``hit`` (not
``compare``) only when asked for.

Example:
    >>> ranked = ["a", "b", "a", "c"]          # doc id of each retrieved chunk, best first
    >>> recall_at_k(ranked, {"a", "c"}, 3)
    0.5
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import defaultdict
from typing import Callable, Iterable, Sequence

from ragsafe.evals.metrics.registry import metric, select

DEFAULT_KS = (1, 5, 10)


def _first_ranks(ranked: Sequence[str], gold: set[str], k: int | None = None) -> dict[str, int]:
    """1-based rank of the first chunk of each gold document within the top ``k`` chunks."""
    out: dict[str, int] = {}
    for i, doc_id in enumerate(ranked[:k] if k else ranked, 1):
        if doc_id in gold and doc_id not in out:
            out[doc_id] = i
    return out


@metric("recall", higher_is_better=True, label="recall", over="ranking", group="retrieval", unit="", at_k=True,
        headline=True, compare=True)
def _recall(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    return recall_at_k(ranked, gold, k)


@metric("hit", higher_is_better=True, label="hit", over="ranking", group="retrieval", unit="", at_k=True)
def _hit(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    return hit_at_k(ranked, gold, k)


@metric("mrr", higher_is_better=True, label="MRR", over="ranking", group="retrieval", unit="", compare=True)
def _mrr(ranked: Sequence[str], gold: Iterable[str], k: int | None = None) -> float:
    return reciprocal_rank(ranked, gold)


@metric("ndcg", higher_is_better=True, label="nDCG", over="ranking", group="retrieval", unit="", at_k=True,
        compare=True)
def _ndcg(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    return ndcg_at_k(ranked, gold, k)


def recall_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Fraction of ``gold`` documents with at least one chunk in the top ``k``.

    Args:
        ranked: document id of each retrieved chunk, best first.
        gold: the question's gold document ids (must not be empty).
        k: chunks considered.
    """
    g = set(gold)
    if not g:
        raise ValueError("recall needs at least one gold document")
    return len(_first_ranks(ranked, g, k)) / len(g)


def hit_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """1.0 when any gold document has a chunk in the top ``k``, else 0.0."""
    return float(bool(_first_ranks(ranked, set(gold), k)))


def reciprocal_rank(ranked: Sequence[str], gold: Iterable[str]) -> float:
    """1 / rank of the first chunk of any gold document; 0.0 when none was retrieved."""
    ranks = _first_ranks(ranked, set(gold))
    return 1.0 / min(ranks.values()) if ranks else 0.0


def ndcg_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Binary-gain nDCG@k where only the first chunk of each gold document earns gain."""
    g = set(gold)
    if not g:
        raise ValueError("nDCG needs at least one gold document")
    dcg = sum(1.0 / math.log2(r + 1) for r in _first_ranks(ranked, g, k).values())
    idcg = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(g), k) + 1))
    return dcg / idcg


def score_ranking(ranked: Sequence[str], gold: Iterable[str], ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Every ranking metric of one question (keys ``recall@k``, ``hit@k``, ``mrr``, ``ndcg@k``)."""
    gold = tuple(gold)
    out: dict[str, float] = {}
    for m in select(over="ranking"):
        for k in (ks if m.at_k else (None,)):
            out[m.name if k is None else f"{m.name}@{k}"] = m.fn(ranked, gold, k)
    return out


@dataclasses.dataclass
class RetrievalReport:
    """Per-question rows and their means.

    Attributes:
        rows: one dict per question: ``id``, ``subspecialty``, ``gold``, ``found`` (gold ids within
            the depth, with their ranks) and the metric values.
        overall: metric means over all scored questions (plus ``n``).
        by_group: the same per subspecialty.
        skipped: ids of questions without ``gold_doc_ids`` (not scored, listed rather than hidden).
        missing_gold: gold ids that are not in the corpus at all, per question id.
        depth: chunks retrieved per question (MRR looks this deep).
        info: free-form facts for the record (corpus, collection, chunk count, ...).
    """

    rows: list[dict]
    overall: dict[str, float]
    by_group: dict[str, dict[str, float]]
    skipped: list[str]
    missing_gold: dict[str, list[str]]
    depth: int
    ks: tuple[int, ...]
    info: dict = dataclasses.field(default_factory=dict)


def _means(rows: list[dict], keys: list[str]) -> dict[str, float]:
    out: dict[str, float] = {"n": float(len(rows))}
    for key in keys:
        out[key] = statistics.fmean(r[key] for r in rows) if rows else float("nan")
    return out


def metric_keys(ks: Sequence[int]) -> list[str]:
    """Every ranking metric's key at every cut-off, in registration order."""
    return [f"{m.name}@{k}" if m.at_k else m.name for m in select(over="ranking") for k in (ks if m.at_k else ks[:1])]


def table_columns(ks: Sequence[int], *, compared_only: bool = True) -> list[str]:
    """Keys a retrieval table shows: headline metrics at every k, the others at the largest k.

    Args:
        ks: the report's cut-offs.
        compared_only: only the ``compare`` metrics (recall, MRR, nDCG); False adds hit.
    """
    out = []
    for m in select(over="ranking"):
        if compared_only and not m.compare:
            continue
        if not m.at_k:
            out.append(m.name)
        else:
            out += [f"{m.name}@{k}" for k in (ks if m.headline else ks[-1:])]
    return out


def evaluate(questions, search: Callable[[str, int], list], *, ks: Sequence[int] = DEFAULT_KS,
             depth: int | None = None, corpus_ids: set[str] | None = None) -> RetrievalReport:
    """Query ``search`` with each question's text and score the gold documents.

    Args:
        questions: :class:`~ragsafe.corpora.benchmark.Question` objects (need ``gold_doc_ids``).
        search: ``(query, n) -> chunks`` best first; each chunk's ``metadata['doc_id']`` names
            its document (e.g. ``ChromaStore.query``).
        ks: cut-offs, in chunks.
        depth: chunks retrieved per question (default: the largest ``k``).
        corpus_ids: document ids of the corpus; gold ids outside it are reported in
            ``missing_gold`` (they can never be found, which would silently cap recall).

    Returns:
        A :class:`RetrievalReport`.
    """
    ks = tuple(sorted(set(ks)))
    if not ks or ks[0] < 1:
        raise ValueError(f"k values must be >= 1, got {ks}")
    depth = max(depth or ks[-1], ks[-1])
    keys = metric_keys(ks)
    rows, skipped, missing = [], [], {}
    for q in questions:
        if not q.gold_doc_ids:
            skipped.append(q.id)
            continue
        if corpus_ids is not None:
            gone = [g for g in q.gold_doc_ids if g not in corpus_ids]
            if gone:
                missing[q.id] = gone
        ranked = [c.metadata.get("doc_id", "") for c in search(q.question, depth)]
        row = {"id": q.id, "subspecialty": q.subspecialty or "(none)", "gold": list(q.gold_doc_ids),
               "found": _first_ranks(ranked, set(q.gold_doc_ids)), "top_doc": ranked[0] if ranked else None}
        row.update(score_ranking(ranked, q.gold_doc_ids, ks))
        rows.append(row)
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["subspecialty"]].append(r)
    return RetrievalReport(rows=rows, overall=_means(rows, keys),
                           by_group={g: _means(rs, keys) for g, rs in sorted(groups.items())},
                           skipped=skipped, missing_gold=missing, depth=depth, ks=ks)


def table(report: RetrievalReport, *, markdown: bool = False, hits: bool = False) -> str:
    """Overall and per-subspecialty means as a text or Markdown table."""
    cols = table_columns(report.ks, compared_only=not hits)
    head = ["subspecialty", "n"] + cols
    lines = [[name, str(int(m["n"]))] + [f"{m[c]:.3f}" for c in cols]
             for name, m in [("ALL", report.overall), *report.by_group.items()]]
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head)] + [fmt.format(*r) for r in lines])


def compare(base: RetrievalReport, other: RetrievalReport) -> dict[str, float]:
    """``other`` minus ``base`` for every overall metric (negative = the other setting lost)."""
    return {k: other.overall[k] - base.overall[k] for k in base.overall if k != "n"}


