"""Retrieval ceiling of a benchmark over a corpus: index it in Chroma, then score the rankings
(the pure scoring is :mod:`ragsafe.evals.metrics.retrieval`)."""

from __future__ import annotations

from typing import Sequence

from ragsafe.evals.metrics.retrieval import DEFAULT_KS, RetrievalReport, evaluate


def run(benchmark: str = "demo", corpus: str = "demo", *, ks: Sequence[int] = DEFAULT_KS,
        distractors: Sequence[str] = (), split: str | None = None, chroma_path=None, chroma_url: str | None = None,
        chunk=None, depth: int | None = None, embedder=None) -> RetrievalReport:
    """Index ``corpus`` (plus any distractor corpora) in Chroma and evaluate ``benchmark`` on it.

    Args:
        benchmark: registered benchmark name or a benchmark spec (see ``ragsafe.corpora.loaders``).
        corpus: registered corpus, folder or ``.jsonl`` dump.
        ks: cut-offs in chunks.
        distractors: extra corpora mixed into the same collection (e.g. ``["radlabels"]``).
        split: only questions of this split.
        chroma_path: PersistentClient folder (default ``$RAGSAFE_HOME/chroma``).
        chroma_url: a ``chroma run`` server instead.
        chunk: :class:`~ragsafe.corpora.chunking.ChunkParams` (default: 300 tokens, 50 overlap).
        depth: chunks retrieved per question (default: the largest k).
        embedder: an :class:`~ragsafe.retrievers.embedders.EmbedderConfig` (default: the packaged MiniLM).

    Example:
        >>> rep = run("demo", "demo", distractors=["radlabels"])   # doctest: +SKIP
        >>> print(table(rep))                                        # doctest: +SKIP
    """
    from ragsafe.corpora.benchmark import load_benchmark
    from ragsafe.corpora.chunking import ChunkParams
    from ragsafe.corpora.documents import load_corpus
    from ragsafe.retrievers.chroma import build_index

    bench = load_benchmark(benchmark)
    docs = load_corpus(corpus)
    label = corpus
    for extra in distractors:
        more = load_corpus(extra)
        clash = {d.metadata["doc_id"] for d in docs} & {d.metadata["doc_id"] for d in more}
        if clash:
            raise ValueError(f"distractor corpus {extra!r} reuses document ids of {corpus!r}: {sorted(clash)[:5]}")
        docs = docs + more
        label = f"{label}+{extra}"
    store = build_index(label, chroma_path=chroma_path, chroma_url=chroma_url, chunk=chunk or ChunkParams(),
                        docs=docs, embedder=embedder, progress=True)
    report = evaluate(bench.select(split=split), store.query, ks=ks, depth=depth,
                      corpus_ids={d.metadata["doc_id"] for d in docs})
    report.info = {"benchmark": benchmark, "corpus": corpus, "distractors": list(distractors), "split": split,
                   "documents": len(docs), "chunks": store.count(), "collection": store.name,
                   "embedder": store.embedder.name, "embedder_identity": getattr(store, "identity", None),
                   "chunking": getattr(store, "chunking", None)}
    return report
