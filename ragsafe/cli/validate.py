"""`ragsafe validate`: check a benchmark (a RadSaFE pair as two paths) or corpora; every problem names
file, line, record and field. Exit 0 valid (warnings allowed), 1 invalid, 2 usage."""

from __future__ import annotations

from pathlib import Path

from ragsafe.cli.common import plugin_args
from ragsafe.config import ConfigError


def _print_problems(problems) -> None:
    for p in problems:
        print(f"{'error' if p.severity == 'error' else 'warning'}: {p}")


def _benchmark_spec(a) -> str:
    """One benchmark spec from ``validate``'s paths: a registered name, a file spec, or a RadSaFE pair."""
    from ragsafe.corpora.benchmark import benchmarks
    from ragsafe.corpora.loaders import is_file_spec

    paths = list(a.paths or []) or [a.benchmark]
    if a.labels:
        paths.append(a.labels)
    if len(paths) > 2:
        raise ConfigError("validate takes one benchmark: a path, FORMAT:PATH, a manifest, or a RadSaFE pair "
                          "UNIFIED.jsonl LABELS.json (check several benchmarks with one command each)")
    for p in paths:
        if p in benchmarks:
            continue
        files = p.partition(":")[2] if is_file_spec(p) and ":" in p and not Path(p).exists() else p
        missing = [f for f in (files.split("+") if not Path(files).exists() else [files]) if f and not Path(f).exists()]
        if missing:
            raise ConfigError(f"{missing[0]}: no such file or folder, and no registered benchmark of that name "
                              f"(registered: {', '.join(benchmarks.names())})")
    if len(paths) == 2:
        if a.map:
            raise ConfigError("--map reads one file; a RadSaFE pair needs no mapping")
        return f"radsafe:{paths[0]}+{paths[1]}"
    from ragsafe.cli.common import benchmark_spec

    return benchmark_spec(paths[0], a.map)


def cmd_validate(a) -> int:
    """Exit 0 valid (warnings allowed), 1 invalid, 2 usage (argparse and ConfigError)."""
    from ragsafe.corpora.errors import DataError

    if a.corpus:
        from ragsafe.corpora.documents import check_corpus

        if a.labels or a.graph:
            raise ConfigError("--corpus checks corpora only; --labels and --graph are for benchmarks")
        bad = False
        for spec in a.paths or ["demo"]:
            try:
                chk = check_corpus(spec)
            except DataError as e:
                print(f"error: {e}")
                bad = True
                continue
            _print_problems(chk.problems)
            print(chk.summary())
            bad |= bool(chk.errors)
        return 1 if bad else 0
    from ragsafe.corpora.benchmark import load_benchmark

    spec = _benchmark_spec(a)
    try:
        bench = load_benchmark(spec)
    except DataError as e:
        print(f"error: {e}")
        print(f"{spec}: invalid, nothing loaded")
        return 1
    _print_problems(bench.problems)
    if getattr(bench, "mapping", None) is not None:  # a mapped file: what was read from where, and one record
        print("mapped fields:\n" + bench.mapping.describe())
        if bench.questions:
            from ragsafe.corpora.formats.mapped import preview

            print("first record as ragsafe reads it:\n  " + preview(bench.questions[0]).replace("\n", "\n  "))
    print(bench.summary())
    bad = bool(bench.errors) or not bench.questions
    if a.graph:
        from ragsafe.experiments.plan import condition_problems
        from ragsafe.experiments.variants import resolve_variants

        for mod in a.graph_module or []:
            from ragsafe.graphs import load_graph_module

            load_graph_module(mod)
        for v in resolve_variants(a.graph, [], []):
            cannot = condition_problems(bench, bench.questions, [v])
            needs = " (retrieves from --corpus: check it with `ragsafe validate --corpus`)" \
                if v.spec.retrieves(v.params) else ""
            if cannot:
                bad = True
                print(f"graph {v.label}: cannot run {len(cannot)} of {len(bench.questions)} question(s){needs}:")
                for p in cannot:
                    print(f"  {p}")
            else:
                print(f"graph {v.label}: can run all {len(bench.questions)} question(s){needs}")
    return 1 if bad else 0


def register(sub) -> None:
    p = sub.add_parser("validate", help="check a benchmark or corpus; every problem names file, line, record and "
                       "field; exit 0 valid (warnings allowed), 1 invalid, 2 usage")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="benchmark file, FORMAT:PATH, manifest or registered name; two paths are a RadSaFE pair "
                   "(UNIFIED.jsonl LABELS.json); with --corpus, corpora (folder, .jsonl dump or name)")
    p.add_argument("--benchmark", default="demo", help="registered benchmark or file spec when no PATH is given")
    p.add_argument("--labels", default=None, metavar="LABELS", help="RadSaFE labels JSON joined with PATH")
    p.add_argument("--corpus", action="store_true", help="PATHs are corpora: read every document, embed nothing")
    p.add_argument("--graph", action="append", default=[], metavar="NAME",
                   help="also list the questions this graph cannot run and why; repeat")
    p.add_argument("--graph-module", action="append", help="module or .py file with your own @graph factories")
    p.add_argument("--map", default=None, metavar="KEY=FIELD,...",
                   help="read PATH through a field mapping (see `ragsafe run --help`; keys in corpora/formats/mapped.py)")
    plugin_args(p)
    p.set_defaults(fn=cmd_validate)
