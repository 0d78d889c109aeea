"""Retrieval strategies as LangGraph state machines, registered by name.

One file per strategy; the registry :data:`graphs` imports them all on its first lookup. A user's
own graphs come in as plugins (:mod:`ragsafe.plugins`: ``--plugin FILE_OR_MODULE`` or the
``ragsafe.plugins`` entry point); ``load_graph_module`` is the older name for the same thing.
"""

from __future__ import annotations

from ragsafe.graphs.base import (
    Deps,
    GraphSpec,
    OneAnswer,
    State,
    Wraps,
    graph,
    graphs,
    graphs_with_role,
    param_docs,
    role_of,
    spec_of,
)
from ragsafe.plugins import load_plugin

__all__ = ["Deps", "GraphSpec", "OneAnswer", "State", "Wraps", "graph", "graphs", "graphs_with_role", "param_docs",
           "role_of", "spec_of", "load_graph_module"]


def load_graph_module(spec: str) -> None:
    """Import ``spec`` (a dotted module or a .py file) so its ``@graph`` factories register.

    The older name of :func:`ragsafe.plugins.load_plugin` (``--graph-module`` / ``graph_modules``).
    """
    load_plugin(spec, flag="--graph-module")
