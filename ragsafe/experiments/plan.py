"""Plan a run without touching a model: variants, questions, problems, identity and config hash."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from ragsafe.config import ConfigError, stable_hash
from ragsafe.corpora.benchmark import load_benchmark
from ragsafe.corpora.chunking import ChunkParams
from ragsafe.corpora.schema import Benchmark, Problem, Question
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.endpoints import Endpoint
from ragsafe.experiments.shards import Shard, run_dir_for
from ragsafe.experiments.store import RunStore
from ragsafe.experiments.variants import Variant, resolve_variants
from ragsafe.graphs import load_graph_module

EVIDENCE_NEEDS = {"clean_evidence": "evidence_clean", "conflict_evidence": "evidence_conflict",
                  "precomputed_report": "agentic_report", "mixed_evidence": ("evidence_clean", "evidence_conflict"),
                  "rag_plus_clean": "evidence_clean"}


def condition_problems(bench: Benchmark, questions: list[Question], variants: list[Variant]) -> list[Problem]:
    """Questions that lack the evidence a chosen graph needs."""
    out = []
    for v in variants:
        fields = EVIDENCE_NEEDS.get(v.spec.name) or ()
        for field, q in ((f, q) for f in ((fields,) if isinstance(fields, str) else fields) for q in questions):
            if not getattr(q, field):
                out.append(q.problem(field, f"graph {v.spec.name} needs {field}, which this question lacks"))
    return out


def docs_hash(docs) -> str:
    h = hashlib.sha256()
    for d in sorted(docs, key=lambda d: d.metadata.get("doc_id", "")):
        h.update(d.metadata.get("doc_id", "").encode() + b"\x00" + d.page_content.encode() + b"\x01")
    return h.hexdigest()


def plan(cfg: RunConfig) -> dict[str, Any]:
    """Resolve a config without touching any model: variants, questions, problems, hash."""
    for mod in cfg.graph_modules:
        load_graph_module(mod)
    variants = resolve_variants(cfg.graphs, cfg.sets, cfg.grids)
    bench = load_benchmark(cfg.benchmark)
    problems = list(bench.problems)
    questions = bench.select(split=cfg.split)
    problems += condition_problems(bench, questions, variants)
    errors = [p for p in problems if p.severity == "error"]
    skipped = sorted({p.record for p in errors if p.record})
    if errors and not cfg.skip_invalid:
        shown = "\n  ".join(str(p) for p in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise ConfigError(f"benchmark {cfg.benchmark!r} has {len(errors)} problem(s); fix them or pass "
                          f"--skip-invalid to run without those records:\n  {shown}{more}")
    questions = bench.select(split=cfg.split, limit=cfg.limit, skip=set(skipped))
    if not questions:
        raise ConfigError(f"no questions selected from {cfg.benchmark!r} (split={cfg.split}, limit={cfg.limit})")
    needs_retriever = any(retrieves(v) for v in variants)
    corpus_hash = None
    docs = None
    poison = None
    if needs_retriever:
        from ragsafe.corpora.documents import load_corpus

        docs = load_corpus(cfg.corpus)
        if cfg.poison:
            from ragsafe.corpora.poison import docs_digest, poison_documents

            pdocs = poison_documents(cfg.poison, bench.questions)
            poison = {"spec": cfg.poison, "hash": docs_digest(pdocs), "documents": len(pdocs)}
            docs = docs + pdocs
        corpus_hash = docs_hash(docs)
    elif cfg.poison:
        raise ConfigError(f"--poison {cfg.poison}: no chosen graph retrieves, so the poisoned corpus would never be "
                          f"read; add a retrieval graph (e.g. --graph standard_rag)")
    chunk = ChunkParams(size=cfg.chunk_size, overlap=cfg.chunk_overlap)
    identity = {
        "variants": {v.label: {"graph": v.spec.name, "params": dataclasses.asdict(v.params)} for v in variants},
        "benchmark": {"spec": cfg.benchmark, "hash": bench.content_hash()},
        "question_ids": [q.id for q in questions],
        "corpus": {"spec": cfg.corpus, "hash": corpus_hash, "chunk": dataclasses.asdict(chunk),
                   **({"poison": poison} if poison else {})} if needs_retriever else None,
        "endpoint": {k: v for k, v in dataclasses.asdict(cfg.endpoint).items() if k not in ("timeout", "max_retries")}
        | cfg.answer.identity(),
    }
    return {"variants": variants, "bench": bench, "questions": questions, "skipped": skipped, "problems": problems,
            "needs_retriever": needs_retriever, "docs": docs, "poison": poison, "chunk": chunk, "identity": identity,
            "config_hash": stable_hash(identity)}


def retrieves(v: Variant) -> bool:
    fn = getattr(v.spec, "retrieves", None)
    return bool(fn(v.params)) if fn else bool(v.spec.needs_retriever)


@dataclasses.dataclass
class RunJob:
    """One run folder to fill: its config, its resolved plan, the endpoint and the shard."""

    cfg: RunConfig
    plan: dict[str, Any]
    endpoint: Endpoint
    shard: Shard | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """More facts for run.json (e.g. the sweep this run belongs to)."""

    @property
    def run_dir(self) -> Path:
        return run_dir_for(self.cfg.out, self.plan["config_hash"], self.shard)

    @property
    def questions(self) -> list[Question]:
        qs = self.plan["questions"]
        return self.shard.take(qs) if self.shard else qs

    def pending(self, retry_errors: bool = False) -> dict[str, list[Question]]:
        """Questions still to answer per variant label, read from the run folder (writes nothing)."""
        store = RunStore(self.run_dir)
        done = store.done_keys(include_errors=not retry_errors) if store.exists() else set()
        return {v.label: [q for q in self.questions if (v.label, q.id) not in done] for v in self.plan["variants"]}


def prepare(cfg: RunConfig, *, endpoint: Endpoint | None = None, shard: Shard | None = None,
            extra: dict[str, Any] | None = None) -> RunJob:
    """Plan ``cfg`` (no model touched) into a job for :func:`execute_runs`."""
    ep = endpoint or Endpoint(name=cfg.endpoint.model, config=cfg.endpoint, policy=cfg.answer,
                             workers=max(1, cfg.concurrency))
    return RunJob(cfg=cfg, plan=plan(cfg), endpoint=ep, shard=shard, extra=dict(extra or {}))
