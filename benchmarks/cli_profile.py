"""Where the CLI path's CPU goes: `ragsafe run --graph closed_book` profiled over its execute window.

Each concurrency runs ``ragsafe run ... --concurrency c --no-cache`` in a subprocess (stdout and
stderr on a pty, as on a terminal) against ``tests/fault_server.py`` in its own process, with a
profiler switched on only around ``execute_cells`` (first question dispatched to last record on
disk). Functions are grouped by the file they live in; built-ins (``isinstance``, ``fsync``,
``socket.send`` ...) count for the group of the function that called them. Shares are of profiled
self time, and ms/question scales them to the run's measured window CPU (run.json, unprofiled
cost, taken from a second, unprofiled run right after).

yappi (CPU clock, every thread: the record writer runs on a worker thread) is used when installed
(``pip install yappi``); otherwise cProfile, which sees the event-loop thread only, so the writer's
serialisation and fsync are missing from its table. A profiler slows Python calls unevenly: read the
shares, not the sums.

    python benchmarks/cli_profile.py [--levels 8,32,64] [--n 640]    # about 2 minutes
"""

from __future__ import annotations

import argparse
import collections
import json
import pstats
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fake_server, header, table  # noqa: E402
from cli_path import _env, _spawn, ragsafe_cmd, write_questions  # noqa: E402

GROUPS = [
    ("LangGraph / langchain-core (invocation, channels, tasks, callbacks)",
     ("site-packages/langgraph", "site-packages/langchain_core", "site-packages/langsmith", "uuid_utils", "/uuid.py",
      "/dataclasses.py", "/typing.py", "/abc.py", "<frozen abc>", "_weakrefset.py", "<string>")),
    ("ragsafe nodes, prompt and parse (graphs/, agents/)", ("ragsafe/graphs", "ragsafe/agents")),
    ("ragsafe LLM client (llm/)", ("ragsafe/llm",)),
    ("HTTP: aiohttp, yarl, multidict, orjson", ("site-packages/aiohttp", "site-packages/yarl", "site-packages/multidict",
                                               "site-packages/propcache", "orjson")),
    ("records: build, validate, serialise, write + fsync", ("ragsafe/records.py", "ragsafe/experiments/store.py",
                                                            "site-packages/pydantic", "/json/")),
    ("runner: workers, cells, writer hand-off (execute.py)", ("ragsafe/experiments/execute.py",)),
    ("progress display (progress.py, rich)", ("ragsafe/experiments/progress.py", "site-packages/rich")),
    ("event loop, selectors, threads (asyncio)", ("/asyncio/", "/selectors.py", "/threading.py", "/concurrent/",
                                                  "/queue.py", "/contextlib.py", "/functools.py")),
]
BUILTIN = ("~", "builtins", "posix", "_socket", "select", "_contextvars", "_asyncio", "time", "_thread", "_queue")

LAUNCHER = r'''
import os, sys
prof_out, kind = os.environ["RAGSAFE_PROFILE_OUT"], os.environ["RAGSAFE_PROFILE_KIND"]
import ragsafe.experiments.execute as ex
inner = ex.execute_cells
def profiled(*a, **k):
    if kind == "yappi":
        import yappi
        yappi.set_clock_type("cpu"); yappi.start(builtins=True)
        try:
            return inner(*a, **k)
        finally:
            yappi.stop(); yappi.get_func_stats().save(prof_out, type="pstat")
    import cProfile
    p = cProfile.Profile()
    p.enable()
    try:
        return inner(*a, **k)
    finally:
        p.disable(); p.dump_stats(prof_out)
ex.execute_cells = profiled
from ragsafe.cli.main import main
sys.argv = ["ragsafe"] + sys.argv[1:]
sys.exit(main())
'''


def group_of(filename: str) -> str:
    for name, keys in GROUPS:
        if any(k in filename for k in keys):
            return name
    return "other"


def _builtin(filename: str) -> bool:
    return filename in BUILTIN or filename.startswith("<method") or filename.startswith("<built-in")


def split(stats_path: Path) -> dict[str, float]:
    """Self time per group (a built-in's self time goes to its callers' groups, in proportion)."""
    st = pstats.Stats(str(stats_path)).stats
    out: collections.Counter = collections.Counter()
    for (fn, _line, _name), (_cc, _nc, tt, _ct, callers) in st.items():
        if _builtin(fn):
            total = sum(v[2] if isinstance(v, tuple) else 0 for v in callers.values()) or 0
            if not callers or total <= 0:
                out["other"] += tt
                continue
            for (cfn, _l, _n), v in callers.items():
                out[group_of(cfn)] += tt * v[2] / total
        else:
            out[group_of(fn)] += tt
    return dict(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--levels", default="8,32,64")
    ap.add_argument("--n", type=int, default=640)
    a = ap.parse_args()
    try:
        import yappi  # noqa: F401

        kind = "yappi"
    except ImportError:
        kind = "cprofile"
    levels = [int(x) for x in a.levels.split(",")]
    header(f"CPU split of `ragsafe run --graph closed_book` over its execute window ({a.n} synthetic questions, "
           f"fake server {a.latency * 1000:.0f} ms, profiler {kind})")
    shares: dict[int, dict[str, float]] = {}
    window: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="ragsafe-cli-profile-") as tmp_s, fake_server(a.latency) as url:
        tmp = Path(tmp_s)
        qfile = tmp / "synthetic_mcq.jsonl"
        write_questions(qfile, a.n)
        launcher = tmp / "launch.py"
        launcher.write_text(LAUNCHER)
        for c in levels:
            args = ["run", "--graph", "closed_book", "--concurrency", str(c), "--no-cache", "--base-url", url,
                    "--model", "fake", "--benchmark", str(qfile)]
            env = _env(tmp)
            prof = tmp / f"prof-{c}.pstat"
            env.update(RAGSAFE_PROFILE_OUT=str(prof), RAGSAFE_PROFILE_KIND=kind)
            rc, text, _ = _spawn([sys.executable, str(launcher), *args, "--out", str(tmp / f"p{c}")], env, True)
            if rc:
                raise RuntimeError(text[-3000:])
            rc, text, _ = _spawn(ragsafe_cmd() + args + ["--out", str(tmp / f"u{c}")], _env(tmp), True)
            if rc:
                raise RuntimeError(text[-3000:])
            run = json.loads(next((tmp / f"u{c}").rglob("run.json")).read_text())
            window[c] = run["execute_cpu_seconds_last_session"] / a.n * 1000
            parts = split(prof)
            total = sum(parts.values())
            shares[c] = {k: v / total for k, v in parts.items()}
            shutil.rmtree(tmp / f"p{c}", ignore_errors=True)
            shutil.rmtree(tmp / f"u{c}", ignore_errors=True)
    names = [g for g, _ in GROUPS] + ["other"]
    rows = []
    for g in names:
        rows.append([g] + [f"{shares[c].get(g, 0):.0%} ({shares[c].get(g, 0) * window[c]:.2f})" for c in levels])
    rows.append(["**window CPU, unprofiled run (ms/question)**"] + [f"{window[c]:.2f}" for c in levels])
    table(["share of profiled self time (ms/question)"] + [f"c={c}" for c in levels], rows)
    if kind == "cprofile":
        print("cProfile sees the event-loop thread only: the writer thread's serialisation and fsync are not in "
              "this table (install yappi for every thread).\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
