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
from ragsafe.graphs.base import GraphSpec
from ragsafe.plugins import load_plugins
from ragsafe.retrievers.registry import DEFAULT as DEFAULT_RETRIEVER
from ragsafe.retrievers.registry import check_retriever, describe_choice, parse_retriever


def required_fields(spec: GraphSpec, params: Any) -> dict[str, str]:
    """Question field -> the graph that reads it, for a variant (a wrapper adds its inner graph's)."""
    out = {f: spec.name for f in spec.needs_fields}
    inner = spec.inner(params)
    if inner:
        ispec, overrides = inner
        out.update({f: g for f, g in required_fields(ispec, ispec.make_params(overrides)).items() if f not in out})
    return out


def condition_problems(bench: Benchmark, questions: list[Question], variants: list[Variant]) -> list[Problem]:
    """Questions that lack a field a chosen graph reads (its spec's ``needs_fields``)."""
    out = []
    for v in variants:
        for field, name in required_fields(v.spec, v.params).items():
            for q in questions:
                if not getattr(q, field, None):
                    out.append(q.problem(field, f"graph {name} needs {field}, which this question lacks"))
    return out


def docs_hash(docs) -> str:
    h = hashlib.sha256()
    for d in sorted(docs, key=lambda d: d.metadata.get("doc_id", "")):
        h.update(d.metadata.get("doc_id", "").encode() + b"\x00" + d.page_content.encode() + b"\x01")
    return h.hexdigest()


def plan(cfg: RunConfig) -> dict[str, Any]:
    """Resolve a config without touching any model: variants, questions, problems, hash."""
    load_plugins(cfg.graph_modules, flag="--graph-module")
    load_plugins(cfg.plugins)
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
        from ragsafe.retrievers.embedders import locate

        # a bad embedder name fails here, before any server starts
        for name in {v.embedder for v in variants if v.embedder} | ({cfg.embedder.name} if not cfg.embedder.remote
                                                                      else set()):
            locate(name)
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
    chunk = ChunkParams(size=cfg.chunk_size, overlap=cfg.chunk_overlap, tokenizer=cfg.chunk_tokenizer)
    corpus = corpus_identity(cfg, corpus_hash, chunk, poison) if needs_retriever else None
    if needs_retriever and parse_retriever(cfg.retriever) != (DEFAULT_RETRIEVER, {}):
        check_retriever(cfg.retriever)  # an unknown name or bad param fails here, before any index is built
        corpus["retriever"] = describe_choice(cfg.retriever)  # the default keeps the hashes of older runs
    identity = {
        "variants": {v.label: variant_identity(v) for v in variants},
        "benchmark": {"spec": cfg.benchmark, "hash": bench.content_hash()},
        "question_ids": [q.id for q in questions],
        "corpus": corpus,
        "endpoint": {k: v for k, v in dataclasses.asdict(cfg.endpoint).items() if k not in ("timeout", "max_retries")}
        | cfg.answer.identity(),
    }
    return {"variants": variants, "bench": bench, "questions": questions, "skipped": skipped, "problems": problems,
            "needs_retriever": needs_retriever, "docs": docs, "poison": poison, "chunk": chunk, "identity": identity,
            "config_hash": stable_hash(identity)}


def variant_identity(v: Variant) -> dict[str, Any]:
    out = {"graph": v.spec.name, "params": dataclasses.asdict(v.params)}
    if v.embedder:
        out["embedder"] = v.embedder
    return out


def corpus_identity(cfg: RunConfig, corpus_hash: str | None, chunk: ChunkParams,
                    poison: dict | None = None) -> dict[str, Any]:
    """What the index depends on. Defaults are left out, so configs from before embedders and chunk
    tokenizers were choices hash as they did."""
    chunk_id = dataclasses.asdict(chunk)
    if chunk.tokenizer == "embedder":
        chunk_id.pop("tokenizer")
    out = {"spec": cfg.corpus, "hash": corpus_hash, "chunk": chunk_id, **({"poison": poison} if poison else {})}
    emb = cfg.embedder
    if not emb.is_default():
        q, p = emb.resolved_prefixes()
        out["embedder"] = {"name": emb.name if not emb.remote else None, "model": emb.model,
                           "normalize": emb.normalize, "max_seq_length": emb.max_seq_length,
                           "query_prefix": q, "passage_prefix": p}
    return out


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
