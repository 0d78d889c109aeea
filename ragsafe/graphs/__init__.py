"""Retrieval strategies as LangGraph state machines, registered by name.

Importing this package registers every built-in graph. ``load_graph_module`` registers a user's
own graphs from a module path or file.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path

from ragsafe.graphs.base import Deps, GraphSpec, State, graph, graphs, param_docs

# every module of this package registers its graphs on import (one file per strategy)
for _m in pkgutil.iter_modules(__path__):
    if _m.name not in ("base", "show"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["Deps", "GraphSpec", "State", "graph", "graphs", "param_docs", "load_graph_module"]


def load_graph_module(spec: str) -> None:
    """Import ``spec`` (a dotted module or a .py file) so its ``@graph`` factories register."""
    p = Path(spec)
    if p.suffix == ".py":
        if not p.exists():
            raise FileNotFoundError(f"--graph-module {spec}: no such file")
        import hashlib

        name = "ragsafe_user_graphs_" + hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:12]
        if name in sys.modules:  # loaded already: its graphs are registered
            return
        mod_spec = importlib.util.spec_from_file_location(name, p)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        mod_spec.loader.exec_module(module)
    else:
        importlib.import_module(spec)
