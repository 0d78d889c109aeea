"""Execute planned runs: answer every (variant, question) in one event loop, append each record as it
finishes, then score.

The run folder's name is the hash of the resolved config, so running the same command again
resumes the same run: finished records are kept and only missing ones are computed.

:func:`execute_runs` fills many run folders at once (a sweep: :mod:`ragsafe.experiments.sweep`) in one
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
import os
import platform
import time
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from ragsafe import config as cfgmod
from ragsafe.config import ConfigError, DiskFull
from ragsafe.corpora.schema import Question
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.endpoints import ServerWatch, _start_endpoints
from ragsafe.experiments.plan import RunJob, prepare
from ragsafe.experiments.progress import Reporter, log, pick_reporter
from ragsafe.experiments.store import RunStore
from ragsafe.experiments.variants import Variant
from ragsafe.graphs import Deps
from ragsafe.llm.client import LLM
from ragsafe.llm.errors import NON_RETRYABLE, classify, fix_for
from ragsafe.records import RunManifest, SampleRecord, ScoreStamp
from ragsafe.retrievers.registry import build_retriever


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str | None], ...]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("ragsafe", "langgraph", "langchain-core", "chromadb", "openai", "tenacity",
                "sentence-transformers", "torch", "llama_cpp_python", "numpy", "tiktoken"):
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


def run(cfg: RunConfig, *, progress: Callable[[str], None] = log) -> Path:
    """Execute ``cfg``; return the run folder (resumed when it already exists).

    Example:
        >>> run(RunConfig(graphs=["closed_book"], limit=5))  # doctest: +SKIP
        PosixPath('runs/run-0123456789ab')
    """
    if cfg.procs > 1:  # the worker processes sit above this module: ragsafe.run goes through them
        raise ConfigError(f"RunConfig.procs={cfg.procs}: execute.run answers in this process; call ragsafe.run "
                          "(ragsafe.experiments.procs.run) to split the questions over worker processes")
    job = prepare(cfg)
    return execute_runs([job], cache=cfg.cache, retry_errors=cfg.retry_errors, progress=progress,
                        reporter=pick_reporter(progress, per_question=True))[0]


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
    streak: tuple[tuple, int] = ((), 0)
    """(kind and status of the last non-retryable error, how many in a row)."""
    stopped: dict | None = None
    """Why the cell was stopped early (repeated non-retryable errors), for run.json."""

    @property
    def total(self) -> int:
        return len(self.todo)

    def note(self, rec: dict[str, Any]) -> str | None:
        """Count a finished record; stop the cell after :data:`STOP_AFTER` identical non-retryable errors
        in a row, returning the one message that says so (else None)."""
        err = rec.get("error") or {}
        if err.get("kind") not in NON_RETRYABLE:
            self.streak = ((), 0)
            return None
        sig = (err["kind"], err.get("status"))
        n = self.streak[1] + 1 if self.streak[0] == sig else 1
        self.streak = (sig, n)
        if n < STOP_AFTER or self.stopped:
            return None
        left = self.total - self.done
        status = f"HTTP {err['status']}, " if err.get("status") else ""
        self.stopped = {"kind": err["kind"], "status": err.get("status"), "server_message": err.get("server_message"),
                        "after_errors": n, "questions_not_run": left, "fix": fix_for(err["kind"])}
        return (f"stopped variant {self.label} after {n} identical errors ({status}{err['kind']}); the server said: "
                f"{(err.get('server_message') or err.get('message') or '')[:300]!r}. Fix: {fix_for(err['kind'])}. "
                f"{left} question(s) not run; the other variants go on. After the fix, run the same command "
                "(with --retry-errors if the fix leaves the command unchanged)")


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
    appended as they finish; a job that has nothing left to do touches no model. (Over several
    worker processes: :func:`ragsafe.experiments.procs.execute_runs`.)
    """
    reporter = reporter or pick_reporter(progress)
    t0 = time.perf_counter()
    with ExitStack() as stack:  # the folders' locks, servers and indexes live until every folder is scored
        open_folders(jobs, stack, progress)
        pending = {id(job): job.pending(retry_errors) for job in jobs}
        busy = [job for job in jobs if any(pending[id(job)].values())]
        endpoints = _start_endpoints(busy, stack, progress)
        indexes = IndexCache(progress)
        response_cache = _open_response_cache(cache) if busy else None
        sessions = [start_session(job, endpoints[job.endpoint.name], indexes, response_cache, cache, progress)
                    for job in busy]
        cells = build_cells(sessions, pending, progress)
        watches = {name: ServerWatch(name, live["server"], progress=progress)
                   for name, live in endpoints.items() if live.get("server") is not None}
        timing = execute_cells(cells, sessions, reporter, watches)
        timing["wall"] = round(time.perf_counter() - t0, 2)
        for s in sessions:
            finish_record(s, timing, progress)
        return score_folders(jobs, {id(job) for job in busy}, allow_errors)


def open_folders(jobs: list[RunJob], stack: ExitStack, progress: Callable[[str], None]) -> None:
    """Lock every job's folder (held by ``stack``); refuse a folder of another config; cut torn tails."""
    for job in jobs:
        store = RunStore(job.run_dir)
        if store.exists():
            if store.read_run().config_hash != job.plan["config_hash"]:
                raise ConfigError(f"{job.run_dir} holds a run with another config hash; pass another --out")
        stack.enter_context(store.lock())
        if store.exists():
            cut = store.repair()
            progress(f"resuming {job.run_dir} ({len(store.done_keys())} records kept"
                     f"{', torn tail cut' if cut else ''})")


def _open_response_cache(mode: str):
    from ragsafe.llm.cache import open_cache

    return open_cache(mode)


class IndexCache:
    """One Chroma index per (corpus, chunking, store location) for one execution: jobs that share a
    corpus share its retriever. Owned by :func:`execute_runs`, so a later execution re-checks the store."""

    def __init__(self, progress: Callable[[str], None] = log) -> None:
        self.progress = progress
        self._stores: dict[tuple, Any] = {}
        self._built: dict[tuple, tuple[Any, dict]] = {}

    def retriever_for(self, job: RunJob, embedder: str | None = None) -> tuple[Any, dict]:
        """The job's retriever and the facts about its index recorded in run.json.

        ``embedder`` (a variant's own) swaps the run's model for another with the same settings; its
        chunks are counted with the run's tokenizer, so every variant searches the same chunks. The
        run's ``--retriever`` is built over that index (:mod:`ragsafe.retrievers.registry`).
        """
        from ragsafe.retrievers import builtin
        from ragsafe.retrievers.chroma import build_index
        from ragsafe.retrievers.embedders import get_embedder

        cfg = job.cfg
        emb_cfg = cfg.embedder.with_name(embedder) if embedder else cfg.embedder
        key = (cfg.corpus, job.plan["identity"]["corpus"]["hash"], job.plan["chunk"], emb_cfg,
               cfg.embedder if embedder else None, cfg.chroma_path, cfg.chroma_url)
        if key not in self._stores:
            emb = get_embedder(emb_cfg)
            self.progress(f"indexing corpus {cfg.corpus!r} into Chroma with {emb.name} ({emb.where}) ...")
            label = None
            if job.plan.get("poison"):
                from ragsafe.corpora.poison import poison_label

                base = Path(cfg.corpus).name if ("/" in cfg.corpus or Path(cfg.corpus).exists()) else cfg.corpus
                label = poison_label(base, job.plan["poison"]["hash"])
                self.progress(f"poisoned corpus: {job.plan['poison']['documents']} poison document(s) from "
                              f"{cfg.poison!r}, in a collection of its own")
            store_ = build_index(cfg.corpus, chroma_path=cfg.chroma_path, chroma_url=cfg.chroma_url,
                                 chunk=job.plan["chunk"], docs=job.plan["docs"], label=label, embedder=emb,
                                 tokenize_with=get_embedder(cfg.embedder) if embedder else None, progress=True,
                                 warn=self.progress)
            self._stores[key] = store_
            self.progress(f"index {store_.name}: {store_.count()} chunks "
                          f"({store_.last_ingest['embedded']} embedded now)")
        if key + (cfg.retriever,) not in self._built:
            store_ = self._stores[key]
            retriever = build_retriever(cfg.retriever, builtin.context(store_, job.plan["docs"]))
            self._built[key + (cfg.retriever,)] = (retriever, {**retriever.describe(), "ingest": store_.last_ingest})
        return self._built[key + (cfg.retriever,)]


@dataclasses.dataclass
class Session:
    """One busy job during an execution: its client, its dependencies and its run record."""

    job: RunJob
    llm: LLM
    deps: Deps
    record: RunManifest
    variant_deps: dict[str, Deps] = dataclasses.field(default_factory=dict)
    """Deps of the variants with an embedder of their own (their own index), by label."""


def start_session(job: RunJob, live: dict[str, Any], indexes: IndexCache, response_cache, cache: str,
                  progress: Callable[[str], None], *, write: bool = True) -> Session:
    """Build the job's client and dependencies and write its run.json (started, not yet finished;
    ``write=False``: a worker process, whose parent writes it)."""
    ep, policy = job.endpoint, job.cfg.answer
    retriever, index_info, count_tokens = None, None, None
    if job.plan["needs_retriever"]:
        retriever, index_info = indexes.retriever_for(job)
        count_tokens = _token_counter(retriever)
    own = {v.embedder: indexes.retriever_for(job, v.embedder) for v in job.plan["variants"] if v.embedder}
    llm = LLM(live["base_url"], live["model"], api_key=cfgmod.read_api_key(ep.config.api_key_env),
              timeout=ep.config.timeout, max_retries=ep.config.max_retries, seed=policy.seed,
              cache=response_cache, cache_read=cache != "refresh", gate=live["gate"],
              backoff_initial=ep.backoff_initial, backoff_max=ep.backoff_max)
    deps = Deps(llm=llm, retriever=retriever, context_window=live["context_window"], count_tokens=count_tokens,
                policy=policy, questions=job.plan["bench"].questions)
    record = _run_record(job, live, index_info)
    if own:
        record.corpus["variant_indexes"] = {v.label: own[v.embedder][1] for v in job.plan["variants"]
                                               if v.embedder}
    if write:
        RunStore(job.run_dir).write_run(record)
    variant_deps = {v.label: dataclasses.replace(deps, retriever=own[v.embedder][0],
                                                 count_tokens=_token_counter(own[v.embedder][0]))
                    for v in job.plan["variants"] if v.embedder}
    return Session(job, llm, deps, record, variant_deps)


def _token_counter(retriever) -> Callable[[str], int] | None:
    """Token counting for graphs that fill a context window: the index embedder's tokenizer (an
    endpoint embedder has none: tiktoken's cl100k_base, as chunking does)."""
    from ragsafe.corpora.chunking import resolve_tokenizer

    emb = getattr(getattr(retriever, "store", None), "embedder", None)
    if emb is None:
        return None
    if getattr(emb, "tokenizer", None) is not None:
        return emb.count_tokens
    tok, _ = resolve_tokenizer("embedder", emb)
    return lambda text: len(tok(text)["input_ids"])


def build_cells(sessions: list[Session], pending: dict[int, dict[str, list[Question]]],
                progress: Callable[[str], None]) -> list[Cell]:
    """One cell per (run, variant) with questions left, its graph built over the session's deps."""
    cells: list[Cell] = []
    for s in sessions:
        job, todo_by_label = s.job, pending[id(s.job)]
        todo_n = sum(len(x) for x in todo_by_label.values())
        progress(f"run {job.run_dir}: {len(job.plan['variants'])} variant(s) x {len(job.questions)} question(s)"
                 f"{f' (shard {job.shard.label})' if job.shard else ''}; {todo_n} to compute")
        tag = job.extra.get("cell_prefix", "")
        for v in job.plan["variants"]:
            todo = todo_by_label[v.label]
            if todo:
                d = s.variant_deps.get(v.label, s.deps)
                cells.append(Cell(f"{tag}{v.label}", job, v, v.spec.build(d, v.params), d, todo))
    return cells


def lanes_for(cells: list[Cell]) -> list[Lane]:
    """One lane per endpoint, its cells' questions interleaved."""
    lanes = []
    for name in dict.fromkeys(c.job.endpoint.name for c in cells):
        mine = [c for c in cells if c.job.endpoint.name == name]
        lanes.append(Lane(name, interleave(mine), max(1, mine[0].job.endpoint.workers)))
    return lanes


def execute_cells(cells: list[Cell], sessions: list[Session], reporter: "Reporter",
                  watches: dict[str, ServerWatch] | None = None) -> dict[str, float]:
    """Answer every cell's questions in one event loop; return the execution's seconds and CPU seconds.

    ``watches`` restart embedded servers that die mid-run. Whatever ends the loop, each session's
    run.json records the server restarts and the variants stopped early.
    """
    t_exec, cpu_exec = time.perf_counter(), time.process_time()
    if cells:
        reporter.start(cells)
        try:
            with lean_gc():
                asyncio.run(_execute(lanes_for(cells), reporter, [s.llm for s in sessions], watches))
        finally:
            reporter.close()
            _record_faults(cells, sessions, watches or {})
    return {"execute": round(time.perf_counter() - t_exec, 3), "cpu": round(time.process_time() - cpu_exec, 3)}


def _record_faults(cells: list[Cell], sessions: list[Session], watches: dict[str, ServerWatch]) -> None:
    for s in sessions:
        watch = watches.get(s.job.endpoint.name)
        stops = {c.variant.label: c.stopped for c in cells if c.job is s.job and c.stopped}
        changed = False
        if watch is not None:  # the embedded server's restarts this session (it serves every job of the endpoint)
            s.record["endpoint"]["server_restarts_last_session"] = watch.server.restarts
            changed = True
        if stops or "stopped_variants" in s.record:
            s.record["stopped_variants"] = stops  # this session's stops (a later session may finish them)
            changed = True
        if changed:
            try:
                RunStore(s.job.run_dir).write_run(s.record)
            except OSError:
                pass  # a full disk: the error that stopped the run says so


def finish_record(s: Session, timing: dict[str, float], progress: Callable[[str], None]) -> None:
    """Stamp the session's run.json with what this session did (calls, cache hits, seconds)."""
    llm, record = s.llm, s.record
    if llm.logprobs_supported is False:
        progress(f"note: {llm.base_url} returned no logprobs; letters come from the strict text parse")
        if s.deps.policy.answer_mode == "letter_logprobs":
            progress("warning: answer_mode letter_logprobs fell back to generate (no logprobs from the server)")
    record.endpoint.logprobs_supported = llm.logprobs_supported
    # what the server was found to take: JSON-Schema form, n samples per request, native tools
    record.endpoint.capabilities = dict(llm.gate.caps)
    record.finished_at = _now()
    record.wall_seconds_last_session = timing["wall"]
    record.execute_seconds_last_session = timing["execute"]
    record.execute_cpu_seconds_last_session = timing["cpu"]  # this process's CPU (all runs of the session)
    record.llm_calls_last_session = llm.calls
    record.cache_hits_last_session = llm.cache_hits
    record.failed_attempts_last_session = llm.failed_attempts
    RunStore(s.job.run_dir).write_run(record)


def score_folders(jobs: list[RunJob], busy_ids: set[int], allow_errors: bool | None) -> list[Path]:
    """Compact and (re)score every folder whose samples changed since its summary; return the folders.
    Called while the folders' locks are still held."""
    out = []
    for job in jobs:
        store = RunStore(job.run_dir)
        if not store.exists():
            continue  # a shard with no questions: nothing to write
        store.compact()
        run = store.read_run()
        if id(job) not in busy_ids and not run.finished_at:
            run.finished_at = _now()  # its last session was cut short
            store.write_run(run)
        allow = job.cfg.allow_errors if allow_errors is None else allow_errors
        if id(job) in busy_ids or store.read_summary() is None or _scored_with(store) != _score_stamp(store, allow):
            score_run(job.run_dir, allow_errors=allow, B=job.cfg.bootstrap_B, seed=job.cfg.bootstrap_seed)
        out.append(job.run_dir)
    return out


def _score_stamp(store: RunStore, allow_errors: bool) -> ScoreStamp:
    st = store.samples_path.stat() if store.samples_path.exists() else None
    return ScoreStamp(allow_errors=allow_errors, samples_bytes=st.st_size if st else 0)


def _scored_with(store: RunStore) -> ScoreStamp | None:
    summary = store.read_summary()
    return summary.scored_with if summary else None


def _run_record(job: RunJob, live: dict[str, Any], index_info: dict | None) -> RunManifest:
    cfg, p, ep, policy = job.cfg, job.plan, job.endpoint.config, job.cfg.answer
    store = RunStore(job.run_dir)
    started = store.read_run().started_at if store.exists() else None
    rec = {
        "config_hash": p["config_hash"],
        "config": dataclasses.asdict(cfg) | {"endpoint": dataclasses.asdict(ep)},
        "identity": p["identity"],
        "variants": {v.label: {"graph": v.spec.name, "params": dataclasses.asdict(v.params),
                               "overrides": v.overrides, "paper_condition": v.spec.condition(v.params)}
                     for v in p["variants"]},
        "benchmark": {"spec": cfg.benchmark, "name": p["bench"].name, "files": p["bench"].files,
                      "hash": p["identity"]["benchmark"]["hash"], "n_records": p["bench"].n_records,
                      "n_loaded": len(p["bench"].questions), "skipped_ids": p["skipped"],
                      "problems": [str(x) for x in p["problems"]]},
        "question_ids": [q.id for q in p["questions"]],
        "corpus": {"spec": cfg.corpus, "hash": p["identity"]["corpus"]["hash"], "index": index_info,
                   **({"poison": p["poison"]} if p.get("poison") else {})}
        if p["needs_retriever"] else None,
        "endpoint": {"kind": "local" if ep.base_url == "local" else "remote", "base_url": live["base_url"],
                     "replicas": list(job.endpoint.replicas), "concurrency_per_url": job.endpoint.concurrency,
                     "model": live["model"], "server_models": live["server_models"],
                     "answer_mode": policy.answer_mode, "max_tokens": policy.max_tokens, "reasoning": policy.reasoning,
                     "context_window": live["context_window"], "api_key_env": ep.api_key_env},
        "seeds": {"llm": policy.seed, "bootstrap": cfg.bootstrap_seed, **_sc_seed_rules(p["variants"])},
        "versions": versions(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "started_at": started or _now(),
    }
    if job.shard:
        rec["shard"] = {"index": job.shard.index, "count": job.shard.count,
                        "question_ids": [q.id for q in job.questions]}
    rec.update(job.extra.get("record", {}))
    return RunManifest.model_validate(rec)


def _sc_seed_rules(variants: list[Variant]) -> dict[str, Any]:
    """How each sampling variant derived its sample seeds (absent in older runs: the shared rule)."""
    from ragsafe.graphs.self_consistency import SEED_RULES

    rules = {v.label: getattr(v.params, "seed_rule") for v in variants if hasattr(v.params, "seed_rule")}
    return {"sc_sample_seeds": {label: {"rule": r, "definition": SEED_RULES[r]} for label, r in rules.items()}} \
        if rules else {}


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


async def _execute(lanes: list[Lane], reporter: "Reporter", llms: list[LLM],
                   watches: dict[str, "ServerWatch"] | None = None,
                   open_writer: Callable[[Path], "_Writer"] | None = None) -> None:
    """``open_writer(run_dir)``: where a folder's records go (default: its samples.jsonl; a worker
    process sends them to its parent)."""
    open_writer = open_writer or (lambda d: _Writer(RunStore(d)))
    writers: dict[Path, _Writer] = {}
    by_job: dict[int, _Writer] = {}  # the same writers by job, so a record does not recompute its folder
    watches = watches or {}

    async def answer(cell: Cell, q: Question) -> dict[str, Any]:
        """answer_one, asked again when the embedded server died under it (and was restarted)."""
        watch = watches.get(cell.job.endpoint.name)
        gen = watch.generation if watch else 0
        rec = await answer_one(cell, q)
        while watch and (rec.get("error") or {}).get("kind") in ("unreachable", "transient") \
                and await watch.recover(gen):
            gen = watch.generation
            rec = await answer_one(cell, q)
        return rec

    async def worker(it) -> None:
        for cell, q in it:  # the lane's iterator is shared: each job is taken once
            if cell.stopped:
                continue
            rec = await answer(cell, q)
            w = by_job.get(id(cell.job))
            if w is None:  # one writer per folder, however many jobs name it
                d = cell.job.run_dir
                if d not in writers:
                    writers[d] = open_writer(d)
                w = by_job[id(cell.job)] = writers[d]
            w.put(rec)
            reporter.advance(cell, rec)
            stop = cell.note(rec)
            if stop:
                reporter.stopped(cell, stop)

    monitors = [asyncio.create_task(w.watch()) for w in watches.values()]
    workers = []
    for lane in lanes:
        it = iter(lane.jobs)
        workers += [asyncio.create_task(worker(it)) for _ in range(max(1, min(lane.workers, len(lane.jobs))))]
    tasks = workers + monitors
    try:
        pending = set(tasks)
        while any(not t.done() for t in workers):  # a monitor only ends by raising
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    raise t.exception()
        for t in monitors:
            t.cancel()
        await asyncio.gather(*monitors, return_exceptions=True)
        for w in writers.values():
            await w.close()
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in writers.values():
            await w.close(raise_error=False)
        raise
    finally:
        for llm in llms:
            await llm.aclose()


class _Writer:
    """Group commit: records that finish while a write is on disk go out together in the next one,
    written off the event loop so requests keep flowing during fsync. A failed write (a full disk)
    is kept and raised by the next :meth:`put` or by :meth:`close`, so the run stops."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.buf: list[SampleRecord] = []
        self.task: asyncio.Task | None = None
        self.error: BaseException | None = None

    def put(self, rec: SampleRecord) -> None:
        if self.error is not None:
            raise self.error
        self.buf.append(rec)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self.buf and self.error is None:
            batch, self.buf = self.buf, []
            try:
                await asyncio.to_thread(self.store.append_many, batch)
            except Exception as e:  # noqa: BLE001  (kept, raised by put/close)
                self.error = e

    async def close(self, *, raise_error: bool = True) -> None:
        while self.error is None and (self.task is not None and not self.task.done() or self.buf):
            if self.task is None or self.task.done():
                self.task = asyncio.create_task(self._drain())
            await asyncio.shield(self.task)
        if self.error is not None and raise_error:
            raise self.error


STOP_AFTER = 3
"""Identical non-retryable errors in a row after which a variant is stopped."""


async def answer_one(cell: Cell, q: Question) -> SampleRecord:
    """Run one question through one cell's graph; a fault that outlived its retries is recorded."""
    v, deps = cell.variant, cell.deps
    t = time.perf_counter()
    if cell.params is None:
        cell.params = dataclasses.asdict(v.params)
    rec: dict[str, Any] = {"variant": v.label, "graph": v.spec.name, "params": cell.params,
                           "question_id": q.id, "answer_key": q.answer, "seed": deps.policy.seed}
    try:
        st = await cell.app.ainvoke({"question": q, "queries": [], "trace": []})
        ans = st.get("answer") or {}
        rec.update(letter=st.get("letter"), correct=q.is_correct(st.get("letter")),
                   raw_output=ans.get("raw"), letter_dist=ans.get("letter_dist"),
                   answer_source=ans.get("source"), messages=ans.get("messages"),
                   queries=st.get("queries"),
                   retrieved=[{k: d.metadata.get(k) for k in ("chunk_id", "doc_id", "score", "rank")}
                              for d in st.get("chunks") or []],
                   trace=st.get("trace"), error=None, **{k: st[k] for k in ("sc",) if k in st})
        if ans.get("reasoning"):
            rec["reasoning"] = ans["reasoning"]
    except (ConfigError, DiskFull, TypeError, AttributeError, KeyError, NameError):
        raise  # programming or data errors, and a full disk, are not per-sample faults
    except Exception as e:  # noqa: BLE001  (a transport/server fault after retries: recorded)
        kind, status, server_message = classify(e)
        rec.update(letter=None, correct=False, trace=None,
                   error={"type": type(e).__name__, "message": str(e)[:500], "kind": kind, "status": status,
                          "server_message": server_message[:500]})
    rec["seconds"] = round(time.perf_counter() - t, 4)
    rec["finished_at"] = _now()
    return SampleRecord.model_validate(rec)


def score_run(run_dir: str | Path, *, allow_errors: bool = False, B: int | None = None,
              seed: int | None = None) -> dict:
    """Recompute ``summary.json`` from ``samples.jsonl`` (no LLM call): every SaFE-Scale metric,
    paired tests, attribution (with chunk texts rebuilt offline from the run's corpus)."""
    from ragsafe.evals.score import score_run_dir

    return score_run_dir(run_dir, allow_errors=allow_errors, B=B, seed=seed)
