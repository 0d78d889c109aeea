"""Graph variants from the command line: ``name[key=value,...]``, ``--set graph.key=value`` and ``--grid graph.key=v1,v2``."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ragsafe.config import ConfigError
from ragsafe.experiments.config import parse_assignments
from ragsafe.graphs import graphs
from ragsafe.graphs.base import GraphSpec


@dataclasses.dataclass(frozen=True)
class Variant:
    label: str
    spec: GraphSpec
    params: Any
    overrides: dict[str, str]


_VARIANT = re.compile(r"^([A-Za-z_][\w\-]*)(?:\[(.*)\])?$")


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
            m = _VARIANT.match(s.strip())
            if m and m.group(1) == g:
                hit = True
                inline = [x for x in (m.group(2) or "").split(",") if x.strip()]
                for v in vals:
                    out.append(f"{g}[{','.join(inline + [f'{param}={v}'])}]")
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
        if not any((_VARIANT.match(s) or [None, None])[1] == g for s in specs):
            raise ConfigError(f"--set names graph {g!r}, which is not among --graph {specs}")
    variants, seen = [], set()
    for s in specs:
        m = _VARIANT.match(s.strip())
        if not m:
            raise ConfigError(f"--graph {s!r}: expected NAME or NAME[key=value,...]")
        name, inline = m.group(1), m.group(2)
        spec = graphs.get(name)
        overrides = dict(per_graph.get(name, {}))
        if inline:
            overrides.update(parse_assignments([x for x in inline.split(",") if x.strip()], f"--graph {s}"))
        params = spec.make_params(overrides)
        label = name if not overrides else f"{name}[{','.join(f'{k}={v}' for k, v in sorted(overrides.items()))}]"
        if label in seen:
            raise ConfigError(f"graph variant {label!r} given twice")
        seen.add(label)
        variants.append(Variant(label, spec, params, overrides))
    return variants
