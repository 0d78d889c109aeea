"""``--procs N``: the questions of one execution split over N worker processes, written into the
same run folders one process fills.

The parent does everything a run does once: it locks the folders, starts the embedded llama.cpp
server (one, shared by every worker) and checks each endpoint, builds the indexes, writes
``run.json``, shows the one progress display and scores once at the end. Each worker
(``python -m ragsafe.experiments.procs``) plans the same configs again (the config hash must
match), takes a round-robin share of the questions still to do (every variant of a question in the
same worker, as ``--shard`` splits them) and its share of the concurrency, and answers them with
the code one process runs (:func:`ragsafe.experiments.execute._execute`). A finished record goes to
the parent down a pipe already serialised; the parent is the only writer of ``samples.jsonl`` and
appends the lines it receives in group commits, as one process does.

So the folder is the one a ``--procs 1`` run of the same config makes (same name, same hash), and
either resumes the other. A worker killed mid-run (SIGKILL included) loses only the questions it
had in flight: every record it had sent is on disk, the run ends with an error naming the worker,
and the same command answers what is missing. The parent stops its workers on every way out
(Ctrl-C, SIGTERM, an error); a worker whose parent dies is killed by the kernel
(``PR_SET_PDEATHSIG``) or by a watchdog thread (:mod:`ragsafe.llm.orphan_guard`).

``concurrency`` is a total: an endpoint's questions in flight (``--concurrency``; a sweep
endpoint's ``workers``) and its requests per URL (a sweep endpoint's ``concurrency``) are divided
among the workers (8 over 3 processes: 3, 3, 2), so a server sees the bound it was given. There are
never more workers than questions in flight.

Wire format, worker to parent: one JSON header line per event; a record's header (``"k": "r"``) is
followed by its ``samples.jsonl`` line.
"""

from __future__ import annotations

import json
import os
import pickle
import selectors
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

from ragsafe.config import ConfigError

WORKER_MODULE = "ragsafe.experiments.procs"
PARENT_ENV = "RAGSAFE_PROCS_PARENT"
STOP_GRACE_S = 5.0
"""Seconds a worker gets to exit after SIGTERM before it is killed."""


class WorkerDied(RuntimeError):
    """A worker process ended before its share was answered: the run stopped, what it finished is
    kept, and the same command resumes it."""


def parse_procs(value: Any, where: str = "--procs") -> int:
    """A worker process count: a whole number >= 1, or ``auto`` (the cores of this machine)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and value.strip().lower() == "auto":
        return max(1, os.cpu_count() or 1)
    else:
        try:
            n = int(str(value).strip())
        except ValueError:
            n = None
    if n is None or n < 1:
        raise ConfigError(f"{where} {value!r}: expected a whole number of worker processes >= 1, or auto "
                          f"(the {os.cpu_count() or 1} cores here); e.g. {where} 2")
    return n


def split_total(total: int | None, n: int) -> list[int | None]:
    """``total`` divided over ``n`` workers as evenly as whole numbers go (None stays None)."""
    if total is None:
        return [None] * n
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def workers_for(procs: int, jobs: list, pending: dict[int, dict[str, list]]) -> tuple[int, str | None]:
    """How many workers to start, and why fewer than ``procs`` when so: each needs at least one
    question in flight (and a request slot per URL) and one question to answer."""
    n, why = procs, None
    for job in jobs:
        ep = job.endpoint
        bound = min(x for x in (ep.workers, ep.concurrency) if x is not None)
        if bound < n:
            n, why = max(1, bound), f"endpoint {ep.name} allows {bound} in flight"
    questions = max((len(_share_order(job, pending[id(job)])) for job in jobs), default=0)
    if questions < n:
        n, why = max(1, questions), f"{questions} question(s) left to answer"
    return n, why


def _share_order(job, todo: dict[str, list]) -> list[str]:
    """Ids of the job's questions that some variant still has to answer, in run order."""
    want = {q.id for qs in todo.values() for q in qs}
    return [q.id for q in job.questions if q.id in want]


# -- parent ----------------------------------------------------------------------------------------

def run(cfg, *, progress: Callable[[str], None] | None = None) -> Path:
    """Execute ``cfg`` over ``cfg.procs`` processes (1: in this one); return the run folder.

    Example:
        >>> run(RunConfig(graphs=["closed_book"], concurrency=32, procs=2))  # doctest: +SKIP
        PosixPath('runs/run-0123456789ab')
    """
    from ragsafe.experiments import execute as ex
    from ragsafe.experiments.plan import prepare
    from ragsafe.experiments.progress import log, pick_reporter

    progress = progress or log
    if cfg.procs <= 1:
        return ex.run(cfg, progress=progress)
    return execute_runs([prepare(cfg)], procs=cfg.procs, cache=cfg.cache, retry_errors=cfg.retry_errors,
                        progress=progress, reporter=pick_reporter(progress, per_question=True))[0]


def execute_runs(jobs: list, *, procs: int = 1, progress: Callable[[str], None] | None = None, **kw) -> list[Path]:
    """:func:`ragsafe.experiments.execute.execute_runs`, over ``procs`` worker processes when > 1."""
    from ragsafe.experiments import execute as ex
    from ragsafe.experiments.progress import log, pick_reporter

    progress = progress or log
    if procs <= 1:
        return ex.execute_runs(jobs, progress=progress, **kw)
    kw["reporter"] = kw.get("reporter") or pick_reporter(progress)
    return execute_in_procs(jobs, procs=procs, progress=progress, **kw)


def execute_in_procs(jobs: list, *, procs: int, cache: str = "use", retry_errors: bool = False,
                     progress: Callable[[str], None], reporter, allow_errors: bool | None = None) -> list[Path]:
    """:func:`ragsafe.experiments.execute.execute_runs` over ``procs`` worker processes."""
    from ragsafe.experiments import execute as ex
    from ragsafe.experiments.endpoints import ServerWatch, _start_endpoints

    before = {id(job): job.pending(retry_errors) for job in jobs}
    n, why = workers_for(procs, [j for j in jobs if any(before[id(j)].values())], before)
    if n < procs:
        progress(f"--procs {procs}: {n} worker process(es) ({why})")
    if n <= 1:
        return ex.execute_runs(jobs, cache=cache, retry_errors=retry_errors, progress=progress, reporter=reporter,
                               allow_errors=allow_errors)
    t0 = time.perf_counter()
    with ExitStack() as stack:
        # started first, so their imports overlap the parent's set-up; told their work when it is done
        spawned = [_Worker(i, n) for i in range(n)]
        stack.callback(_reap, spawned)
        ex.open_folders(jobs, stack, progress)
        pending = {id(job): job.pending(retry_errors) for job in jobs}  # again, now that the folders are ours
        busy = [job for job in jobs if any(pending[id(job)].values())]
        endpoints = _start_endpoints(busy, stack, progress)
        indexes = ex.IndexCache(progress)  # built here once: the workers find them complete and only read
        sessions = [ex.start_session(job, endpoints[job.endpoint.name], indexes, None, cache, progress)
                    for job in busy]
        cells = ex.build_cells(sessions, pending, progress)
        watches = {name: ServerWatch(name, live["server"], progress=progress)
                   for name, live in endpoints.items() if live.get("server") is not None}
        pool = _Pool(spawned, busy, pending, endpoints, cache, cells, reporter, watches, progress)
        try:
            timing = pool.run()
        finally:
            for s in sessions:
                s.record["procs_last_session"] = pool.describe()
            ex._record_faults(cells, sessions, watches)
        pool.raise_failure()  # as one process stops: what is written stays, the run is not stamped finished
        timing["wall"] = round(time.perf_counter() - t0, 2)
        for i, s in enumerate(sessions):
            pool.merge_stats(i, s)
            ex.finish_record(s, timing, progress)
        return ex.score_folders(jobs, {id(job) for job in busy}, allow_errors)


class _Done:
    """What the progress display reads of a record the parent only passes on as a line."""

    __slots__ = ("question_id", "letter", "correct", "seconds", "error")

    def __init__(self, h: dict) -> None:
        self.question_id, self.letter, self.correct, self.seconds, self.error = \
            h["q"], h["l"], h["c"], h["s"] or 0.0, h["e"]

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


class _Worker:
    def __init__(self, index: int, count: int) -> None:
        self.index, self.count = index, count
        self.task: dict = {}
        self.share = self.received = 0
        self.buf = b""
        self.header: dict | None = None
        self.ready = self.finished = self.eof = False
        self.stats: dict | None = None
        self.error: dict | None = None
        self.proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=_worker_env(), close_fds=True)

    @property
    def name(self) -> str:
        return f"worker process {self.index + 1} of {self.count} (pid {self.proc.pid})"

    def send_task(self, task: dict) -> None:
        self.task = task
        self.share = sum(len(ids) for todo in task["todo"] for ids in todo.values())
        try:
            self.proc.stdin.write(pickle.dumps(task))
            self.proc.stdin.flush()
        except OSError:
            pass  # it died: its end of file says so

    def go(self) -> None:
        self.tell(b"go")

    def tell(self, line: bytes) -> None:
        """One line down the worker's stdin ("go", then news of the embedded servers)."""
        try:
            self.proc.stdin.write(line + b"\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass  # it died (or is being stopped): its end of file says so

    def how_it_ended(self) -> str:
        from ragsafe.llm.server import describe_exit

        rc = self.proc.poll()
        return "still running" if rc is None else describe_exit(rc)


def _reap(workers: list[_Worker]) -> None:
    """The last guard: no worker outlives the execution that started it."""
    for w in workers:
        if w.proc.poll() is None:
            w.proc.kill()
        w.proc.wait()
        for f in (w.proc.stdin, w.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


def _worker_env() -> dict[str, str]:
    """The parent's environment, with this ragsafe first on the path (a worker imports the same code)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the folder that holds this ragsafe package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env[PARENT_ENV] = str(os.getpid())
    return env


class _Pool:
    """The parent's side: start the workers, wait until all are ready, start them together, then pass
    every record they send to the folder's writer and the progress display until all have ended."""

    def __init__(self, workers, jobs, pending, endpoints, cache, cells, reporter, watches, progress) -> None:
        self.workers: list[_Worker] = workers
        n = len(workers)
        self.jobs, self.n, self.reporter, self.watches, self.progress = jobs, n, reporter, watches, progress
        self.cells = {(i, c.variant.label): c for i, job in enumerate(jobs) for c in cells if c.job is job}
        self.cell_list = cells
        self.lines: dict[int, list[str]] = {}
        self.stores = {}
        self.seen_logs: set[str] = set()
        self.failure: BaseException | None = None
        self.tasks = _tasks(jobs, pending, endpoints, n, cache)
        self.cpu = 0.0

    # running

    def run(self) -> dict[str, float]:
        from ragsafe.experiments.store import RunStore

        for i, job in enumerate(self.jobs):
            self.stores[i] = RunStore(job.run_dir)
        per = self.tasks[0]["concurrency"]
        self.progress(f"starting {self.n} worker processes (questions round-robin; questions in flight per "
                      f"process: {', '.join(map(str, per))}, total {sum(per)}) ...")
        t_start = time.perf_counter()
        sel = selectors.DefaultSelector()
        try:
            for w, task in zip(self.workers, self.tasks):
                w.send_task(task)
                sel.register(w.proc.stdout.fileno(), selectors.EVENT_READ, w)
            self._pump(sel, until=lambda: all(w.ready or w.eof for w in self.workers))
            if self.failure is not None or not all(w.ready for w in self.workers):
                raise self.failure or self._died(next(w for w in self.workers if not w.ready))
            self.progress(f"{self.n} workers ready ({time.perf_counter() - t_start:.1f}s)")
            self.reporter.start(self.cell_list)
            try:
                t_exec, cpu0 = time.perf_counter(), time.process_time()
                for w in self.workers:
                    w.go()
                # the window ends with the last record on disk, when every worker has said it is done
                # (as one process's window does); a worker's interpreter teardown comes after it
                self._pump(sel, until=lambda: all(w.finished or w.eof for w in self.workers))
                self.cpu = time.process_time() - cpu0
                execute = time.perf_counter() - t_exec
                self._pump(sel, until=lambda: all(w.eof for w in self.workers))
                for w in self.workers:
                    w.proc.wait()
            finally:
                self.reporter.close()
        except BaseException:
            self._stop(sel)
            raise
        finally:
            sel.close()
        if self.failure is None:
            dead = [w for w in self.workers if not w.finished]
            if dead:
                self.failure = self._died(dead[0], others=len(dead) - 1)
        cpu = self.cpu + sum((w.stats or {}).get("cpu", 0.0) for w in self.workers)
        return {"execute": round(execute, 3), "cpu": round(cpu, 3)}

    def _pump(self, sel, until: Callable[[], bool], deadline: float | None = None) -> None:
        next_watch = time.monotonic() + 0.5
        while not until():
            if deadline is not None and time.monotonic() > deadline:
                return
            for key, _ in sel.select(timeout=0.5):
                w: _Worker = key.data
                data = os.read(key.fd, 1 << 20)
                if not data:
                    w.eof = True
                    sel.unregister(key.fd)
                    continue
                self._feed(w, data)
            self._flush()
            if self.failure is not None and deadline is None:
                raise self.failure
            if self.watches and time.monotonic() >= next_watch:
                next_watch = time.monotonic() + 0.5
                self._watch_servers()

    def _feed(self, w: _Worker, data: bytes) -> None:
        buf, pos = w.buf + data, 0
        while True:
            end = buf.find(b"\n", pos)
            if end < 0:
                break
            if w.header is None:
                h = json.loads(buf[pos:end])
                pos = end + 1
                if h["k"] == "r":
                    w.header = h
                else:
                    self._event(w, h)
                continue
            self._record(w, w.header, buf[pos:end + 1].decode("utf-8"))
            w.header = None
            pos = end + 1
        w.buf = buf[pos:]

    def _record(self, w: _Worker, h: dict, line: str) -> None:
        self.lines.setdefault(h["j"], []).append(line)
        w.received += 1
        cell = self.cells.get((h["j"], h["v"]))
        if cell is not None:
            self.reporter.advance(cell, _Done(h))

    def _event(self, w: _Worker, h: dict) -> None:
        k = h["k"]
        if k == "ready":
            w.ready = True
        elif k == "done":
            w.finished, w.stats = True, h
        elif k == "log":
            if h["m"] not in self.seen_logs:
                self.seen_logs.add(h["m"])
                self.progress(h["m"])
        elif k == "stop":
            cell = self.cells.get((h["j"], h["v"]))
            if cell is None:
                return
            if cell.stopped is None:
                cell.stopped = dict(h["why"])
                self.reporter.stopped(cell, h["m"])
            else:  # another worker stopped its part of the same variant
                cell.stopped["questions_not_run"] += h["why"]["questions_not_run"]
        elif k == "error":
            w.error = h
            if self.failure is None:
                msg = f"{w.name}: {h['m']}"
                self.failure = ConfigError(h["m"]) if h["kind"] == "config" else WorkerDied(msg)

    def _flush(self) -> None:
        for j, lines in self.lines.items():
            if lines:
                self.lines[j] = []
                self.stores[j].append_many(lines)

    def _watch_servers(self) -> None:
        import asyncio

        for name, watch in self.watches.items():
            if not watch.server.alive():
                for w in self.workers:  # so their failed requests wait for the restart, then are asked again
                    w.tell(json.dumps({"server": name, "down": True}).encode())
                asyncio.run(watch.recover(watch.generation))  # restarts it, or raises ServerDied
                for w in self.workers:
                    w.tell(json.dumps({"server": name, "generation": watch.generation}).encode())

    def _stop(self, sel) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after a grace period) and keep the records they sent."""
        for w in self.workers:
            if w.proc.poll() is None:
                try:
                    w.proc.terminate()
                except OSError:
                    pass
        deadline = time.monotonic() + STOP_GRACE_S
        for w in self.workers:
            try:
                w.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        try:  # what they sent before they stopped is computed: write it
            self._pump(sel, until=lambda: all(w.eof for w in self.workers), deadline=time.monotonic() + 2)
            self._flush()
        except BaseException:  # noqa: BLE001  (the error that stopped the run is the one to report)
            pass

    # after the run

    def _died(self, w: _Worker, others: int = 0) -> WorkerDied:
        left = w.share - w.received
        more = f" (and {others} other worker(s))" if others else ""
        return WorkerDied(f"{w.name}{more} ended ({w.how_it_ended()}) with {left} question(s) of its share not "
                          "answered; every record it finished is kept: run the same command to resume")

    def merge_stats(self, i: int, session) -> None:
        """The workers' calls, cache hits and what they learnt of the server, into the parent's session."""
        llm = session.llm
        for w in self.workers:
            st = ((w.stats or {}).get("sessions") or [None] * len(self.jobs))[i]
            if not st:
                continue
            llm.calls += st["calls"]
            llm.cache_hits += st["cache_hits"]
            llm.failed_attempts += st["failed_attempts"]
            llm.gate.caps.update(st["caps"])
            if st["logprobs_supported"] is not None:
                llm.logprobs_supported = bool(llm.logprobs_supported) or st["logprobs_supported"]

    def describe(self) -> dict[str, Any]:
        return {"workers": self.n, "concurrency": self.tasks[0]["concurrency"], "parent_cpu_seconds": round(self.cpu, 3),
                "worker_cpu_seconds": [round((w.stats or {}).get("cpu", 0.0), 3) for w in self.workers],
                "worker_questions": [w.share for w in self.workers]}

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure


def _tasks(jobs, pending, endpoints, n: int, cache: str) -> list[dict]:
    """What each worker is told: the jobs to plan again, its questions, its concurrency, the servers."""
    import dataclasses

    shares = [[{} for _ in jobs] for _ in range(n)]
    for j, job in enumerate(jobs):
        order = _share_order(job, pending[id(job)])
        mine = [set(order[i::n]) for i in range(n)]
        for label, qs in pending[id(job)].items():
            for i in range(n):
                shares[i][j][label] = [q.id for q in qs if q.id in mine[i]]
    split = {}
    for job in jobs:
        ep = job.endpoint
        if ep.name not in split:
            split[ep.name] = list(zip(split_total(ep.workers, n), split_total(ep.concurrency, n)))
    live = {name: {k: v for k, v in info.items() if k in ("base_url", "model", "context_window", "server_models")}
            for name, info in endpoints.items()}
    tasks = []
    for i in range(n):
        specs = []
        for j, job in enumerate(jobs):
            w, c = split[job.endpoint.name][i]
            specs.append({"cfg": job.cfg, "endpoint": dataclasses.replace(job.endpoint, workers=w, concurrency=c),
                          "shard": job.shard, "extra": job.extra, "config_hash": job.plan["config_hash"]})
        tasks.append({"jobs": specs, "todo": shares[i], "live": live, "cache": cache,
                      "watched": [name for name, info in endpoints.items() if info.get("server") is not None],
                      "plugins": sorted({p for job in jobs for p in job.extra.get("plugins", [])}),
                      "sys_path": [p for p in sys.path if p and Path(p).exists()],
                      "concurrency": [split[jobs[0].endpoint.name][k][0] for k in range(n)]})
    return tasks


# -- worker ----------------------------------------------------------------------------------------

NOTICE_S = 1.0
"""Seconds a worker whose request failed waits for word that the embedded server died (the parent
checks every 0.5 s) before it takes the failure as the request's own."""


class _ServerNews:
    """A worker's view of an embedded server its parent watches: the same face as
    :class:`~ragsafe.experiments.endpoints.ServerWatch` (``generation``, ``recover``, ``watch``), so a
    question whose request failed while the server was down is asked again once it is back."""

    def __init__(self) -> None:
        import asyncio

        self.generation = 0
        self.down = False
        self._changed = asyncio.Event()

    def note(self, news: dict) -> None:
        import asyncio

        if "generation" in news:
            self.generation, self.down = news["generation"], False
        else:
            self.down = True
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def watch(self) -> None:
        import asyncio

        await asyncio.Event().wait()  # the parent watches the process; news comes through note()

    async def recover(self, seen: int) -> bool:
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + NOTICE_S
        while self.generation == seen:
            left = None if self.down else deadline - loop.time()
            if left is not None and left <= 0:
                return False  # the server runs: the failure is the request's own
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                return False
        return True

class _Channel:
    """The worker's end of the pipe to its parent (its original stdout)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, header: dict, line: str | None = None) -> None:
        data = json.dumps(header, default=str).encode() + b"\n" + (line.encode("utf-8") if line else b"")
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]


class _PipeWriter:
    """Stands in for the folder writer in a worker: each record goes to the parent, which writes it."""

    def __init__(self, chan: _Channel, job_index: int) -> None:
        self.chan, self.j = chan, job_index

    def put(self, rec) -> None:
        from ragsafe.records import dump_sample_line

        err = rec.error.to_dict() if rec.error is not None else None
        self.chan.send({"k": "r", "j": self.j, "v": rec.variant, "q": rec.question_id, "l": rec.letter,
                        "c": rec.correct, "s": rec.seconds, "e": err}, dump_sample_line(rec))

    async def close(self, *, raise_error: bool = True) -> None:
        pass


def _guard(parent: int) -> None:
    """Die with the parent, however it dies (the embedded server's guard, for this process)."""
    import threading

    from ragsafe.llm import orphan_guard

    orphan_guard._set_pdeathsig()
    if os.getppid() != parent:
        os._exit(0)
    threading.Thread(target=orphan_guard._watch, args=(parent,), name="orphan-guard", daemon=True).start()


def worker_main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent stops us
    chan = _Channel(os.dup(1))
    os.dup2(2, 1)  # a stray print goes to stderr, never into the record stream
    inp = sys.stdin.buffer
    _guard(int(os.environ.get(PARENT_ENV) or os.getppid()))
    # what every worker needs, imported while the parent still sets up (the task comes when it is done)
    import ragsafe.experiments.execute  # noqa: F401
    import ragsafe.experiments.plan  # noqa: F401
    import ragsafe.graphs  # noqa: F401

    try:
        task = pickle.load(inp)
    except EOFError:
        return 0  # the parent stopped before it had work for us
    try:
        _work(task, chan, inp)
        return 0
    except BaseException as e:  # noqa: BLE001  (told to the parent, which stops the run)
        from ragsafe.config import DiskFull

        kind = "config" if isinstance(e, ConfigError) else "disk" if isinstance(e, DiskFull) else "crash"
        if kind == "crash":
            import traceback

            traceback.print_exc()
        try:
            chan.send({"k": "error", "kind": kind, "type": type(e).__name__, "m": str(e) or type(e).__name__})
        except OSError:
            pass
        return 1


def _work(task: dict, chan: _Channel, inp) -> None:
    import asyncio

    sys.path[:0] = [p for p in task["sys_path"] if p not in sys.path]
    from ragsafe.experiments import execute as ex
    from ragsafe.experiments.plan import prepare
    from ragsafe.experiments.progress import Reporter
    from ragsafe.llm.gate import Gate
    from ragsafe.plugins import load_plugins

    load_plugins(task["plugins"])
    jobs = []
    for spec in task["jobs"]:
        job = prepare(spec["cfg"], endpoint=spec["endpoint"], shard=spec["shard"], extra=spec["extra"])
        if job.plan["config_hash"] != spec["config_hash"]:
            raise ConfigError(f"the worker planned {job.plan['config_hash'][:12]} where its parent planned "
                              f"{spec['config_hash'][:12]} (did a benchmark or corpus file change?); run again")
        jobs.append(job)
    live: dict[str, dict] = {}
    for job in jobs:
        ep = job.endpoint
        if ep.name not in live:
            info = task["live"][ep.name]
            live[ep.name] = {**info, "gate": Gate([info["base_url"], *ep.replicas], ep.concurrency), "server": None}

    def say(msg: str) -> None:
        chan.send({"k": "log", "m": msg})

    quiet = lambda msg: None  # noqa: E731  (the parent said it all while it set up)
    indexes = ex.IndexCache(quiet)
    response_cache = ex._open_response_cache(task["cache"])
    sessions = [ex.start_session(job, live[job.endpoint.name], indexes, response_cache, task["cache"], quiet,
                                 write=False) for job in jobs]
    pending = {}
    for job, todo in zip(jobs, task["todo"]):
        ids = {label: set(v) for label, v in todo.items()}
        pending[id(job)] = {v.label: [q for q in job.questions if q.id in ids.get(v.label, ())]
                            for v in job.plan["variants"]}
    cells = ex.build_cells(sessions, pending, quiet)
    index_of: dict[Path, int] = {}
    for j, job in enumerate(jobs):
        index_of.setdefault(job.run_dir, j)
    job_index = {id(job): index_of[job.run_dir] for job in jobs}

    class Stops(Reporter):
        def stopped(self, cell, message: str) -> None:
            chan.send({"k": "stop", "j": job_index[id(cell.job)], "v": cell.variant.label, "why": cell.stopped,
                       "m": message})

    chan.send({"k": "ready"})
    if inp.readline().strip() != b"go":
        return  # the parent gave up before the start
    t, cpu = time.perf_counter(), time.process_time()
    reporter = Stops()
    reporter.progress = say
    watches = {name: _ServerNews() for name in task["watched"]}

    async def execute() -> None:
        loop = asyncio.get_running_loop()

        def listen() -> None:  # the parent's news of the embedded servers, until it closes the pipe
            for line in inp:
                try:
                    news = json.loads(line)
                except ValueError:
                    continue
                if news.get("server") in watches:
                    loop.call_soon_threadsafe(watches[news["server"]].note, news)

        import threading

        threading.Thread(target=listen, name="server-news", daemon=True).start()
        await ex._execute(ex.lanes_for(cells), reporter, [s.llm for s in sessions], watches,
                          open_writer=lambda d: _PipeWriter(chan, index_of[d]))

    if cells:
        reporter.start(cells)
        with ex.lean_gc():
            asyncio.run(execute())
    chan.send({"k": "done", "execute": round(time.perf_counter() - t, 3), "cpu": round(time.process_time() - cpu, 3),
               "sessions": [{"calls": s.llm.calls, "cache_hits": s.llm.cache_hits,
                             "failed_attempts": s.llm.failed_attempts, "caps": dict(s.llm.gate.caps),
                             "logprobs_supported": s.llm.logprobs_supported} for s in sessions]})


if __name__ == "__main__":
    rc = worker_main()
    # every record is sent and every cache entry committed (the cache commits each write): skip the
    # interpreter's teardown of what a worker loaded (torch, chromadb, LangGraph), which only costs time
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
