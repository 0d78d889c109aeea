"""Command line: the parser and the entry point. Each command group is a module of ragsafe/cli/ with
``register(subparsers)`` (its flags) and thin ``cmd_*`` functions (args -> config -> library call)."""

from __future__ import annotations

import argparse
import os
import sys

from ragsafe.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    from ragsafe.cli import data, evals, graphs, index, models, run, runs, validate

    ap = argparse.ArgumentParser(prog="ragsafe", description="Agentic-RAG safety experiments (SaFE-Scale metrics)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for group in (models, index, graphs, validate, run, data, evals, runs):
        group.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    a = build_parser().parse_args(argv)
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
