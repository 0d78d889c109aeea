"""Run graphs over a benchmark and write a run folder.

One call does it all: validate the benchmark, resolve graph variants and their params, start the
embedded server when the endpoint is ``local``, build the Chroma index when a graph retrieves,
answer every (variant, question) and append each record as it finishes, then score.

The run folder's name is the hash of the resolved config, so running the same command again
resumes the same run: finished records are kept and only missing ones are computed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
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
from .score import summarize
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


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("ragsafe", "langgraph", "langchain-core", "chromadb", "openai", "tenacity",
                "sentence-transformers", "torch", "llama_cpp_python", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


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
    needs_retriever = any(v.spec.retrieves(v.params) for v in variants)
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


def run(cfg: RunConfig, *, progress: Callable[[str], None] = log) -> Path:
    """Execute ``cfg``; return the run folder (resumed when it already exists)."""
    p = plan(cfg)
    variants: list[Variant] = p["variants"]
    questions: list[Question] = p["questions"]
    run_dir = Path(cfg.out) / f"run-{p['config_hash'][:12]}"
    store = RunStore(run_dir)
    resumed = store.exists()
    if resumed:
        old = store.read_run()
        if old.get("config_hash") != p["config_hash"]:
            raise ConfigError(f"{run_dir} holds a run with another config hash; pass another --out")
        cut = store.repair()
        progress(f"resuming {run_dir} ({len(store.done_keys())} records kept{', torn tail cut' if cut else ''})")

    with ExitStack() as stack:
        ep = cfg.endpoint
        if ep.base_url == "local":
            from ..server import LocalServer

            progress(f"starting the embedded llama.cpp server with {ep.model} ...")
            srv = stack.enter_context(LocalServer(ep.model, n_ctx=ep.context_window))
            base_url, model_id, ctx_window = srv.base_url, ep.model, srv.n_ctx
            progress(f"server ready at {base_url}")
        else:
            base_url, model_id, ctx_window = ep.base_url, ep.model, ep.context_window
        from ..evals.cache import open_cache

        llm = LLM(base_url, model_id, api_key=cfgmod.read_api_key(ep.api_key_env), timeout=ep.timeout,
                  max_retries=ep.max_retries, seed=ep.seed, cache=open_cache())
        server_models = asyncio.run(llm.check())
        retriever = None
        index_info = None
        if p["needs_retriever"]:
            from ..retrievers.chroma import ChromaRetriever, build_index

            progress(f"indexing corpus {cfg.corpus!r} into Chroma ...")
            store_ = build_index(cfg.corpus, chroma_path=cfg.chroma_path, chroma_url=cfg.chroma_url,
                                 chunk=p["chunk"], docs=p["docs"])
            retriever = ChromaRetriever(store=store_)
            index_info = {**retriever.describe(), "ingest": store_.last_ingest}
            progress(f"index {store_.name}: {store_.count()} chunks ({store_.last_ingest['embedded']} embedded now)")
        from ..retrievers.embedders import get_embedder

        deps = Deps(llm=llm, retriever=retriever, answer_mode=ep.answer_mode, max_tokens=ep.max_tokens,
                    temperature=0.0, seed=ep.seed, context_window=ctx_window,
                    count_tokens=(get_embedder().count_tokens if p["needs_retriever"] else None))
        run_record = {
            "config_hash": p["config_hash"],
            "config": dataclasses.asdict(cfg) | {"endpoint": dataclasses.asdict(ep)},
            "identity": p["identity"],
            "variants": {v.label: {"graph": v.spec.name, "params": dataclasses.asdict(v.params),
                                   "overrides": v.overrides, "paper_condition": v.spec.paper_condition}
                         for v in variants},
            "benchmark": {"spec": cfg.benchmark, "name": p["bench"].name, "files": p["bench"].files,
                          "hash": p["bench"].content_hash(), "n_records": p["bench"].n_records,
                          "n_loaded": len(p["bench"].questions), "skipped_ids": p["skipped"],
                          "problems": [str(x) for x in p["problems"]]},
            "question_ids": [q.id for q in questions],
            "corpus": {"spec": cfg.corpus, "hash": p["identity"]["corpus"]["hash"], "index": index_info}
            if p["needs_retriever"] else None,
            "endpoint": {"kind": "local" if ep.base_url == "local" else "remote", "base_url": base_url,
                         "model": model_id, "server_models": server_models, "answer_mode": ep.answer_mode,
                         "max_tokens": ep.max_tokens, "context_window": ctx_window,
                         "api_key_env": ep.api_key_env},
            "seeds": {"llm": ep.seed, "bootstrap": cfg.bootstrap_seed},
            "versions": versions(),
            "machine": {"platform": platform.platform(), "cpus": __import__("os").cpu_count()},
            "started_at": (store.read_run().get("started_at") if resumed else None) or _now(),
        }
        store.write_run(run_record)
        done = store.done_keys(include_errors=not cfg.retry_errors)
        todo = [(v, q) for v in variants for q in questions if (v.label, q.id) not in done]
        progress(f"run {run_dir}: {len(variants)} variant(s) x {len(questions)} question(s); "
                 f"{len(todo)} to compute")
        t0 = time.perf_counter()
        asyncio.run(_execute(todo, deps, store, cfg.concurrency, progress))
        if llm.logprobs_supported is False:
            progress("note: this server returned no logprobs; letters come from the strict text parse")
            if ep.answer_mode == "letter_logprobs":
                progress("warning: answer_mode letter_logprobs fell back to generate (no logprobs from the server)")
        run_record["endpoint"]["logprobs_supported"] = llm.logprobs_supported
        run_record["finished_at"] = _now()
        run_record["wall_seconds_last_session"] = round(time.perf_counter() - t0, 2)
        run_record["llm_calls_last_session"] = llm.calls
        run_record["cache_hits_last_session"] = llm.cache_hits
        store.write_run(run_record)
    score_run(run_dir, allow_errors=cfg.allow_errors, B=cfg.bootstrap_B, seed=cfg.bootstrap_seed)
    return run_dir


async def _execute(todo, deps: Deps, store: RunStore, concurrency: int, progress) -> None:
    apps = {}
    for v, _ in todo:
        if v.label not in apps:
            apps[v.label] = v.spec.build(deps, v.params)
    sem = asyncio.Semaphore(max(1, concurrency))
    total, counter = len(todo), {"n": 0}

    async def one(v: Variant, q: Question) -> None:
        async with sem:
            t = time.perf_counter()
            rec = {"variant": v.label, "graph": v.spec.name, "params": dataclasses.asdict(v.params),
                   "question_id": q.id, "answer_key": q.answer, "seed": deps.seed}
            try:
                st = await apps[v.label].ainvoke({"question": q, "queries": [], "trace": []})
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
            store.append(rec)
            counter["n"] += 1
            mark = "error" if rec.get("error") else ("ok" if rec["correct"] else "wrong")
            progress(f"[{counter['n']}/{total}] {v.label} {q.id}: {rec.get('letter')} ({mark}, {rec['seconds']:.1f}s)")

    await asyncio.gather(*(one(v, q) for v, q in todo))


def score_run(run_dir: str | Path, *, allow_errors: bool = False, B: int | None = None,
              seed: int | None = None) -> dict:
    """Recompute ``summary.json`` from ``samples.jsonl`` (no LLM call)."""
    store = RunStore(run_dir)
    run_rec = store.read_run()
    bench = load_benchmark(run_rec["benchmark"]["spec"])
    if bench.content_hash() != run_rec["benchmark"]["hash"]:
        log(f"warning: benchmark {run_rec['benchmark']['spec']!r} changed since this run; scoring against "
            f"its current labels")
    by_id = {q.id: q for q in bench.questions}
    missing = [i for i in run_rec["question_ids"] if i not in by_id]
    if missing:
        raise ConfigError(f"{run_dir}: questions {missing[:5]} are no longer in benchmark "
                          f"{run_rec['benchmark']['spec']!r}")
    questions = [by_id[i] for i in run_rec["question_ids"]]
    B = B or run_rec["config"].get("bootstrap_B", 1000)
    seed = run_rec["config"].get("bootstrap_seed", 42) if seed is None else seed
    summary = summarize(store.samples(), questions, list(run_rec["variants"]), B=B, seed=seed,
                        allow_errors=allow_errors)
    summary["run"] = {"path": str(run_dir), "config_hash": run_rec["config_hash"],
                      "model": run_rec["endpoint"]["model"], "benchmark": run_rec["benchmark"]["spec"]}
    store.write_summary(summary)
    return summary
