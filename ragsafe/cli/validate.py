"""`ragsafe validate`: check a benchmark; every problem names file, line, record and field."""

from __future__ import annotations


def cmd_validate(a) -> int:
    from ragsafe.corpora.benchmark import load_benchmark

    bench = load_benchmark(a.path or a.benchmark)
    for p in bench.problems:
        print(p)
    print(bench.summary())
    return 1 if bench.errors else 0


def register(sub) -> None:
    p = sub.add_parser("validate", help="check a benchmark; every problem names file, line, record and field")
    p.add_argument("path", nargs="?", default=None, help="benchmark file or folder (default: --benchmark)")
    p.add_argument("--benchmark", default="demo", help="registered benchmark name or a path (default demo)")
    p.set_defaults(fn=cmd_validate)
