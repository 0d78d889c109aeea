"""The command a user runs, against the bare-aiohttp ceiling: `ragsafe run` and `ragsafe sweep` in a
subprocess (progress on, on a pseudo-terminal), beside the library arms, at concurrency 8, 32, 64.

Every arm answers the same N MCQ questions (default 640, a synthetic file written into a temp
folder for this benchmark: placeholder text, not clinical content) against ``tests/fault_server.py``
run as its own process (fixed latency, default 50 ms). Each arm runs in a fresh process of its own,
and the arms alternate within each repetition, so drifting machine load hits them alike:

* ``bare``: a minimal aiohttp loop (a semaphore, one session): the ceiling of this server and loopback;
* ``client``: the same requests through ``ragsafe.llm.client.LLM`` (its gate bounding requests in flight);
* ``library``: ``ragsafe.experiments.execute.run`` of closed_book in-process, progress off;
* ``cli run``: ``ragsafe run --graph closed_book --concurrency c --no-cache ...``, stdout and stderr on a
  pty (the live progress table a terminal shows);
* ``cli run (log)``: the same with stderr a pipe (a line per question: what a log or CI sees);
* ``cli sweep``: ``ragsafe sweep FILE --no-cache`` (closed_book, one seed, endpoint ``concurrency: c``), on a pty;
* ``cli run --procs 2``: only when ``ragsafe run`` has ``--procs`` (the pty, at each concurrency).

Times: ``bare`` and ``client`` from their first request to their last reply; the ragsafe arms from
the run record's execute window (``execute_seconds_last_session`` in run.json: first question
dispatched to last record on disk; Python start-up, planning and scoring excluded: they do not
grow with the number of questions). Fraction of ideal = ``ceil(N/c) x latency`` / that time.

CPU per question: user+sys over questions, in the same window (``execute_cpu_seconds_last_session``
for the ragsafe arms: every thread of the process), and for the whole process including start-up and
scoring (``getrusage(RUSAGE_CHILDREN)`` around the subprocess). CPU does not depend on how the two
cores are shared with the server, so it is the figure to read on a busy machine.

The periodic check (on by default) also runs ``cli run`` and ``bare`` at c = 32 against a second
server 4x slower: the same work over a longer window, so CPU that grows with wall time rather than
with questions shows as (CPU_slow - CPU_fast) / (window_slow - window_fast), in CPU-seconds per
second; the bare loop's figure is what the machine adds by itself.

    python benchmarks/cli_path.py                       # 5 repetitions, about 12 minutes on 2 cores
    python benchmarks/cli_path.py --reps 1 --levels 32  # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, fake_server, header, median, table  # noqa: E402

ARMS = ("bare", "client", "library", "cli run", "cli run (log)", "cli sweep", "cli run --procs 2")
PTY_ARMS = ("cli run", "cli sweep", "cli run --procs 2")


def write_questions(path: Path, n: int) -> None:
    """N four-option MCQ records, written for this benchmark (placeholder text, not clinical content)."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"synthetic-{i:04d}",
                                "question": f"Synthetic benchmark question {i} (written for ragsafe's cli_path "
                                            "benchmark; not clinical content): which option is marked correct?",
                                "options": {"A": f"option one of {i}", "B": f"option two of {i}",
                                            "C": f"option three of {i}", "D": f"option four of {i}"},
                                "answer": "ABCD"[i % 4]}) + "\n")


# -- arms run inside a worker process (python cli_path.py --worker ARM ...) ----------------------

def _questions(qfile: str) -> list[str]:
    return [json.loads(line)["question"] for line in open(qfile, encoding="utf-8")]


def worker_bare(url: str, c: int, qfile: str) -> dict:
    import aiohttp

    texts = _questions(qfile)

    async def go() -> tuple[float, float]:
        sem = asyncio.Semaphore(c)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            async def one(text: str) -> None:
                async with sem:
                    async with s.post(f"{url}/chat/completions",
                                      json={"model": "fake", "messages": [{"role": "user", "content": text}],
                                            "temperature": 0.0, "max_tokens": 10, "seed": 0}) as r:
                        await r.read()

            await asyncio.gather(*(one(t) for t in texts[:c]))  # warm-up: connections
            t0, c0 = time.perf_counter(), time.process_time()
            await asyncio.gather(*(one(t) for t in texts))
            return time.perf_counter() - t0, time.process_time() - c0

    wall, cpu = asyncio.run(go())
    return {"seconds": wall, "cpu": cpu, "n": len(texts)}


def worker_client(url: str, c: int, qfile: str) -> dict:
    from ragsafe.llm.client import LLM

    texts = _questions(qfile)
    llm = LLM(url, "fake", max_in_flight=c, cache=None)

    async def go() -> tuple[float, float]:
        await asyncio.gather(*(llm.chat([{"role": "user", "content": t}]) for t in texts[:c]))
        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(llm.chat([{"role": "user", "content": t}], seed=1) for t in texts))
        out = time.perf_counter() - t0, time.process_time() - c0
        await llm.aclose()
        return out

    wall, cpu = asyncio.run(go())
    return {"seconds": wall, "cpu": cpu, "n": len(texts)}


def worker_library(url: str, c: int, qfile: str, out: str) -> dict:
    from ragsafe.config import EndpointConfig
    from ragsafe.experiments.config import RunConfig
    from ragsafe.experiments.execute import run

    d = run(RunConfig(graphs=["closed_book"], benchmark=qfile, endpoint=EndpointConfig(base_url=url, model="fake"),
                      concurrency=c, cache="off", out=out, bootstrap_B=200), progress=lambda m: None)
    return _window([d])


class _FloorState(TypedDict, total=False):
    question: Any
    letter: str


def worker_floor(n: int = 3000, c: int = 32) -> dict:
    """LangGraph's own CPU per invocation: a one-node graph whose node returns at once, no I/O."""
    from langgraph.graph import END, START, StateGraph

    from ragsafe.experiments.execute import lean_gc

    async def node(state: _FloorState) -> dict:
        return {"letter": "A"}

    app = StateGraph(_FloorState).add_node("answer", node).add_edge(START, "answer").add_edge("answer", END).compile()

    async def go() -> float:
        for i in range(100):
            await app.ainvoke({"question": i})
        c0 = time.process_time()
        for i in range(0, n, c):
            await asyncio.gather(*(app.ainvoke({"question": j}) for j in range(i, i + c)))
        return time.process_time() - c0

    with lean_gc():
        cpu = asyncio.run(go())
    return {"seconds": cpu, "cpu": cpu, "n": n}


def _window(dirs: list[Path]) -> dict:
    from ragsafe.experiments.store import RunStore

    runs = [RunStore(d).read_run() for d in dirs]
    n = sum(len(RunStore(d).samples()) for d in dirs)
    return {"seconds": max(r.execute_seconds_last_session for r in runs),
            "cpu": sum(r.execute_cpu_seconds_last_session for r in runs), "n": n}


def run_worker(a: argparse.Namespace) -> int:
    if a.worker == "bare":
        res = worker_bare(a.url, a.c, a.qfile)
    elif a.worker == "client":
        res = worker_client(a.url, a.c, a.qfile)
    elif a.worker == "floor":
        res = worker_floor()
    else:
        res = worker_library(a.url, a.c, a.qfile, a.out)
    print(json.dumps(res))
    return 0


# -- the parent: subprocesses, pty, rusage -------------------------------------------------------

def _env(tmp: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(RAGSAFE_HOME=str(tmp / "home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", COLUMNS="120",
               LINES="40", TERM=env.get("TERM") or "xterm-256color")
    return env


def ragsafe_cmd() -> list[str]:
    """The console script next to this interpreter (what a user types), else ``python -m``."""
    exe = shutil.which("ragsafe", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "ragsafe.cli.main"]


def _spawn(cmd: list[str], env: dict, pty_out: bool) -> tuple[int, str, float]:
    """Run ``cmd``; return (exit code, its stdout, CPU seconds of it and its children)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if pty_out:
        import fcntl
        import pty
        import struct
        import termios

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        chunks: list[bytes] = []

        def drain() -> None:  # a terminal reads what the program writes
            while True:
                try:
                    b = os.read(master, 65536)
                except OSError:
                    return
                if not b:
                    return
                chunks.append(b)

        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        t = threading.Thread(target=drain, daemon=True)
        t.start()
        rc = p.wait()
        t.join(10)
        os.close(master)
        out = b"".join(chunks).decode("utf-8", "replace")
    else:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=env)
        rc, out = p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return rc, out, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def run_arm(arm: str, url: str, c: int, qfile: Path, tmp: Path) -> dict:
    out = tmp / f"out-{time.monotonic_ns()}"
    env = _env(tmp)
    me = [sys.executable, str(Path(__file__).resolve()), "--url", url, "--c", str(c), "--qfile", str(qfile)]
    if arm in ("bare", "client", "library", "floor"):
        rc, text, cpu_proc = _spawn(me + ["--worker", arm, "--out", str(out)], env, False)
        if rc:
            raise RuntimeError(f"{arm} failed:\n{text[-3000:]}")
        res = json.loads(text.strip().splitlines()[-1])
    else:
        if arm == "cli sweep":
            import yaml

            sweep = tmp / f"sweep-{c}.yaml"
            sweep.write_text(yaml.safe_dump({
                "benchmark": str(qfile), "seeds": [0], "out": str(out), "graphs": ["closed_book"],
                "bootstrap": {"B": 200}, "endpoints": [{"model": "fake", "base_url": url, "concurrency": c}]}))
            cmd = ragsafe_cmd() + ["sweep", str(sweep), "--no-cache"]
        else:
            cmd = ragsafe_cmd() + ["run", "--graph", "closed_book", "--concurrency", str(c), "--no-cache",
                                   "--base-url", url, "--model", "fake", "--benchmark", str(qfile), "--out", str(out)]
            if arm == "cli run --procs 2":
                cmd += ["--procs", "2"]
        rc, text, cpu_proc = _spawn(cmd, env, arm in PTY_ARMS)
        if rc:
            raise RuntimeError(f"{arm} failed (exit {rc}):\n{text[-3000:]}")
        dirs = sorted(p.parent for p in out.rglob("run.json"))
        res = _window(dirs)
    res["cpu_proc"] = cpu_proc
    shutil.rmtree(out, ignore_errors=True)
    return res


def has_procs() -> bool:
    p = subprocess.run(ragsafe_cmd() + ["run", "--help"], capture_output=True, text=True, env=_env(Path(tempfile.gettempdir())))
    return "--procs" in p.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--levels", default="8,32,64")
    ap.add_argument("--n", type=int, default=640, help="questions per arm (default 640)")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of: " + ", ".join(ARMS))
    ap.add_argument("--no-periodic", dest="periodic", action="store_false",
                    help="skip the run at 4x the latency (CPU that grows with wall time)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--url", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--c", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--qfile", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return run_worker(a)

    arms = [x.strip() for x in a.arms.split(",") if x.strip()]
    unknown = set(arms) - set(ARMS)
    if unknown:
        ap.error(f"unknown arm(s) {sorted(unknown)}; choose from {', '.join(ARMS)}")
    if "cli run --procs 2" in arms and not has_procs():
        arms.remove("cli run --procs 2")
        procs_note = "`--procs` is not on `ragsafe run` in this tree: that arm is left out."
    else:
        procs_note = ""
    levels = [int(x) for x in a.levels.split(",")]
    header(f"The CLI path vs the bare-aiohttp ceiling ({a.n} questions, fake server {a.latency * 1000:.0f} ms "
           f"per request in its own process, medians of {a.reps})")
    print(f"command under test: `{' '.join(Path(x).name if i == 0 else x for i, x in enumerate(ragsafe_cmd()))} run "
          f"--graph closed_book --concurrency C --no-cache --base-url URL --model fake --benchmark FILE --out DIR` "
          f"(and `sweep FILE --no-cache`), stdout and stderr on a pty\n")
    res: dict[tuple[str, int], list[dict]] = {}
    slow: list[tuple[dict, dict]] = []
    floor: list[dict] = []
    slow_bare: list[tuple[dict, dict]] = []
    with tempfile.TemporaryDirectory(prefix="ragsafe-cli-path-") as tmp_s, fake_server(a.latency) as url, \
            (fake_server(a.latency * 4) if a.periodic else _null()) as slow_url:
        tmp = Path(tmp_s)
        qfile = tmp / "synthetic_mcq.jsonl"
        write_questions(qfile, a.n)
        run_arm("cli run", url, 8, qfile, tmp)  # warm-up: imports from disk into the page cache, .pyc files
        for rep in range(a.reps):
            for c in levels:
                for arm in arms:
                    res.setdefault((arm, c), []).append(run_arm(arm, url, c, qfile, tmp))
            floor.append(run_arm("floor", url, 32, qfile, tmp))
            if a.periodic:
                slow.append((run_arm("cli run", url, 32, qfile, tmp), run_arm("cli run", slow_url, 32, qfile, tmp)))
                slow_bare.append((run_arm("bare", url, 32, qfile, tmp), run_arm("bare", slow_url, 32, qfile, tmp)))
            print(f"repetition {rep + 1}/{a.reps} done; load average {_load()}", file=sys.stderr, flush=True)

    rows, bare = [], {}
    for c in levels:
        ideal = math.ceil(a.n / c) * a.latency
        for arm in arms:
            rs = res[(arm, c)]
            frac = median([ideal / r["seconds"] for r in rs])
            cpu_q = median([r["cpu"] / r["n"] * 1000 for r in rs])
            proc_q = median([r["cpu_proc"] / r["n"] * 1000 for r in rs])
            if arm == "bare":
                bare[c] = (frac, cpu_q)
            b = bare.get(c)
            bound = min(1.0, (2 if "procs 2" in arm else 1) * a.latency * 1000 / (c * cpu_q))
            rows.append([c, arm, f"{frac:.2f}", f"{frac / b[0]:.2f}" if b else "-", f"{cpu_q:.2f}",
                         f"{cpu_q / b[1]:.1f}x" if b else "-", f"{proc_q:.2f}", f"{bound:.2f}"])
    table(["concurrency", "arm", "fraction of ideal", "of bare", "CPU ms/question (window)", "of bare",
           "CPU ms/question (whole process)", "CPU bound on the fraction"], rows)
    print("window: bare/client first request to last reply; ragsafe arms the run record's execute window. "
          "Whole process: start-up, planning and scoring included. CPU bound: one process handles at most "
          "1/t questions a second with t CPU-seconds each, so its fraction of ideal cannot exceed "
          "latency / (c x t), even with a core to itself.\n")
    if procs_note:
        print(procs_note + "\n")

    if "bare" in arms:
        print("Targets (issue 16):\n")
        checks = []
        for arm in [x for x in arms if x.startswith("cli ")]:
            for c in levels:
                r = res[(arm, c)]
                cpu_q = median([x["cpu"] / x["n"] * 1000 for x in r])
                checks.append([f"{arm}: CPU/question <= 2x bare at c={c}", f"{cpu_q / bare[c][1]:.1f}x",
                               "met" if cpu_q <= 2 * bare[c][1] else "not met"])
        for arm, c in (("cli run", 32), ("cli run --procs 2", 64)):
            if arm in arms and c in levels:
                ideal = math.ceil(a.n / c) * a.latency
                f = median([ideal / r["seconds"] for r in res[(arm, c)]]) / bare[c][0]
                checks.append([f"{arm}: >= 0.85 of bare at c={c}", f"{f:.2f}", "met" if f >= 0.85 else "not met"])
        table(["target", "measured", ""], checks)
        lg = median([r["cpu"] / r["n"] * 1000 for r in floor])
        for c in levels:
            print(f"c={c}: a one-node LangGraph graph whose node returns at once costs {lg:.2f} ms of CPU per "
                  f"invocation here (no I/O); with the bare loop's {bare[c][1]:.2f} ms per request, a question "
                  f"that is a LangGraph invocation costs at least {lg + bare[c][1]:.2f} ms = "
                  f"{(lg + bare[c][1]) / bare[c][1]:.1f}x the bare loop.")
        print()

    if slow:
        print(f"CPU that grows with wall time (c=32, {a.latency * 1000:.0f} ms vs {a.latency * 4000:.0f} ms per request, "
              f"the same {a.n} questions; medians of {len(slow)} pairs):\n")
        prow = []
        for label, pairs in (("cli run", slow), ("bare", slow_bare)):
            d_cpu = median([(s_["cpu"] - f["cpu"]) for f, s_ in pairs])
            d_wall = median([(s_["seconds"] - f["seconds"]) for f, s_ in pairs])
            per_s = median([(s_["cpu"] - f["cpu"]) / (s_["seconds"] - f["seconds"]) for f, s_ in pairs])
            prow.append([label, f"+{d_wall:.2f}", f"{d_cpu:+.3f}", f"{per_s:+.3f}"])
        table(["arm", "window s (slow - fast)", "CPU s (slow - fast)", "CPU-s per second of run"], prow)
        print("The bare loop's row is the machine's share: the same work spread over a longer window costs more CPU "
              "when the process sleeps between replies (caches and the vCPU go cold), with no timer running.\n")
    return 0


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    sys.exit(main())
