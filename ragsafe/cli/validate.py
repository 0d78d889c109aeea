"""`ragsafe validate`: check a benchmark; every problem names file, line, record and field."""

from __future__ import annotations


def cmd_validate(a) -> int:
    from ragsafe.cli.common import benchmark_spec
    from ragsafe.corpora.benchmark import load_benchmark

    bench = load_benchmark(benchmark_spec(a.path or a.benchmark, a.map))
    for p in bench.problems:
        print(p)
    if bench.mapping is not None:  # a mapped file: what was read from where, and one record as ragsafe reads it
        print("mapped fields:\n" + bench.mapping.describe())
        if bench.questions:
            from ragsafe.corpora.formats.mapped import preview

            print("first record as ragsafe reads it:\n  " + preview(bench.questions[0]).replace("\n", "\n  "))
    print(bench.summary())
    return 1 if bench.errors else 0


def register(sub) -> None:
    p = sub.add_parser("validate", help="check a benchmark; every problem names file, line, record and field")
    p.add_argument("path", nargs="?", default=None, help="benchmark file or folder (default: --benchmark)")
    p.add_argument("--benchmark", default="demo", help="registered benchmark name or a path (default demo)")
    p.add_argument("--map", default=None, metavar="KEY=FIELD,...",
                   help="read PATH through a field mapping (see `ragsafe run --help`; keys in corpora/formats/mapped.py)")
    p.set_defaults(fn=cmd_validate)
