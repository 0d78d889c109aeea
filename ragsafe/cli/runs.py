"""CLI subcommands for experiments at scale: sweep, runs list/show/merge."""

from __future__ import annotations

import json

from ragsafe.cli.common import cache_args, cache_mode, plugin_args
from ragsafe.config import ConfigError


def _overrides(items: list[str]) -> dict:
    """``--set key=value`` for top-level sweep keys; values are read as YAML scalars (5 is a number)."""
    import yaml

    from ragsafe.experiments.config import parse_assignments

    return {k: yaml.safe_load(v) if v else v for k, v in parse_assignments(items, "--set")}


def _embedder(a, sweep):
    """The sweep file's embedder with the command line's embedder flags on top (None: the file's)."""
    from ragsafe.cli.common import embedder_config, embedder_given

    return embedder_config(a, base=sweep.base.get("embedder")) if embedder_given(a) else None


def cmd_sweep(a) -> int:
    from ragsafe.experiments.shards import Shard
    from ragsafe.experiments.sweep import dry_run, format_dry_run, load_sweep, run_sweep
    sweep = load_sweep(a.file, _overrides(a.set or []))
    if a.procs is not None:  # not in the sweep's hash: how many processes answer does not change an answer
        from ragsafe.experiments.procs import parse_procs

        sweep.base["procs"] = parse_procs(a.procs)
    shard = Shard.parse(a.shard) if a.shard else None
    cache = cache_mode(a)
    if a.dry_run:
        jobs = sweep.jobs(shard=shard, cache=cache, retry_errors=a.retry_errors, out=a.out, embedder=_embedder(a, sweep))
        rows, totals = dry_run(jobs, retry_errors=a.retry_errors, judge=sweep.parser != "strict")
        if a.json:
            print(json.dumps({"cells": rows, "totals": totals}, indent=2))
        else:
            print(format_dry_run(sweep, rows, totals, shard))
        return 0
    from ragsafe.llm.errors import EndpointUnreachable
    try:
        dirs = run_sweep(sweep, shard=shard, cache=cache, retry_errors=a.retry_errors,
                         allow_errors=True if a.allow_errors else None, out=a.out, embedder=_embedder(a, sweep),
                         plugins=[*(getattr(a, "graph_module", None) or []), *(a.plugin or [])])
    except EndpointUnreachable as e:
        raise ConfigError(str(e)) from None
    from ragsafe import records
    from ragsafe.evals.reports.text import text_table
    from ragsafe.experiments.store import RunStore

    for d in dirs:
        judged = d / "summary.judge.json"
        summary = (records.read_summary(judged) if sweep.parser == "judge" and judged.exists()
                   else RunStore(d).read_summary())
        print(f"\n== {d}" + (" (the judge's letters)" if sweep.parser == "judge" else ""))
        if summary:
            print(text_table(summary))
    print(f"\n{len(dirs)} run folder(s); `ragsafe runs list --root {a.out or sweep.base['out']}` lists them")
    from ragsafe.cli.run import report_stops

    return report_stops(dirs)


def cmd_runs_list(a) -> int:
    from ragsafe.experiments.index import RunIndex, format_table, to_json

    rows = RunIndex(a.root).list(graph=a.graph, model=a.model, since=a.since, until=a.until)
    print(to_json(rows) if a.json else format_table(rows))
    return 0


def cmd_runs_show(a) -> int:
    from ragsafe.experiments.index import RunIndex, show

    print(show(RunIndex(a.root).find(a.run)))
    return 0


def cmd_runs_merge(a) -> int:
    from ragsafe.experiments.shards import merge_shards
    for d in merge_shards(a.sources, a.out, partial=a.partial):
        print(f"merged {d}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run endpoints x graph variants x seeds from a YAML/TOML sweep file")
    p.add_argument("file", help="sweep file (.yaml, .yml or .toml)")
    p.add_argument("--dry-run", action="store_true", help="print the cells and the LLM calls expected; run nothing")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="replace a top-level key of the file, e.g. --set benchmark=demo --set limit=5 (repeatable)")
    p.add_argument("--json", action="store_true", help="with --dry-run: print JSON")
    p.add_argument("--shard", default=None, metavar="i/N", help="run slice i of N (questions round-robin by id order)")
    p.add_argument("--out", default=None, help="folder of run folders (default: the file's out, else runs)")
    from ragsafe.cli.run import procs_arg

    procs_arg(p, default=None)
    cache_args(p)
    p.add_argument("--retry-errors", action="store_true", help="run again only the samples that ended in an error")
    p.add_argument("--allow-errors", action="store_true", help="report metrics for variants with error samples")
    from ragsafe.cli.common import embedder_args

    embedder_args(p)
    plugin_args(p)
    p.set_defaults(fn=cmd_sweep)

    p = sub.add_parser("runs", help="list, show and merge run folders")
    rsub = p.add_subparsers(dest="runs_cmd", required=True)
    q = rsub.add_parser("list", help="runs under a folder, newest first")
    q.add_argument("--root", default="runs", help="folder that holds the run folders (default runs)")
    q.add_argument("--graph", default=None, help="only runs with this graph (name or variant label)")
    q.add_argument("--model", default=None, help="only runs of this model id")
    q.add_argument("--since", default=None, help="started on or after this date (YYYY-MM-DD or ISO time)")
    q.add_argument("--until", default=None, help="started before the end of this date")
    q.add_argument("--json", action="store_true", help="print the rows as JSON")
    q.set_defaults(fn=cmd_runs_list)
    q = rsub.add_parser("show", help="one run: config, progress, summary")
    q.add_argument("run", help="run folder, its name, or a prefix of its name or config hash")
    q.add_argument("--root", default="runs", help="folder that holds the run folders (default runs)")
    q.set_defaults(fn=cmd_runs_show)
    q = rsub.add_parser("merge", help="merge shard run folders into the run an unsharded sweep makes")
    q.add_argument("sources", nargs="+", help="shard run folders, or folders holding them")
    q.add_argument("--out", required=True, help="folder for the merged run folders")
    q.add_argument("--partial", action="store_true", help="merge even when some shards are missing")
    q.set_defaults(fn=cmd_runs_merge)
