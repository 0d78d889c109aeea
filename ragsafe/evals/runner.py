"""Run graphs over a benchmark and write a run folder.

One call does it all: validate the benchmark, resolve graph variants and their params, start the
embedded server when the endpoint is ``local``, build the Chroma index when a graph retrieves,
answer every (variant, question) and append each record as it finishes, then score.

The run folder's name is the hash of the resolved config, so running the same command again
resumes the same run: finished records are kept and only missing ones are computed.

:func:`execute_runs` fills many run folders at once (a sweep: :mod:`ragsafe.evals.sweep`) in one
event loop: each endpoint bounds its requests in flight through a shared gate, and the questions
of its cells (run x variant) are interleaved so that no server idles. ``--shard i/N`` takes every
N-th question; shard folders merge into the folder an unsharded run makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import os
import platform
import re
import sys
import time
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from .. import config as cfgmod
from ..config import ConfigError, EndpointConfig, stable_hash
from ..corpora.benchmark import Benchmark, Problem, Question, load_benchmark
from ..corpora.chunking import ChunkParams
from ..graphs import Deps, graphs, load_graph_module
from ..graphs.base import GraphSpec
from ..llm import LLM
from .store import RunStore

EVIDENCE_NEEDS = {"clean_evidence": "evidence_clean", "conflict_evidence": "evidence_conflict",
                  "precomputed_report": "agentic_report"}


@dataclasses.dataclass(kw_only=True)
class RunConfig:
    """Everything a run depends on; hashed into the run record."""

    graphs: list[str]
    """Graph variants: a name, or name[key=value,...] for inline params."""
    sets: list[str] = dataclasses.field(default_factory=list)
    """Param overrides "graph.key=value" applied to every variant of that graph."""
    grids: list[str] = dataclasses.field(default_factory=list)
    """Ablation grids "graph.key=v1,v2,...": one variant per value (several grids: every combination)."""
    benchmark: str = "demo"
    """Registered benchmark name or a path to a benchmark file."""
    corpus: str = "demo"
    """Registered corpus name, a folder of .md/.txt, or a .jsonl dump."""
    split: str | None = None
    """Only questions of this split (dev/test)."""
    limit: int | None = None
    """First N questions in id order (after the split filter)."""
    endpoint: EndpointConfig = dataclasses.field(default_factory=EndpointConfig)
    out: str = "runs"
    """Folder that holds run folders."""
    chroma_path: str | None = None
    """PersistentClient folder (default $RAGSAFE_HOME/chroma)."""
    chroma_url: str | None = None
    """URL of a `chroma run` server; overrides chroma_path."""
    chunk_size: int = 300
    chunk_overlap: int = 50
    concurrency: int = 1
    """Questions in flight at once."""
    skip_invalid: bool = False
    """Run without the benchmark's invalid records (their ids are recorded) instead of refusing."""
    allow_errors: bool = False
    """Report metrics for variants with error samples (errors counted as null)."""
    retry_errors: bool = False
    """On resume, run again the samples that ended in an error."""
    bootstrap_B: int = 1000
    bootstrap_seed: int = 42
    graph_modules: list[str] = dataclasses.field(default_factory=list)
    """Extra modules/files whose @graph factories to register."""
    cache: str = "use"
    """LLM response cache: "use" (read and write), "refresh" (ask the server, overwrite), "off"."""


@dataclasses.dataclass(frozen=True)
class Variant:
    label: str
    spec: GraphSpec
    params: Any
    overrides: dict[str, str]


_VARIANT = re.compile(r"^([A-Za-z_][\w\-]*)(?:\[(.*)\])?$")


def parse_assignments(items: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{what} {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out.append((k.strip(), v.strip()))
    return out


def expand_grids(specs: list[str], grids: list[str]) -> list[str]:
    """``--grid corrective_rag.max_rewrites=0,1,2`` turns each spec of that graph into one per value."""
    for item in grids:
        key, _, values = item.partition("=")
        if "." not in key or not values:
            raise ConfigError(f"--grid {item!r}: expected graph.param=v1,v2,...")
        g, param = key.strip().split(".", 1)
        graphs.get(g)
        vals = [v.strip() for v in values.split(",") if v.strip()]
        out, hit = [], False
        for s in specs:
            m = _VARIANT.match(s.strip())
            if m and m.group(1) == g:
                hit = True
                inline = [x for x in (m.group(2) or "").split(",") if x.strip()]
                for v in vals:
                    out.append(f"{g}[{','.join(inline + [f'{param}={v}'])}]")
            else:
                out.append(s)
        if not hit:
            raise ConfigError(f"--grid names graph {g!r}, which is not among --graph {specs}")
        specs = out
    return specs


def resolve_variants(specs: list[str], sets: list[str], grids: list[str] | None = None) -> list[Variant]:
    """``["standard_rag[k=3]", "closed_book"]`` + ``["standard_rag.query=question"]`` → variants."""
    specs = expand_grids(list(specs), grids or [])
    if not specs:
        raise ConfigError(f"no graph given; pass --graph NAME (valid: {', '.join(graphs.names())})")
    per_graph: dict[str, dict[str, str]] = {}
    for key, value in parse_assignments(sets, "--set"):
        if "." not in key:
            raise ConfigError(f"--set {key}={value}: expected graph.param=value, e.g. standard_rag.k=3")
        g, p = key.split(".", 1)
        graphs.get(g)  # unknown graph names fail here, listing the valid ones
        per_graph.setdefault(g, {})[p] = value
    for g in per_graph:
        if not any((_VARIANT.match(s) or [None, None])[1] == g for s in specs):
            raise ConfigError(f"--set names graph {g!r}, which is not among --graph {specs}")
    variants, seen = [], set()
    for s in specs:
        m = _VARIANT.match(s.strip())
        if not m:
            raise ConfigError(f"--graph {s!r}: expected NAME or NAME[key=value,...]")
        name, inline = m.group(1), m.group(2)
        spec = graphs.get(name)
        overrides = dict(per_graph.get(name, {}))
        if inline:
            overrides.update(parse_assignments([x for x in inline.split(",") if x.strip()], f"--graph {s}"))
        params = spec.make_params(overrides)
        label = name if not overrides else f"{name}[{','.join(f'{k}={v}' for k, v in sorted(overrides.items()))}]"
        if label in seen:
            raise ConfigError(f"graph variant {label!r} given twice")
        seen.add(label)
        variants.append(Variant(label, spec, params, overrides))
    return variants


def condition_problems(bench: Benchmark, questions: list[Question], variants: list[Variant]) -> list[Problem]:
    """Questions that lack the evidence a chosen graph needs."""
    out = []
    for v in variants:
        field = EVIDENCE_NEEDS.get(v.spec.name)
        if not field:
            continue
        for q in questions:
            if not getattr(q, field):
                file, _, line = (q.origin or "?").rpartition(":")
                out.append(Problem(file or "?", int(line) if line.isdigit() else None, q.id, field,
                                   f"graph {v.spec.name} needs {field}, which this question lacks"))
    return out


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str | None], ...]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("ragsafe", "langgraph", "langchain-core", "chromadb", "openai", "tenacity",
                "sentence-transformers", "torch", "llama_cpp_python", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return tuple(out.items())


def versions() -> dict[str, str | None]:
    """Versions of Python and the packages a result depends on (looked up once per process)."""
    return dict(_versions())


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def docs_hash(docs) -> str:
    h = hashlib.sha256()
    for d in sorted(docs, key=lambda d: d.metadata.get("doc_id", "")):
        h.update(d.metadata.get("doc_id", "").encode() + b"\x00" + d.page_content.encode() + b"\x01")
    return h.hexdigest()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
    if needs_retriever:
        from ..corpora.documents import load_corpus

        docs = load_corpus(cfg.corpus)
        corpus_hash = docs_hash(docs)
    chunk = ChunkParams(size=cfg.chunk_size, overlap=cfg.chunk_overlap)
    identity = {
        "variants": {v.label: {"graph": v.spec.name, "params": dataclasses.asdict(v.params)} for v in variants},
        "benchmark": {"spec": cfg.benchmark, "hash": bench.content_hash()},
        "question_ids": [q.id for q in questions],
        "corpus": {"spec": cfg.corpus, "hash": corpus_hash, "chunk": dataclasses.asdict(chunk)} if needs_retriever
        else None,
        "endpoint": {k: v for k, v in dataclasses.asdict(cfg.endpoint).items() if k not in ("timeout", "max_retries")},
    }
    return {"variants": variants, "bench": bench, "questions": questions, "skipped": skipped, "problems": problems,
            "needs_retriever": needs_retriever, "docs": docs, "chunk": chunk, "identity": identity,
            "config_hash": stable_hash(identity)}


def retrieves(v: Variant) -> bool:
    fn = getattr(v.spec, "retrieves", None)
    return bool(fn(v.params)) if fn else bool(v.spec.needs_retriever)


# -- shards, endpoints, jobs -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Shard:
    """Slice ``index`` of ``count`` (1-based): questions at positions index-1, index-1+count, ...

    Every cell of one question lands in the same shard, so steps that variants share are cached
    on the machine that runs them. The slice depends only on the run's question list (in id order),
    so ``--shard i/N`` picks the same questions on every machine.
    """

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
        if not m:
            raise ConfigError(f"--shard {text!r}: expected i/N, e.g. --shard 1/4")
        i, n = int(m.group(1)), int(m.group(2))
        if n < 1 or not 1 <= i <= n:
            raise ConfigError(f"--shard {text!r}: need 1 <= i <= N (shards are numbered from 1)")
        return cls(i, n)

    def take(self, questions: list[Question]) -> list[Question]:
        return [q for j, q in enumerate(questions) if j % self.count == self.index - 1]

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def suffix(self) -> str:
        return f".shard-{self.index}of{self.count}"


def run_dir_for(out: str | Path, config_hash: str, shard: Shard | None = None) -> Path:
    """The folder of a run: its config hash names it, so the same config resumes the same folder."""
    return Path(out) / (f"run-{config_hash[:12]}" + (shard.suffix if shard else ""))


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """How requests reach one model: URLs, bounds and retry pacing (a sweep may list several)."""

    name: str
    config: EndpointConfig
    replicas: tuple[str, ...] = ()
    """Further base URLs serving the same model; requests are spread over all of them."""
    concurrency: int | None = None
    """Requests in flight per base URL (None: only ``workers`` bounds them)."""
    workers: int = 1
    """Questions in flight for this endpoint (they wait for request slots at the gate)."""
    backoff_initial: float = 0.5
    backoff_max: float = 20.0


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
    ep = endpoint or Endpoint(name=cfg.endpoint.model, config=cfg.endpoint, workers=max(1, cfg.concurrency))
    return RunJob(cfg=cfg, plan=plan(cfg), endpoint=ep, shard=shard, extra=dict(extra or {}))


def run(cfg: RunConfig, *, progress: Callable[[str], None] = log) -> Path:
    """Execute ``cfg``; return the run folder (resumed when it already exists).

    Example:
        >>> run(RunConfig(graphs=["closed_book"], limit=5))  # doctest: +SKIP
        PosixPath('runs/run-0123456789ab')
    """
    job = prepare(cfg)
    return execute_runs([job], cache=cfg.cache, retry_errors=cfg.retry_errors, progress=progress,
                        reporter=pick_reporter(progress, per_question=True))[0]


# -- execution -----------------------------------------------------------------------------------

@dataclasses.dataclass
class Cell:
    """One (run, variant): the unit that has a progress bar, a rate and an ETA."""

    label: str
    job: RunJob
    variant: Variant
    app: Any
    deps: Deps
    todo: list[Question]
    done: int = 0
    errors: int = 0
    t_first: float | None = None
    t_last: float | None = None
    params: dict | None = None
    """The variant's params as a dict (built once, shared by its records)."""

    @property
    def total(self) -> int:
        return len(self.todo)


@dataclasses.dataclass
class Lane:
    """The work of one endpoint: its cells' questions interleaved, answered by ``workers`` tasks."""

    name: str
    jobs: list[tuple[Cell, Question]]
    workers: int


def interleave(cells: list[Cell]) -> list[tuple[Cell, Question]]:
    """Round-robin over cells, question by question: every cell advances at the same pace, and the
    cells of one question run close together (steps they share are answered once)."""
    out = []
    for j in range(max((c.total for c in cells), default=0)):
        out.extend((c, c.todo[j]) for c in cells if j < c.total)
    return out


def execute_runs(jobs: list[RunJob], *, cache: str = "use", retry_errors: bool = False,
                 progress: Callable[[str], None] = log, reporter: "Reporter | None" = None,
                 allow_errors: bool | None = None) -> list[Path]:
    """Fill the run folders of ``jobs`` in one event loop and score them; return the folders.

    Jobs that share an endpoint share its request gate (``Endpoint.concurrency`` per URL), and
    their questions are interleaved so no server idles while another cell waits. Records are
    appended as they finish; a job that has nothing left to do touches no model.
    """
    from .cache import open_cache

    reporter = reporter or pick_reporter(progress)
    t0 = time.perf_counter()
    with ExitStack() as stack:
        for job in jobs:
            store = RunStore(job.run_dir)
            if store.exists():
                old = store.read_run()
                if old.get("config_hash") != job.plan["config_hash"]:
                    raise ConfigError(f"{job.run_dir} holds a run with another config hash; pass another --out")
            stack.enter_context(store.lock())
            if store.exists():
                cut = store.repair()
                progress(f"resuming {job.run_dir} ({len(store.done_keys())} records kept"
                         f"{', torn tail cut' if cut else ''})")
        pending = {id(job): job.pending(retry_errors) for job in jobs}
        busy = [job for job in jobs if any(pending[id(job)].values())]
        endpoints = _start_endpoints(busy, stack, progress)
        llms: dict[int, LLM] = {}
        records: dict[int, dict] = {}
        cells: list[Cell] = []
        response_cache = open_cache(cache) if busy else None
        for job in busy:
            ep = job.endpoint
            live = endpoints[ep.name]
            retriever, index_info = _retriever_for(job, stack, progress) if job.plan["needs_retriever"] else (None, None)
            llm = LLM(live["base_url"], live["model"], api_key=cfgmod.read_api_key(ep.config.api_key_env),
                      timeout=ep.config.timeout, max_retries=ep.config.max_retries, seed=ep.config.seed,
                      cache=response_cache, cache_read=cache != "refresh", gate=live["gate"],
                      backoff_initial=ep.backoff_initial, backoff_max=ep.backoff_max)
            llms[id(job)] = llm
            count_tokens = None
            if job.plan["needs_retriever"]:
                from ..retrievers.embedders import get_embedder

                count_tokens = get_embedder().count_tokens
            deps = Deps(llm=llm, retriever=retriever, answer_mode=ep.config.answer_mode,
                        max_tokens=ep.config.max_tokens, temperature=0.0, seed=ep.config.seed,
                        context_window=live["context_window"], count_tokens=count_tokens)
            record = _run_record(job, live, index_info)
            RunStore(job.run_dir).write_run(record)
            records[id(job)] = record
            todo_n = sum(len(x) for x in pending[id(job)].values())
            progress(f"run {job.run_dir}: {len(job.plan['variants'])} variant(s) x {len(job.questions)} question(s)"
                     f"{f' (shard {job.shard.label})' if job.shard else ''}; {todo_n} to compute")
            tag = job.extra.get("cell_prefix", "")
            for v in job.plan["variants"]:
                todo = pending[id(job)][v.label]
                if todo:
                    cells.append(Cell(f"{tag}{v.label}", job, v, v.spec.build(deps, v.params), deps, todo))
        lanes = []
        for name in dict.fromkeys(job.endpoint.name for job in busy):
            mine = [c for c in cells if c.job.endpoint.name == name]
            lanes.append(Lane(name, interleave(mine), max(1, mine[0].job.endpoint.workers) if mine else 1))
        t_exec, cpu_exec = time.perf_counter(), time.process_time()
        if cells:
            reporter.start(cells)
            try:
                with lean_gc():
                    asyncio.run(_execute(lanes, reporter, list(llms.values())))
            finally:
                reporter.close()
        wall = round(time.perf_counter() - t0, 2)
        exec_s = round(time.perf_counter() - t_exec, 3)
        exec_cpu = round(time.process_time() - cpu_exec, 3)
        for job in busy:
            llm, record = llms[id(job)], records[id(job)]
            if llm.logprobs_supported is False:
                progress(f"note: {llm.base_url} returned no logprobs; letters come from the strict text parse")
                if job.endpoint.config.answer_mode == "letter_logprobs":
                    progress("warning: answer_mode letter_logprobs fell back to generate (no logprobs from the server)")
            record["endpoint"]["logprobs_supported"] = llm.logprobs_supported
            record["finished_at"] = _now()
            record["wall_seconds_last_session"] = wall
            record["execute_seconds_last_session"] = exec_s
            record["execute_cpu_seconds_last_session"] = exec_cpu  # this process's CPU (all runs of the session)
            record["llm_calls_last_session"] = llm.calls
            record["cache_hits_last_session"] = llm.cache_hits
            record["failed_attempts_last_session"] = llm.failed_attempts
            RunStore(job.run_dir).write_run(record)
        out = []
        busy_ids = {id(job) for job in busy}
        for job in jobs:  # still holding the folders' locks
            store = RunStore(job.run_dir)
            if not store.exists():
                continue  # a shard with no questions: nothing to write
            store.compact()
            if id(job) not in busy_ids and not store.read_run().get("finished_at"):
                store.write_run({**store.read_run(), "finished_at": _now()})  # its last session was cut short
            allow = job.cfg.allow_errors if allow_errors is None else allow_errors
            if id(job) in busy_ids or store.read_summary() is None or _scored_with(store) != _score_stamp(store, allow):
                score_run(job.run_dir, allow_errors=allow, B=job.cfg.bootstrap_B, seed=job.cfg.bootstrap_seed)
            out.append(job.run_dir)
    return out


def _score_stamp(store: RunStore, allow_errors: bool) -> dict:
    st = store.samples_path.stat() if store.samples_path.exists() else None
    return {"allow_errors": allow_errors, "samples_bytes": st.st_size if st else 0}


def _scored_with(store: RunStore) -> dict | None:
    return (store.read_summary() or {}).get("scored_with")


def _start_endpoints(jobs: list[RunJob], stack: ExitStack, progress) -> dict[str, dict[str, Any]]:
    """Start the embedded server where an endpoint is "local", make each endpoint's gate, and check
    that every URL answers (within seconds, naming the URL that does not)."""
    from ..llm import Gate

    live: dict[str, dict[str, Any]] = {}
    for job in jobs:
        ep = job.endpoint
        if ep.name in live:
            continue
        cfg = ep.config
        if cfg.base_url == "local":
            from ..server import LocalServer

            progress(f"starting the embedded llama.cpp server with {cfg.model} ...")
            srv = stack.enter_context(LocalServer(cfg.model, n_ctx=cfg.context_window))
            base_url, ctx_window = srv.base_url, srv.n_ctx
            progress(f"server ready at {base_url}")
        else:
            base_url, ctx_window = cfg.base_url, cfg.context_window
        gate = Gate([base_url, *ep.replicas], ep.concurrency)
        probe = LLM(base_url, cfg.model, api_key=cfgmod.read_api_key(cfg.api_key_env), gate=gate)
        server_models = asyncio.run(probe.check())
        live[ep.name] = {"base_url": base_url, "model": cfg.model, "context_window": ctx_window,
                         "server_models": server_models, "gate": gate}
    return live


_INDEXES: dict[tuple, tuple[Any, dict]] = {}


def _retriever_for(job: RunJob, stack: ExitStack, progress) -> tuple[Any, dict]:
    """One Chroma index per (corpus, chunking, store location), built once per process."""
    from ..retrievers.chroma import ChromaRetriever, build_index

    cfg = job.cfg
    key = (cfg.corpus, job.plan["identity"]["corpus"]["hash"], cfg.chunk_size, cfg.chunk_overlap,
           cfg.chroma_path, cfg.chroma_url)
    if key not in _INDEXES:
        progress(f"indexing corpus {cfg.corpus!r} into Chroma ...")
        store_ = build_index(cfg.corpus, chroma_path=cfg.chroma_path, chroma_url=cfg.chroma_url,
                             chunk=job.plan["chunk"], docs=job.plan["docs"])
        retriever = ChromaRetriever(store=store_)
        _INDEXES[key] = (retriever, {**retriever.describe(), "ingest": store_.last_ingest})
        progress(f"index {store_.name}: {store_.count()} chunks ({store_.last_ingest['embedded']} embedded now)")
    stack.callback(_INDEXES.pop, key, None)  # a later session re-checks the store
    return _INDEXES[key]


def _run_record(job: RunJob, live: dict[str, Any], index_info: dict | None) -> dict[str, Any]:
    cfg, p, ep = job.cfg, job.plan, job.endpoint.config
    store = RunStore(job.run_dir)
    old = store.read_run() if store.exists() else {}
    rec = {
        "config_hash": p["config_hash"],
        "config": dataclasses.asdict(cfg) | {"endpoint": dataclasses.asdict(ep)},
        "identity": p["identity"],
        "variants": {v.label: {"graph": v.spec.name, "params": dataclasses.asdict(v.params),
                               "overrides": v.overrides, "paper_condition": v.spec.paper_condition}
                     for v in p["variants"]},
        "benchmark": {"spec": cfg.benchmark, "name": p["bench"].name, "files": p["bench"].files,
                      "hash": p["identity"]["benchmark"]["hash"], "n_records": p["bench"].n_records,
                      "n_loaded": len(p["bench"].questions), "skipped_ids": p["skipped"],
                      "problems": [str(x) for x in p["problems"]]},
        "question_ids": [q.id for q in p["questions"]],
        "corpus": {"spec": cfg.corpus, "hash": p["identity"]["corpus"]["hash"], "index": index_info}
        if p["needs_retriever"] else None,
        "endpoint": {"kind": "local" if ep.base_url == "local" else "remote", "base_url": live["base_url"],
                     "replicas": list(job.endpoint.replicas), "concurrency_per_url": job.endpoint.concurrency,
                     "model": live["model"], "server_models": live["server_models"], "answer_mode": ep.answer_mode,
                     "max_tokens": ep.max_tokens, "context_window": live["context_window"],
                     "api_key_env": ep.api_key_env},
        "seeds": {"llm": ep.seed, "bootstrap": cfg.bootstrap_seed},
        "versions": versions(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "started_at": old.get("started_at") or _now(),
    }
    if job.shard:
        rec["shard"] = {"index": job.shard.index, "count": job.shard.count,
                        "question_ids": [q.id for q in job.questions]}
    rec.update(job.extra.get("record", {}))
    return rec


@contextlib.contextmanager
def lean_gc(gen0: int = 20_000):
    """Python's cyclic GC, run on every 700 allocations over everything loaded for a run (questions,
    chunks, graphs, clients), costs 10–15 % of the client's CPU per question at high concurrency.
    During execution the objects that exist already are frozen out of collection and young
    collections run less often; both are restored afterwards."""
    import gc

    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(old[0], gen0), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


async def _execute(lanes: list[Lane], reporter: "Reporter", llms: list[LLM]) -> None:
    writers: dict[Path, _Writer] = {}
    by_job: dict[int, _Writer] = {}  # the same writers by job, so a record does not recompute its folder

    async def worker(it) -> None:
        for cell, q in it:  # the lane's iterator is shared: each job is taken once
            rec = await answer_one(cell, q)
            w = by_job.get(id(cell.job))
            if w is None:  # one writer per folder, however many jobs name it
                d = cell.job.run_dir
                if d not in writers:
                    writers[d] = _Writer(RunStore(d))
                w = by_job[id(cell.job)] = writers[d]
            w.put(rec)
            reporter.advance(cell, rec)

    tasks = []
    for lane in lanes:
        it = iter(lane.jobs)
        tasks += [asyncio.create_task(worker(it)) for _ in range(max(1, min(lane.workers, len(lane.jobs))))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        for w in writers.values():
            await w.close()
        for llm in llms:
            await llm.aclose()


class _Writer:
    """Group commit: records that finish while a write is on disk go out together in the next one,
    written off the event loop so requests keep flowing during fsync."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.buf: list[dict] = []
        self.task: asyncio.Task | None = None

    def put(self, rec: dict) -> None:
        self.buf.append(rec)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self.buf:
            batch, self.buf = self.buf, []
            await asyncio.to_thread(self.store.append_many, batch)

    async def close(self) -> None:
        while self.task is not None and not self.task.done() or self.buf:
            if self.task is None or self.task.done():
                self.task = asyncio.create_task(self._drain())
            await asyncio.shield(self.task)


async def answer_one(cell: Cell, q: Question) -> dict[str, Any]:
    """Run one question through one cell's graph; a fault that outlived its retries is recorded."""
    v, deps = cell.variant, cell.deps
    t = time.perf_counter()
    if cell.params is None:
        cell.params = dataclasses.asdict(v.params)
    rec: dict[str, Any] = {"variant": v.label, "graph": v.spec.name, "params": cell.params,
                           "question_id": q.id, "answer_key": q.answer, "seed": deps.seed}
    try:
        st = await cell.app.ainvoke({"question": q, "queries": [], "trace": []})
        ans = st.get("answer") or {}
        rec.update(letter=st.get("letter"), correct=st.get("letter") == q.answer,
                   raw_output=ans.get("raw"), letter_dist=ans.get("letter_dist"),
                   answer_source=ans.get("source"), messages=ans.get("messages"),
                   queries=st.get("queries"),
                   retrieved=[{k: d.metadata.get(k) for k in ("chunk_id", "doc_id", "score", "rank")}
                              for d in st.get("chunks") or []],
                   trace=st.get("trace"), error=None, **{k: st[k] for k in ("sc",) if k in st})
    except (ConfigError, TypeError, AttributeError, KeyError, NameError):
        raise  # programming or data errors are not per-sample faults
    except Exception as e:  # noqa: BLE001  (a transport/server fault after retries: recorded)
        rec.update(letter=None, correct=False, error={"type": type(e).__name__, "message": str(e)[:500]},
                   trace=None)
    rec["seconds"] = round(time.perf_counter() - t, 4)
    rec["finished_at"] = _now()
    return rec


# -- progress ------------------------------------------------------------------------------------

class Reporter:
    """Progress of cells: count, errors, rate and ETA. Subclasses render it."""

    def start(self, cells: list[Cell]) -> None:
        self.cells = cells
        self.total = sum(c.total for c in cells)
        self.n = 0

    def advance(self, cell: Cell, rec: dict) -> None:
        now = time.perf_counter()
        cell.t_first = cell.t_first or now
        cell.t_last = now
        cell.done += 1
        cell.errors += bool(rec.get("error"))
        self.n += 1

    def close(self) -> None:
        pass


def rate_eta(cell: Cell, started: float) -> tuple[float | None, float | None]:
    """Questions per second since ``started`` and seconds left at that rate."""
    el = (cell.t_last or started) - started
    if cell.done == 0 or el <= 0:
        return None, None
    rate = cell.done / el
    return rate, (cell.total - cell.done) / rate


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return "-:--"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class QuestionLog(Reporter):
    """A line per finished question (the `ragsafe run` log)."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.progress = progress

    def advance(self, cell: Cell, rec: dict) -> None:
        super().advance(cell, rec)
        mark = "error" if rec.get("error") else ("ok" if rec.get("correct") else "wrong")
        self.progress(f"[{self.n}/{self.total}] {cell.label} {rec['question_id']}: {rec.get('letter')} "
                      f"({mark}, {rec['seconds']:.1f}s)")


class CellLog(Reporter):
    """A line per cell when it finishes, and a status line of all cells every ``interval`` seconds."""

    def __init__(self, progress: Callable[[str], None], interval: float = 10.0) -> None:
        self.progress = progress
        self.interval = interval

    def start(self, cells: list[Cell]) -> None:
        super().start(cells)
        self.t0 = self.last = time.perf_counter()

    def line(self, c: Cell) -> str:
        rate, eta = rate_eta(c, self.t0)
        return (f"{c.label}: {c.done}/{c.total}" + (f", {c.errors} errors" if c.errors else "")
                + (f", {rate:.2f} q/s, ETA {_fmt_eta(eta)}" if rate else ""))

    def advance(self, cell: Cell, rec: dict) -> None:
        super().advance(cell, rec)
        if cell.done == cell.total:
            self.progress("done " + self.line(cell))
        now = time.perf_counter()
        if now - self.last >= self.interval and self.n < self.total:
            self.last = now
            busy = [c for c in self.cells if c.done < c.total]
            self.progress(f"[{self.n}/{self.total}] " + "; ".join(self.line(c) for c in busy[:8])
                          + (f"; ... {len(busy) - 8} more cells" if len(busy) > 8 else ""))


class RichCells(Reporter):
    """A live rich table on stderr: one bar per cell with count, errors, rate and ETA."""

    def start(self, cells: list[Cell]) -> None:
        super().start(cells)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[err]}"), TextColumn("{task.fields[rate]}"),
                            TimeRemainingColumn(), console=Console(stderr=True), refresh_per_second=4)
        self.t0 = time.perf_counter()
        from rich.markup import escape

        self.ids = {id(c): self.bar.add_task(escape(c.label), total=c.total, err="", rate="") for c in cells}
        self.bar.start()

    def advance(self, cell: Cell, rec: dict) -> None:
        super().advance(cell, rec)
        rate, _ = rate_eta(cell, self.t0)
        self.bar.update(self.ids[id(cell)], advance=1, err=f"{cell.errors} err" if cell.errors else "",
                        rate=f"{rate:.2f} q/s" if rate else "")

    def close(self) -> None:
        self.bar.stop()


def pick_reporter(progress: Callable[[str], None] = log, *, per_question: bool = False) -> Reporter:
    """rich bars on a terminal; plain lines otherwise (logs, CI)."""
    if progress is log and sys.stderr.isatty():
        return RichCells()
    return QuestionLog(progress) if per_question else CellLog(progress)


def score_run(run_dir: str | Path, *, allow_errors: bool = False, B: int | None = None,
              seed: int | None = None) -> dict:
    """Recompute ``summary.json`` from ``samples.jsonl`` (no LLM call): every SaFE-Scale metric,
    paired tests, attribution (with chunk texts rebuilt offline from the run's corpus)."""
    from .score import score_run_dir

    return score_run_dir(run_dir, allow_errors=allow_errors, B=B, seed=seed)
