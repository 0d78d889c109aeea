"""`ragsafe run`: graphs over a benchmark, one run folder, scored; the endpoint flags live here."""

from __future__ import annotations

import argparse

from ragsafe.cli.common import (
    MAP_HELP,
    benchmark_spec,
    cache_args,
    cache_mode,
    chroma_args,
    plugin_args,
    split_arg,
    split_of,
)
from ragsafe.config import AnswerPolicy, ConfigError, EndpointConfig
from ragsafe.defaults import DEFAULT_MODEL
from ragsafe.retrievers.registry import BUILTIN as RETRIEVERS
from ragsafe.retrievers.registry import DEFAULT as RETRIEVER_DEFAULT


def endpoint_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpoint")
    g.add_argument("--base-url", default="local",
                   help="OpenAI-compatible base URL (vLLM, llama.cpp, Ollama); 'local' (default) starts the embedded server")
    g.add_argument("--model", default=None,
                   help=f"model id on the server; with 'local', an embedded model (default {DEFAULT_MODEL})")
    g.add_argument("--api-key-env", default=None, help="environment variable holding the API key (never stored)")
    g.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, seconds")
    g.add_argument("--max-retries", type=int, default=4,
                   help="retries on connection errors, timeouts, 429 and 5xx (default 4)")
    g.add_argument("--context-window", "--n-ctx", dest="context_window", type=int, default=None,
                   help="model context size in tokens; with 'local', the n_ctx the embedded server starts with "
                   "(default: the model's trained context, capped at 8192)")
    g = p.add_argument_group("answer policy")
    g.add_argument("--answer-mode", default="generate", choices=["generate", "letter_logprobs"],
                   help="generate: free text, strict letter parse (the paper's); letter_logprobs: the letters' "
                        "logprobs")
    g.add_argument("--max-tokens", type=int, default=None,
                   help="answer budget in tokens (default: the paper's 10, or 4096 with --reasoning)")
    g.add_argument("--reasoning", action="store_true",
                   help="a reasoning model: answer budget 4096 (the paper's) unless --max-tokens says otherwise")
    g.add_argument("--seed", type=int, default=0, help="sampling seed sent to the server")


def endpoint_of(a: argparse.Namespace) -> EndpointConfig:
    if a.base_url != "local" and not a.model:
        raise ConfigError("--base-url needs --model NAME (the model id the server serves)")
    return EndpointConfig(base_url=a.base_url, model=a.model or DEFAULT_MODEL, api_key_env=a.api_key_env,
                          timeout=a.timeout, max_retries=a.max_retries, context_window=a.context_window)


def answer_policy_of(a: argparse.Namespace) -> AnswerPolicy:
    from ragsafe.config import answer_budget

    reasoning = bool(getattr(a, "reasoning", False))
    return AnswerPolicy(answer_mode=a.answer_mode, max_tokens=answer_budget(reasoning, a.max_tokens), seed=a.seed,
                        reasoning=reasoning)


def cmd_run(a) -> int:
    from ragsafe.evals.reports.text import text_table
    from ragsafe.experiments.config import RunConfig
    from ragsafe.experiments.procs import parse_procs, run
    from ragsafe.experiments.store import RunStore
    from ragsafe.llm.errors import EndpointUnreachable

    cfg = RunConfig(graphs=a.graph, sets=a.set or [], grids=a.grid or [], benchmark=benchmark_spec(a.benchmark, a.map), corpus=a.corpus,
                    split=split_of(a), limit=a.limit, endpoint=endpoint_of(a), answer=answer_policy_of(a),
                    out=a.out, chroma_path=a.chroma_path, chroma_url=a.chroma_url, poison=a.poison, chunk_size=a.chunk_size,
                    chunk_overlap=a.chunk_overlap, chunk_tokenizer=a.chunk_tokenizer, **_embedder_kw(a),
                    concurrency=a.concurrency, procs=parse_procs(a.procs), skip_invalid=a.skip_invalid,
                    allow_errors=a.allow_errors, retry_errors=a.retry_errors, graph_modules=a.graph_module or [],
                    plugins=a.plugin or [], retriever=a.retriever, cache=cache_mode(a))
    try:
        run_dir = run(cfg)
        if a.parser != "strict":  # the paper's LLM-judge re-read, inline
            from ragsafe.cli.judge import run_judge

            run_judge(a, run_dir)
    except EndpointUnreachable as e:
        raise ConfigError(str(e)) from None
    if a.parser == "strict":
        summary = RunStore(run_dir).read_summary()
    else:  # "both": strict letters scored, agreement shown; "judge": the judge's letters scored
        from ragsafe.evals.score import score_run_dir

        summary = score_run_dir(run_dir, letters="judge" if a.parser == "judge" else "strict")
    print(text_table(summary))
    from ragsafe.cli.evals import _print_safety

    _print_safety(summary)
    print(f"\nrun folder: {run_dir}")
    return report_stops([run_dir])


def report_stops(run_dirs) -> int:
    """1 (and one line each) when a variant of these runs was stopped early by repeated errors, else 0."""
    import sys

    from ragsafe.experiments.store import RunStore

    stops = [(d, label, why) for d in run_dirs for label, why in
             (RunStore(d).read_run().get("stopped_variants") or {}).items()]
    for d, label, why in stops:
        print(f"ragsafe: variant {label} of {d} stopped after {why['after_errors']} {why['kind']} error(s) with "
              f"{why['questions_not_run']} question(s) not run; fix: {why['fix']}", file=sys.stderr)
    return 1 if stops else 0


def _embedder_kw(a) -> dict:
    from ragsafe.cli.common import embedder_config

    emb = embedder_config(a)
    return {"embedder": emb} if emb is not None else {}


PROCS_HELP = ("worker processes the questions are split over, or auto (one per core); default {default}. "
              "One run folder (the same as with 1), one progress display, the same records. Concurrency is a "
              "total: each process gets its share of it (8 over 2 processes: 4 each), so the server sees the "
              "bound it was given; the embedded server is started once and shared")


def procs_arg(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--procs", default=default, metavar="N|auto",
                   help=PROCS_HELP.format(default=default or "the sweep file's procs:, else 1"))


def register(sub) -> None:
    p = sub.add_parser("run", help="run graphs over a benchmark and score them")
    p.add_argument("--graph", action="append", required=True, help="graph name or name[key=value,...]; repeat")
    p.add_argument("--set", action="append", help="graph.param=value; repeat")
    p.add_argument("--grid", action="append", help="graph.param=v1,v2,...: one variant per value; repeat")
    plugin_args(p, graph_module=True)
    p.add_argument("--retriever", default=RETRIEVER_DEFAULT, metavar="NAME_OR_module:factory",
                   help=f"what retrieving graphs search: a registered retriever ({', '.join(RETRIEVERS)}; "
                        "NAME[key=value,...] sets its params; plugins add more), or module:factory / file.py:factory "
                        "returning a langchain-core BaseRetriever (called with any of docs, chunks, store, dense, "
                        f"params). Default {RETRIEVER_DEFAULT}")
    p.add_argument("--benchmark", default="demo", help="registered benchmark name or a path (default demo)")
    p.add_argument("--map", default=None, metavar="KEY=FIELD,...", help=MAP_HELP)
    split_arg(p)
    p.add_argument("--limit", type=int, default=None, help="first N questions in id order (after --split)")
    p.add_argument("--out", default="runs", help="folder that holds run folders (default runs)")
    p.add_argument("--concurrency", type=int, default=1,
                   help="questions in flight at once, in total over all --procs processes (default 1)")
    procs_arg(p, default="1")
    p.add_argument("--skip-invalid", action="store_true",
                   help="run without the benchmark's invalid records (their ids are recorded) instead of refusing")
    p.add_argument("--allow-errors", action="store_true",
                   help="report metrics for variants with error samples (errors counted as null)")
    p.add_argument("--retry-errors", action="store_true", help="run again the samples that ended in an error")
    p.add_argument("--poison", default=None, metavar="conflict|FILE",
                   help="index the corpus plus misleading documents marked as poison, in a collection of its own: "
                        "'conflict' (each question's conflict evidence) or a JSONL file (id, text[, title, question_id])")
    p.add_argument("--parser", default="strict", choices=["strict", "judge", "both"],
                   help="letters from the strict parser (default), the LLM judge (ragsafe rejudge, inline), or both "
                        "(strict scored, judge agreement shown)")
    cache_args(p)
    chroma_args(p)
    endpoint_args(p)
    from ragsafe.cli.judge import judge_args

    judge_args(p, required=False)
    p.set_defaults(fn=cmd_run)
