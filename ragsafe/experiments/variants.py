"""Graph variants from the command line: ``name[key=value,...]``, ``--set graph.key=value`` and ``--grid graph.key=v1,v2``."""

from __future__ import annotations

import dataclasses
from typing import Any

from ragsafe.config import ConfigError
from ragsafe.experiments.config import parse_assignments
from ragsafe.graphs import graphs
from ragsafe.graphs.base import GraphSpec
from ragsafe.params import ParamSyntaxError, format_variant, parse_variant, split_variant


@dataclasses.dataclass(frozen=True)
class Variant:
    label: str
    spec: GraphSpec
    params: Any
    overrides: dict[str, str]
    embedder: str | None = None
    """The variant's own embedder (its ``embedder=`` param) instead of the run's; None: the run's."""


EMBEDDER_PARAM = "embedder"
"""A param every retrieving graph takes: the embedder of its index (a packaged name or a folder).
It selects the index, so it is not passed to the graph's own params."""


def make_params(spec: GraphSpec, overrides: dict[str, Any]) -> tuple[Any, str | None]:
    """The graph's params from ``overrides``, and the ``embedder`` param when one is given.

    Raises:
        ConfigError: bad params, or ``embedder`` on a graph that retrieves nothing.
    """
    own = {f.name for f in dataclasses.fields(spec.params)}
    embedder = None
    if EMBEDDER_PARAM in overrides and EMBEDDER_PARAM not in own:
        overrides = dict(overrides)
        embedder = str(overrides.pop(EMBEDDER_PARAM)).strip() or None
    params = spec.make_params(overrides)
    if embedder and not spec.retrieves(params):
        raise ConfigError(f"{spec.name}.embedder={embedder}: {spec.name} retrieves nothing with these params; "
                          f"embedder= applies to graphs that retrieve (`ragsafe graphs` marks them)")
    return params, embedder


def _name(spec: str) -> str | None:
    """The graph name of a variant text, None when it is not one."""
    try:
        return split_variant(spec)[0]
    except ParamSyntaxError:
        return None


def expand_grids(specs: list[str], grids: list[str]) -> list[str]:
    """``--grid corrective_rag.max_rewrites=0,1,2`` turns each spec of that graph into one per value."""
    for item in grids:
        key, _, values = item.partition("=")
        if "." not in key or not values:
            raise ConfigError(f"--grid {item!r}: expected graph.param=v1,v2,...")
        g, param = key.strip().split(".", 1)
        graphs.get(g)
        vals = [v.strip() for v in values.split(",") if v.strip()]
        out, hit = [], False
        for s in specs:
            if _name(s) == g:
                hit = True
                _, inline = _parse(s)
                for v in vals:
                    out.append(format_variant(g, {**{k: x for k, x in inline.items() if k != param}, param: v}))
            else:
                out.append(s)
        if not hit:
            raise ConfigError(f"--grid names graph {g!r}, which is not among --graph {specs}")
        specs = out
    return specs


def resolve_variants(specs: list[str], sets: list[str], grids: list[str] | None = None) -> list[Variant]:
    """``["standard_rag[k=3]", "closed_book"]`` + ``["standard_rag.query=question"]`` → variants."""
    specs = expand_grids(list(specs), grids or [])
    if not specs:
        raise ConfigError(f"no graph given; pass --graph NAME (valid: {', '.join(graphs.names())})")
    per_graph: dict[str, dict[str, str]] = {}
    for key, value in parse_assignments(sets, "--set"):
        if "." not in key:
            raise ConfigError(f"--set {key}={value}: expected graph.param=value, e.g. standard_rag.k=3")
        g, p = key.split(".", 1)
        graphs.get(g)  # unknown graph names fail here, listing the valid ones
        per_graph.setdefault(g, {})[p] = value
    for g in per_graph:
        if not any(_name(s) == g for s in specs):
            raise ConfigError(f"--set names graph {g!r}, which is not among --graph {specs}")
    variants, seen = [], set()
    for s in specs:
        name, inline = _parse(s)
        spec = graphs.get(name)
        overrides = {**per_graph.get(name, {}), **inline}
        params, embedder = make_params(spec, overrides)
        label = format_variant(name, dict(sorted(overrides.items())))
        if label in seen:
            raise ConfigError(f"graph variant {label!r} given twice")
        seen.add(label)
        variants.append(Variant(label, spec, params, overrides, embedder))
    return variants


def _parse(spec: str) -> tuple[str, dict[str, str]]:
    try:
        return parse_variant(spec)
    except ParamSyntaxError as e:
        raise ConfigError(f"--graph {spec!r}: {e}") from None
