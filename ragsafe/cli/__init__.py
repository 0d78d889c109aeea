"""Command line: one module per command group, each thin (args -> config -> library call)."""

from ragsafe.cli.main import main

__all__ = ["main"]
