"""`ragsafe graphs [show NAME]`: registered graphs, their params and diagrams."""

from __future__ import annotations

import dataclasses

from ragsafe.cli.common import plugin_args


def cmd_graphs(a) -> int:
    from ragsafe.graphs import graphs, param_docs

    name = a.name if getattr(a, "graphs_cmd", None) == "show" else None
    for n in [name] if name else graphs.names():
        spec = graphs.get(n)
        print(f"{n}{' (retrieves)' if spec.needs_retriever is True else ''}: {spec.doc.splitlines()[0] if spec.doc else ''}")
        docs = param_docs(spec.params)
        for f in dataclasses.fields(spec.params):
            print(f"    {f.name} = {f.default!r}   {docs.get(f.name, '')}")
        if spec.needs_retriever:
            print("    embedder = (the run's --embedder)   the index's embedder for this variant: a packaged name "
                  "or a folder; one index per value")
        if name:
            from ragsafe.experiments.config import parse_assignments
            from ragsafe.graphs.show import draw_png, mermaid

            overrides = dict(parse_assignments(a.set or [], "--set"))
            print()
            print(mermaid(n, overrides))
            if a.png:
                print(f"wrote {draw_png(n, a.png, overrides)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("graphs", help="list graphs and their params; `graphs show NAME` adds the diagram")
    plugin_args(p, graph_module=True)
    gsub = p.add_subparsers(dest="graphs_cmd")
    ps = gsub.add_parser("show", help="one graph: its params and its diagram (Mermaid, optionally PNG)")
    ps.add_argument("name", help="registered graph name")
    plugin_args(ps, graph_module=True)
    ps.add_argument("--set", action="append", metavar="PARAM=VALUE",
                    help="build the graph with this param (steps switched off change the diagram)")
    ps.add_argument("--png", metavar="PATH", help="also draw the diagram to a PNG file (offline, matplotlib)")
    p.set_defaults(fn=cmd_graphs)
