"""Command line: the parser and the entry point. Each command group is a module of ragsafe/cli/ with
``register(subparsers)`` (its flags) and thin ``cmd_*`` functions (args -> config -> library call)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from ragsafe.cli.common import load_plugin_args
from ragsafe.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    from ragsafe.cli import data, evals, graphs, index, judge, models, run, runs, validate

    ap = argparse.ArgumentParser(prog="ragsafe", description="Agentic-RAG safety experiments (SaFE-Scale metrics)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for group in (models, index, graphs, validate, run, data, evals, judge, runs):
        group.register(sub)
    return ap


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is so every ``with`` block (run folder locks,
    the embedded server) unwinds as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, _frame) -> None:
    raise Stopped(signum)


def _raise_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def stop_on_signals() -> dict:
    """Turn SIGTERM and SIGHUP into :class:`Stopped`, and SIGINT into KeyboardInterrupt raised where
    the program is; return the handlers they had.

    SIGINT gets a handler of ours too. A process started in the background by a non-interactive
    shell (``cmd &`` in a script, ``nohup``) inherits SIGINT ignored, and Python then leaves it
    ignored: ``kill -INT`` did nothing and the run went on to its end (seen here when the test suite
    itself ran in the background: the SIGINT tests of a run and of ``--procs`` failed). Raised like
    SIGTERM, it unwinds every ``with`` block the same way, whatever the shell did.
    """
    old = {}
    for name, handler in (("SIGTERM", _raise_stopped), ("SIGHUP", _raise_stopped), ("SIGINT", _raise_interrupt)):
        sig = getattr(signal, name, None)
        if sig is not None:
            old[sig] = signal.signal(sig, handler)
    return old


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    a = build_parser().parse_args(argv)
    from ragsafe.config import DiskFull
    from ragsafe.experiments.endpoints import ServerDied
    from ragsafe.experiments.procs import WorkerDied
    from ragsafe.llm.errors import RequestFailed

    old_handlers = stop_on_signals() if threading.current_thread() is threading.main_thread() else {}
    try:
        load_plugin_args(a)
        return a.fn(a)
    except (DiskFull, ServerDied, WorkerDied) as e:  # the run stopped; what it finished is kept
        print(f"ragsafe: error: {e}", file=sys.stderr)
        return 1
    except RequestFailed as e:  # outside a run (an index's embeddings, a probe): the URL, fault and attempts
        print(f"ragsafe: error: {e}", file=sys.stderr)
        return 1
    except (ConfigError, KeyError, FileNotFoundError, ValueError) as e:
        from ragsafe.registry import UnknownName

        if isinstance(e, KeyError) and not isinstance(e, UnknownName):
            raise
        print(f"ragsafe: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        how = f"stopped by {e}" if isinstance(e, Stopped) else "interrupted"
        print(f"ragsafe: {how}; finished records are kept, run the same command to resume", file=sys.stderr)
        return 128 + (e.signum if isinstance(e, Stopped) else signal.SIGINT)
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
