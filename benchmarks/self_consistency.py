"""Self-consistency with and without the ``n`` request parameter: requests per question and samples/s.

One question set (the demo benchmark), N = 20 samples per question (the paper's), through the
``self_consistency`` graph (inner ``closed_book``: one greedy answer, then 20 sampled answers)
against the loopback fake server in vLLM's flavour, which answers ``n`` with n choices and seeds
choice ``j`` with ``seed + j`` as vLLM does. Two arms on the same server:

* ``n``: the client sends each question's 20 samples as one request (``seed=s, n=20``);
* ``single``: the client sends 20 requests (``use_n=False``), seeds ``s .. s+19``.

Both arms must give the same ballots for every question (checked; the script fails otherwise).
The fake server's latency is the same for a request with n=20 as for n=1: a real server spends
more time on 20 choices than on one (it shares the prompt's prefill and batches the decodes), so
the samples/s ratio here is the client-side and round-trip saving, not a server speed-up.

    python benchmarks/self_consistency.py [--latency 0.05] [--questions-in-flight 8] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fake_server, header, median, server_stats, table  # noqa: E402

os.environ.setdefault("RAGSAFE_NO_CACHE", "1")
N = 20


def arm(url: str, use_n: bool, in_flight: int) -> tuple[float, int, dict[str, list]]:
    """(seconds, completion requests, ballots by question) for the whole question set."""
    from ragsafe.config import AnswerPolicy
    from ragsafe.corpora.benchmark import load_benchmark
    from ragsafe.graphs import Deps, graphs
    from ragsafe.llm.client import LLM

    questions = load_benchmark("demo").questions
    spec = graphs.get("self_consistency")
    before = server_stats(url)["requests"]

    async def go() -> tuple[float, dict]:
        llm = LLM(url, "fake", use_n=use_n, max_in_flight=64)
        app = spec.build(Deps(llm=llm, policy=AnswerPolicy(seed=0)), spec.make_params({"n": N}))
        sem = asyncio.Semaphore(in_flight)
        out: dict[str, list] = {}

        async def one(q) -> None:
            async with sem:
                st = await app.ainvoke({"question": q, "queries": [], "trace": []})
                out[q.id] = st["sc"]["ballots"]

        t0 = time.perf_counter()
        await asyncio.gather(*(one(q) for q in questions))
        dt = time.perf_counter() - t0
        await llm.aclose()
        return dt, out

    dt, ballots = asyncio.run(go())
    return dt, server_stats(url)["requests"] - before, ballots


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.05, help="fake server seconds per request")
    ap.add_argument("--questions-in-flight", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    header("Self-consistency: one request with n=20 vs twenty requests")
    rows = []
    with fake_server(a.latency, flavor="vllm") as url:
        results = {}
        for name, use_n in (("n", True), ("single", False)):
            runs = [arm(url, use_n, a.questions_in_flight) for _ in range(a.reps)]
            results[name] = runs
        nq = len(results["n"][0][2])
        for name, runs in results.items():
            secs = median([r[0] for r in runs])
            reqs = runs[0][1]
            rows.append([name, str(nq), f"{reqs / nq:.1f}", f"{N * nq / secs:.0f}", f"{secs:.2f}"])
        same = all(r[2] == results["n"][0][2] for runs in results.values() for r in runs)
    table(["arm", "questions", "requests/question (1 greedy + samples)", "samples/s (median)",
           f"seconds (median of {a.reps})"], rows)
    print(f"same ballots in both arms for every question: {same}; fake latency {a.latency * 1000:.0f} ms per "
          f"request whatever n; {a.questions_in_flight} questions in flight")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
