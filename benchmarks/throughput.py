"""Throughput at concurrency 1, 8, 32, 64 as a fraction of ideal, against a fixed-latency fake server.

Ideal = ceil(N / c) x latency: c requests always in flight, zero overhead. Three arms:

* bare: the same N requests from a minimal aiohttp loop (a semaphore, one session): the ceiling
  this fake server and loopback allow, so the ragsafe arms can be read against it;
* client: N chat calls through ``ragsafe.llm.client.LLM`` with its gate bounding requests in flight at c;
* sweep: a whole sweep (closed_book, one call per question; records appended and fsynced, scored)
  through ``run_sweep`` with endpoint ``concurrency: c``: the time from the first question to the
  last record on disk (``execute_seconds_last_session`` of the run record; setup and scoring,
  which do not grow with the number of questions, are excluded).

The fake server runs in its own process (loopback, no compute) so it has a core of its own.

    python benchmarks/throughput.py [--latency 0.05] [--reps 5]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fake_server, header, median, table  # noqa: E402

os.environ.setdefault("RAGSAFE_NO_CACHE", "1")


def bare_arm(url: str, c: int, n: int) -> float:
    import aiohttp

    async def go() -> float:
        sem = asyncio.Semaphore(c)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            async def one(i: int) -> None:
                async with sem:
                    async with s.post(f"{url}/chat/completions",
                                      json={"model": "fake", "messages": [{"role": "user", "content": f"question {i}"}],
                                            "temperature": 0.0, "max_tokens": 10, "seed": 0}) as r:
                        await r.read()

            t0 = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(n)))
            return time.perf_counter() - t0

    return asyncio.run(go())


def client_arm(url: str, c: int, n: int) -> float:
    from ragsafe.llm.client import LLM
    llm = LLM(url, "fake", max_in_flight=c, cache=None)

    async def go() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(llm.chat([{"role": "user", "content": f"question {i}"}]) for i in range(n)))
        dt = time.perf_counter() - t0
        await llm.aclose()
        return dt

    return asyncio.run(go())


def sweep_arm(url: str, c: int, seeds: int, tmp: Path) -> tuple[float, int]:
    import yaml

    from ragsafe.experiments.store import RunStore
    from ragsafe.experiments.sweep import load_sweep, run_sweep
    out = tmp / f"out-{c}-{time.monotonic_ns()}"
    p = tmp / "sweep.yaml"
    p.write_text(yaml.safe_dump({"benchmark": "demo", "seeds": list(range(seeds)), "out": str(out),
                                 "graphs": ["closed_book"], "bootstrap": {"B": 10},
                                 "endpoints": [{"model": "fake", "base_url": url, "concurrency": c}]}))
    dirs = run_sweep(load_sweep(p), cache="off", progress=lambda m: None)
    wall = max(RunStore(d).read_run()["execute_seconds_last_session"] for d in dirs)
    n = sum(len(RunStore(d).samples()) for d in dirs)
    shutil.rmtree(out)
    return wall, n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--levels", default="1,8,32,64")
    a = ap.parse_args()
    header(f"Throughput vs ideal (fake server, {a.latency * 1000:.0f} ms per request, medians of {a.reps})")
    rows = []
    with fake_server(a.latency) as url, tempfile.TemporaryDirectory() as tmp:
        client_arm(url, 8, 64)  # warm-up: imports, connections
        for c in [int(x) for x in a.levels.split(",")]:
            n = max(72, 16 * c)
            ideal = math.ceil(n / c) * a.latency
            t_bare, t_cl = [], []
            for _ in range(a.reps):  # alternate the arms so drifting machine load hits both alike
                t_bare.append(bare_arm(url, c, n))
                t_cl.append(client_arm(url, c, n))
            t_bare, t_client = median(t_bare), median(t_cl)
            seeds = max(1, math.ceil(16 * c / 72))  # 72 demo questions per seed
            runs = [sweep_arm(url, c, seeds, Path(tmp)) for _ in range(a.reps)]
            t_sweep = median([r[0] for r in runs])
            n_sweep = runs[0][1]
            # the sweep's questions are spread over one run per seed, all in one lane
            ideal_sweep = math.ceil(n_sweep / c) * a.latency
            rows.append([c, n, f"{ideal:.2f}", f"{ideal / t_bare:.2f}", f"{t_client:.2f}", f"{ideal / t_client:.2f}",
                         n_sweep, f"{ideal_sweep:.2f}", f"{t_sweep:.2f}", f"{ideal_sweep / t_sweep:.2f}"])
    table(["concurrency", "client requests", "ideal s", "bare aiohttp / ideal", "client s", "client / ideal",
           "sweep samples", "ideal s", "sweep s", "sweep / ideal"], rows)
    print("fraction of ideal = ideal time / measured time (1.00 = no overhead); target >= 0.90 at 32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
