"""Run folders as analysis input: a run's questions and records, and *arms* (graph variant × model).

A run holds one model; several runs (one per model) combine into one analysis over the questions
they share, with arm keys ``variant@model`` when the models differ. This is the eval layer's only
door to storage: ``ragsafe.evals`` reads runs, writes summaries and creates imported run folders
through the functions here, and rebuilds chunk texts from a run's corpus through
:func:`corpus_chunk_texts` (tokenizer and corpus files are read here, never in ``evals/``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Callable, Iterable

from ragsafe.config import ConfigError
from ragsafe.corpora.benchmark import load_benchmark
from ragsafe.corpora.schema import Question
from ragsafe.defaults import CHUNK_OVERLAP, CHUNK_SIZE
from ragsafe.evals.attribution import ChunkText
from ragsafe.experiments.store import RunStore
from ragsafe.graphs.base import graphs_with_role, role_of
from ragsafe.params import variant_name
from ragsafe.records import RunManifest, SampleLike, SampleRecord, as_manifest, as_sample, sample_view

__all__ = ["Arm", "LoadedRun", "reference", "role_of"]  # role_of: "floor", "ceiling" or None, from the graph's spec


def reference(role: str) -> str:
    """The graph(s) with this role (e.g. ``closed_book`` for "floor"), for labels and messages."""
    return " or ".join(graphs_with_role(role)) or f"the {role}"


@dataclasses.dataclass
class Arm:
    """One graph variant of one model: its records by question id (dicts given here are read as
    :class:`~ragsafe.records.SampleRecord`)."""

    key: str
    variant: str
    graph: str
    model: str | None
    records: dict[str, SampleRecord]
    chunk_text: ChunkText | None = None
    poisoned: bool = False
    """The run retrieved from a poisoned corpus (``--poison``); in a multi-run analysis its key ends in
    ``+poison``, so it pairs with the same graph on the clean corpus."""

    def __post_init__(self) -> None:
        self.records = {qid: sample_view(r) for qid, r in self.records.items()}

    @property
    def role(self) -> str | None:
        """"floor", "ceiling" or None: read from the graph's spec (a graph not registered has none)."""
        return role_of(self.graph)


def graph_of(variant: str, records: Iterable[SampleLike] = ()) -> str:
    for r in records:
        g = as_sample(r).graph
        if g:
            return g
    return variant_name(variant)


@dataclasses.dataclass
class LoadedRun:
    path: Path
    run: RunManifest
    questions: list[Question]
    samples: list[SampleRecord]

    @property
    def model(self) -> str:
        return self.run.endpoint.model or self.path.name

    @property
    def variants(self) -> list[str]:
        """Variant labels, floor and ceiling first, then by label (run.json's key order is not kept)."""
        vs = self.run.variants
        rank = {"floor": 0, "ceiling": 1}
        return sorted(vs, key=lambda v: (rank.get(role_of(vs[v].graph or variant_name(v)), 2), v))


def load_run(run_dir: str | Path, letters: str = "strict") -> LoadedRun:
    """A run folder's record, its benchmark questions (in the run's order) and its samples.

    ``letters="judge"`` puts the LLM judge's letters (``judge.jsonl``, :mod:`ragsafe.experiments.rejudge`)
    in place of the strict parser's; the stored records are not changed.
    """
    store = RunStore(run_dir)
    run = store.read_run()
    spec = run.benchmark["spec"]
    if not Path(spec).is_absolute() and (Path(run_dir) / spec).exists():
        spec = str(Path(run_dir) / spec)  # a benchmark file kept inside the run folder (imports)
    bench = load_benchmark(spec)
    by_id = {q.id: q for q in bench.questions}
    missing = [i for i in run.question_ids if i not in by_id]
    if missing:
        raise ConfigError(f"{run_dir}: questions {missing[:5]} are no longer in benchmark {spec!r}")
    samples = store.samples()
    if letters == "judge":
        from ragsafe.experiments.rejudge import apply_judge, judge_path, read_judge

        if not judge_path(run_dir).exists():
            raise ConfigError(f"{run_dir} has no judge letters ({judge_path(run_dir).name}); run "
                              f"`ragsafe rejudge {run_dir} --judge-model NAME` first, or use --letters strict")
        samples = apply_judge(samples, read_judge(run_dir), run_dir)
    elif letters != "strict":
        raise ConfigError(f"--letters {letters!r}: choose strict or judge")
    return LoadedRun(Path(run_dir), run, [by_id[i] for i in run.question_ids], samples)


def _strict(s: SampleRecord) -> SampleRecord:
    """The record as the strict parser left it (a judge-scored copy keeps the strict letter aside)."""
    update: dict = {}
    if "letter_strict" in s.model_fields_set:
        update["letter"] = s.letter_strict
    if isinstance(s.sc, dict) and "ballots_strict" in s.sc:
        update["sc"] = {**s.sc, "ballots": s.sc["ballots_strict"]}
    return s.model_copy(update=update) if update else s


def judge_agreement(run_dir: str | Path, samples: list[SampleLike], *, B: int = 1000, seed: int = 42) -> dict | None:
    """Strict-vs-judge agreement of a run folder that has judge letters (else None)."""
    from ragsafe.evals.agreement import agreement
    from ragsafe.experiments.rejudge import judge_path, read_judge, read_meta

    if not judge_path(run_dir).exists():
        return None
    strict = [_strict(sample_view(s)) for s in samples]
    return {"judge": read_meta(run_dir), "variants": agreement(strict, read_judge(run_dir), B=B, seed=seed)}


def run_arms(lr: LoadedRun, key_fmt: Callable[[str, str], str] = lambda v, m: v,
             chunk_text: ChunkText | None = None) -> list[Arm]:
    recs: dict[str, dict[str, SampleRecord]] = {v: {} for v in lr.variants}
    for s in lr.samples:
        if s.variant in recs:
            recs[s.variant].setdefault(s.question_id, s)
    poisoned = bool(lr.run.corpus and lr.run.corpus.poison)
    return [Arm(key_fmt(v, lr.model), v, lr.run.variants[v].graph or graph_of(v, recs[v].values()),
                lr.model, recs[v], chunk_text, poisoned and any(r.retrieved for r in recs[v].values()))
            for v in lr.variants]


def combine_runs(runs: list[LoadedRun], *, common_questions: bool = False, text: bool = True
                 ) -> tuple[list[Arm], list[Question]]:
    """Arms of several runs on one question set; arm keys are ``variant@model`` when models differ."""
    sets = [{q.id for q in r.questions} for r in runs]
    common = set.intersection(*sets) if sets else set()
    if not common_questions and any(s != sets[0] for s in sets):
        diff = sorted(set.union(*sets) - common)
        raise ConfigError(f"the runs cover different questions (e.g. {diff[:5]}); paired statistics need the "
                          f"same questions: pass --common-questions to use the {len(common)} shared ones")
    qs = [q for q in runs[0].questions if q.id in common]
    multi = len({r.model for r in runs}) > 1
    arms: list[Arm] = []
    seen: set[str] = set()
    for r in runs:
        ct = corpus_chunk_texts(r.run) if text else None
        for a in run_arms(r, (lambda v, m: f"{v}@{m}") if multi else (lambda v, m: v), ct):
            if a.poisoned:
                a.key += "+poison"  # the same graph on the clean corpus keeps the plain key: a pair
            if a.key in seen:
                raise ConfigError(f"graph variant {a.variant!r} of model {a.model!r} appears in two runs; "
                                  f"pass only one of them")
            seen.add(a.key)
            arms.append(a)
    return arms, qs


def write_summary(run_dir: str | Path, summary: dict, *, allow_errors: bool = False) -> None:
    """Store ``summary`` as the run's summary.json, stamped with the samples file's size.

    The stamp is the runner's freshness check: it re-scores when samples.jsonl grew since.
    """
    store = RunStore(run_dir)
    size = store.samples_path.stat().st_size if store.samples_path.exists() else 0
    summary["scored_with"] = {"allow_errors": allow_errors, "samples_bytes": size}
    store.write_summary(summary)


def create_run(run_dir: str | Path, run: dict, benchmark: list[dict], samples: list[dict]) -> None:
    """A new run folder from records made elsewhere (an import): benchmark.jsonl, run.json, samples.

    Raises:
        ConfigError: the folder already holds samples (an import never mixes into a run).
    """
    store = RunStore(run_dir)
    if store.samples_path.exists():
        raise ConfigError(f"{run_dir} already holds samples; import into a new folder")
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(run_dir) / "benchmark.jsonl", "w", encoding="utf-8") as f:
        for b in benchmark:
            f.write(json.dumps(b, ensure_ascii=False, default=list) + "\n")
    store.write_run(run)
    for rec in samples:
        store.append(rec)


@functools.lru_cache(maxsize=4)
def _corpus_chunks(spec: str, size: int, overlap: int, prepend_title: bool) -> dict[str, str]:
    from transformers import AutoTokenizer

    from ragsafe.corpora.chunking import ChunkParams, chunk_documents
    from ragsafe.corpora.documents import load_corpus
    from ragsafe.retrievers.embedders import default_model_path

    tok = AutoTokenizer.from_pretrained(str(default_model_path()), local_files_only=True)
    tok.model_max_length = 10 ** 9  # counting only; silence the long-sequence warning
    chunks = chunk_documents(load_corpus(spec), tok, ChunkParams(size=size, overlap=overlap,
                                                                 prepend_title=prepend_title))
    return {c.metadata["chunk_id"]: c.page_content for c in chunks}


def corpus_chunk_texts(run: RunManifest | dict) -> ChunkText | None:
    """A chunk-id → text resolver rebuilt offline from a run's corpus (no embedding, no LLM).

    Only for runs indexed with the default embedder's tokenizer; None when the run retrieved nothing
    or its corpus cannot be rebuilt here (the retrieved-text test is then skipped and counted).
    """
    from ragsafe.retrievers.embedders import DEFAULT_EMBEDDER

    run = as_manifest(run)
    corpus = run.corpus
    if corpus is None or not corpus.spec:
        return None
    index = corpus.index or {}
    if index.get("embedder") not in (None, DEFAULT_EMBEDDER):
        return None
    chunk = (run.identity.get("corpus") or {}).get("chunk") or {}
    if chunk.get("tokenizer", "embedder") != "embedder":
        return None  # counted with another tokenizer: not rebuilt here
    size = chunk.get("size", run.config.get("chunk_size", CHUNK_SIZE))
    overlap = chunk.get("overlap", run.config.get("chunk_overlap", CHUNK_OVERLAP))
    prepend = chunk.get("prepend_title", True)
    cache: dict[str, dict[str, str] | None] = {}

    def lookup(chunk_id: str) -> str | None:
        if "m" not in cache:
            try:
                cache["m"] = _corpus_chunks(corpus.spec, size, overlap, prepend)
            except Exception:  # noqa: BLE001  (a moved corpus or missing tokenizer: text unavailable)
                cache["m"] = None
        m = cache["m"]
        return None if m is None else m.get(chunk_id)

    return lookup
