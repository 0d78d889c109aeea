"""Orchestration overhead: standard_rag (LangGraph) vs a plain Python loop making the same calls.

Both arms use one ``LLM`` client against the loopback fake server (fixed latency, no compute) and
the same in-memory retriever (fixed chunks, no compute), so what differs is only the graph
machinery: state, nodes, tracing. The loop does what standard_rag does by hand: search, join the
chunks, build the paper's prompt, one chat call, parse the letter. A third arm runs the whole
runner (records appended and fsynced) over closed_book against a loop doing the same calls.

    python benchmarks/orchestration.py [--latency 0.05] [--reps 5] [--slow-latency 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fake_server, header, median, table  # noqa: E402

os.environ.setdefault("RAGSAFE_NO_CACHE", "1")


class FixedRetriever:
    """Returns the same k chunks for every query, at no cost."""

    name = "fixed"

    def __init__(self) -> None:
        from langchain_core.documents import Document

        text = ("Acute appendicitis: a dilated non-compressible appendix over 6 mm with periappendiceal fat "
                "stranding. ") * 4
        self.docs = [Document(page_content=f"{text} (chunk {i})", id=f"d{i}#c0",
                              metadata={"doc_id": f"d{i}", "chunk_id": f"d{i}#c0"}) for i in range(10)]

    async def search(self, query: str, k: int):
        from ragsafe.retrievers.base import annotate

        return annotate(self.docs[:k], [1.0 - i / 100 for i in range(k)])

    def describe(self):
        return {"kind": "fixed"}


async def _bounded(items, c, fn):
    sem = asyncio.Semaphore(c)

    async def one(x):
        async with sem:
            return await fn(x)

    return await asyncio.gather(*(one(x) for x in items))


def graph_arm(url: str, questions, c: int, k: int) -> tuple[float, float]:
    from ragsafe.experiments.execute import lean_gc
    from ragsafe.graphs import Deps, graphs
    from ragsafe.llm.client import LLM
    async def go() -> float:
        llm = LLM(url, "fake", cache=None)
        deps = Deps(llm=llm, retriever=FixedRetriever())
        spec = graphs.get("standard_rag")
        app = spec.build(deps, spec.make_params({"k": str(k)}))
        t0, c0 = time.perf_counter(), time.process_time()
        await _bounded(questions, c, lambda q: app.ainvoke({"question": q, "queries": [], "trace": []}))
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        await llm.aclose()
        return dt, cpu

    with lean_gc():  # as the runner executes graphs (both arms get it)
        return asyncio.run(go())


def loop_arm(url: str, questions, c: int, k: int) -> tuple[float, float]:
    from ragsafe.agents.answer import CHUNK_SEPARATOR, TOP_LOGPROBS, build_messages
    from ragsafe.agents.parse import parse_letter
    from ragsafe.experiments.execute import lean_gc
    from ragsafe.llm.client import LLM
    async def go() -> float:
        llm = LLM(url, "fake", cache=None)
        retriever = FixedRetriever()

        async def one(q):
            docs = await retriever.search(q.question, k)
            context = CHUNK_SEPARATOR.join(d.page_content.strip() for d in docs)
            comp = await llm.chat(build_messages(q.question, q.options, context), temperature=0.0,
                                  max_tokens=10, top_logprobs=TOP_LOGPROBS, seed=0)
            return parse_letter(comp.text, list(q.options))

        t0, c0 = time.perf_counter(), time.process_time()
        await _bounded(questions, c, one)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        await llm.aclose()
        return dt, cpu

    with lean_gc():
        return asyncio.run(go())


def runner_arm(url: str, n: int, c: int, tmp: Path) -> tuple[float, float]:
    from ragsafe.config import EndpointConfig
    from ragsafe.experiments.config import RunConfig
    from ragsafe.experiments.execute import run
    from ragsafe.experiments.store import RunStore

    out = tmp / f"r{time.monotonic_ns()}"
    d = run(RunConfig(graphs=["closed_book"], limit=n, out=str(out), cache="off", concurrency=c, bootstrap_B=10,
                      endpoint=EndpointConfig(base_url=url, model="fake")), progress=lambda m: None)
    rec = RunStore(d).read_run()
    shutil.rmtree(out)
    return rec["execute_seconds_last_session"], rec["execute_cpu_seconds_last_session"]


def closed_loop_arm(url: str, questions, c: int) -> tuple[float, float]:
    from ragsafe.agents.answer import TOP_LOGPROBS, build_messages
    from ragsafe.experiments.execute import lean_gc
    from ragsafe.llm.client import LLM
    async def go() -> float:
        llm = LLM(url, "fake", cache=None)

        async def one(q):
            return await llm.chat(build_messages(q.question, q.options, None), temperature=0.0, max_tokens=10,
                                  top_logprobs=TOP_LOGPROBS, seed=0)

        t0, c0 = time.perf_counter(), time.process_time()
        await _bounded(questions, c, one)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        await llm.aclose()
        return dt, cpu

    with lean_gc():
        return asyncio.run(go())


class _BareState(TypedDict, total=False):
    question: object
    queries: list
    trace: Annotated[list, operator.add]
    letter: str


def floor_table(reps: int, n: int = 2000) -> list[list[str]]:
    """CPU per invocation with no I/O at all: a bare two-node LangGraph graph (LangGraph's own cost)
    and standard_rag over an instant in-process LLM and the fixed retriever (LangGraph + ragsafe)."""
    from langgraph.graph import END, START, StateGraph

    from ragsafe.corpora.benchmark import load_benchmark
    from ragsafe.experiments.execute import lean_gc
    from ragsafe.graphs import Deps, graphs
    from ragsafe.llm.client import Completion
    async def first(state):
        return {"trace": [1]}

    async def second(state):
        return {"trace": [2], "letter": "A"}

    bare = (StateGraph(_BareState).add_sequence([first, second])
            .add_edge(START, "first").add_edge("second", END).compile())

    class InstantLLM:
        model = "instant"
        logprobs_supported = None

        async def chat(self, messages, **params):
            return Completion(text="A", model="instant", prompt_tokens=1, completion_tokens=1,
                              request={"model": "instant", "messages": messages, **params})

    spec = graphs.get("standard_rag")
    rag = spec.build(Deps(llm=InstantLLM(), retriever=FixedRetriever()), spec.make_params({"k": "5"}))
    qs = load_benchmark("demo").select()

    def cpu_per_call(app) -> float:
        async def go() -> float:
            for q in qs[:50]:
                await app.ainvoke({"question": q, "queries": [], "trace": []})
            c0 = time.process_time()
            for i in range(n):
                await app.ainvoke({"question": qs[i % len(qs)], "queries": [], "trace": []})
            return (time.process_time() - c0) / n * 1000

        with lean_gc():
            return asyncio.run(go())

    rows = []
    for label, app in (("bare two-node LangGraph graph", bare), ("standard_rag, instant LLM and retriever", rag)):
        rows.append([label, f"{median([cpu_per_call(app) for _ in range(reps)]):.3f}"])
    return rows


def _row(label: str, latency: str, loop: list[tuple[float, float]], ours: list[tuple[float, float]],
         n: int) -> list[str]:
    lw, ow = median([x[0] for x in loop]), median([x[0] for x in ours])
    lc, oc = median([x[1] for x in loop]), median([x[1] for x in ours])
    return [label, latency, f"{lw:.3f}", f"{ow:.3f}", f"{ow / lw:.3f}", f"{lc / n * 1000:.2f}", f"{oc / n * 1000:.2f}"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--slow-latency", type=float, default=0.5,
                    help="also compare at concurrency 32 with this server latency (0: skip)")
    a = ap.parse_args()
    from ragsafe.corpora.benchmark import load_benchmark
    questions = load_benchmark("demo").select()
    header(f"Orchestration overhead (demo questions, repeated to 16 per unit of concurrency; fake server "
           f"{a.latency * 1000:.0f} ms per request{f' ({a.slow_latency * 1000:.0f} ms in the last row)' if a.slow_latency else ''}"
           f", medians of {a.reps})")
    rows = []
    ms = f"{a.latency * 1000:.0f} ms"
    with fake_server(a.latency) as url, tempfile.TemporaryDirectory() as tmp:
        loop_arm(url, questions[:8], 8, a.k)  # warm-up
        for c in (1, 8, 32):
            qs = (questions * (1 + 16 * c // len(questions)))[:max(len(questions), 16 * c)]
            g, lp = [], []
            for _ in range(a.reps):  # alternate the arms so drifting machine load hits both alike
                lp.append(loop_arm(url, qs, c, a.k))
                g.append(graph_arm(url, qs, c, a.k))
            rows.append(_row(f"standard_rag graph vs loop, {len(qs)} questions, concurrency {c}", ms, lp, g, len(qs)))
        for c in (1, 8):
            r, lp = [], []
            for _ in range(a.reps):
                lp.append(closed_loop_arm(url, questions, c))
                r.append(runner_arm(url, len(questions), c, Path(tmp)))
            rows.append(_row(f"runner (closed_book, records on disk) vs loop, {len(questions)} questions, "
                             f"concurrency {c}", ms, lp, r, len(questions)))
    if a.slow_latency:
        # the same comparison at concurrency 32 when requests take as long as a small model's answer
        c, ms = 32, f"{a.slow_latency * 1000:.0f} ms"
        qs = (questions * (1 + 16 * c // len(questions)))[:16 * c]
        with fake_server(a.slow_latency) as url:
            g, lp = [], []
            for _ in range(a.reps):
                lp.append(loop_arm(url, qs, c, a.k))
                g.append(graph_arm(url, qs, c, a.k))
            rows.append(_row(f"standard_rag graph vs loop, {len(qs)} questions, concurrency {c}", ms, lp, g, len(qs)))
    table(["arm", "server latency", "plain loop s", "ragsafe s", "ratio", "loop CPU ms/question",
           "ragsafe CPU ms/question"], rows)
    print("CPU per graph invocation with no I/O (what a graph costs before any request is sent):\n")
    table(["graph", "CPU ms per invocation"], floor_table(a.reps))
    print("ratio = ragsafe time / plain-loop time for the same LLM calls with the same client; target <= 1.05. "
          "CPU = this process's CPU time per question (the client side: HTTP, graph machinery, records).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
