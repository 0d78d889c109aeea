"""The architecture's rules, checked by parsing the package.

* No import cycle among ragsafe modules. Every ``import`` counts, also one inside a function (hiding
  an import in a function does not remove the dependency); only ``if TYPE_CHECKING:`` blocks are
  left out (they never run). An import of ``a.b.c`` counts as an edge to ``a.b.c`` only, not to the
  parent packages' ``__init__`` (a package that re-exports its submodules is not a cycle).
* No registered graph name in code outside ``ragsafe/graphs/``: code reads what it needs from the
  graph specs (role, paper condition, required fields, expected calls, wrapped graph). A graph name
  may appear as data: in docstrings and field docstrings, in ``help=``/``description=``/``example=``
  arguments, and in prose (a string literal with a space in it: a message, a hint, an example). A
  whitespace-free literal that is or holds a graph name (``"closed_book"``, ``"standard_rag[k=3]"``,
  ``"self_consistency."``) is an identifier in code, and fails the test (``__all__`` entries are
  module names, not graph names; a constant named ``*EXAMPLE`` is an example).
* Registries hold the same names whatever module is imported first.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

PKG = ROOT / "ragsafe"

# cycles still to break: each entry is one sorted cycle; the list must end empty
ALLOWED_CYCLES: list[tuple[str, ...]] = []


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The ragsafe modules ``name`` imports anywhere in its file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                if f"{mod}.{a.name}" in known:
                    out.add(f"{mod}.{a.name}")
                elif mod in known:
                    out.add(mod)
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(m, p, known) for m, p in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[tuple[str, ...]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(tuple(sorted(comp)))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [("a", "b", "c")]
    assert cycles({"a": {"b"}, "b": set()}) == []
    src = tmp_path / "m.py"
    src.write_text("import os\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ragsafe import x\n"
                   "def f():\n    from ragsafe.y import z\n    from . import w\n")
    assert imports_of("ragsafe.q.m", src, {"ragsafe.x", "ragsafe.y", "ragsafe.y.z", "ragsafe.q.w"}) \
        == {"ragsafe.y.z", "ragsafe.q.w"}


def test_no_import_cycles_in_ragsafe():
    found = cycles(import_graph())
    new = [c for c in found if c not in ALLOWED_CYCLES]
    assert not new, "import cycles among ragsafe modules (break them; a function-level import still counts):\n" + \
        "\n".join(" <-> ".join(c) for c in new)
    stale = [c for c in ALLOWED_CYCLES if c not in found]
    assert not stale, f"these allowed cycles are gone: remove them from ALLOWED_CYCLES: {stale}"


# -- graph names are data outside ragsafe/graphs/ ------------------------------------------------

def _registered_graph_names() -> set[str]:
    out = subprocess.run([sys.executable, "-c", "import json; from ragsafe.graphs import graphs; "
                          "print(json.dumps(graphs.names()))"], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(json.loads(out.stdout))


def _data_strings(tree: ast.AST) -> set[int]:
    """ids of string constants that are data: docstrings and help= texts."""
    ok: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ok.add(id(body[0].value))
            # a string under a field (a field docstring) is documentation too
            for a, b in zip(body, body[1:]):
                if isinstance(a, (ast.AnnAssign, ast.Assign)) and isinstance(b, ast.Expr) \
                        and isinstance(b.value, ast.Constant):
                    ok.add(id(b.value))
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and (t.id == "__all__" or t.id.endswith("EXAMPLE"))
                                                for t in node.targets):
            ok.update(id(n) for n in ast.walk(node.value))  # module names; an example constant is data
        if isinstance(node, ast.keyword) and node.arg in ("help", "description", "epilog", "example", "examples"):
            ok.update(id(n) for n in ast.walk(node.value))
    return ok


def graph_names_in_code(root: Path, names: set[str]) -> list[str]:
    """``file:line: 'literal'`` for each string literal outside graphs/ naming a registered graph."""
    import re

    pat = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(sorted(map(re.escape, names))) + r")(?![A-Za-z0-9_])")
    hits = []
    for path in sorted((root / "ragsafe").rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[1] == "graphs":
            continue
        tree = ast.parse(path.read_text())
        ok = _data_strings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in ok \
                    and not any(ch.isspace() for ch in node.value) and pat.search(node.value):
                hits.append(f"{rel}:{node.lineno}: {node.value!r}")
    return hits


def test_the_graph_name_scan_sees_a_hard_coded_name(tmp_path):
    (tmp_path / "ragsafe" / "experiments").mkdir(parents=True)
    (tmp_path / "ragsafe" / "graphs").mkdir()
    (tmp_path / "ragsafe" / "graphs" / "g.py").write_text("NAME = 'closed_book'\n")
    (tmp_path / "ragsafe" / "experiments" / "x.py").write_text(
        '"""Run closed_book first."""\n'
        "def f(g, p):\n"
        '    """e.g. f("closed_book")"""\n'
        "    p.add_argument('--g', help='a graph, e.g. closed_book')\n"
        "    if not g:\n"
        "        raise ValueError('no graph: write e.g. graphs: [closed_book]')\n"
        "    return g == 'closed_book' or g.startswith('standard_rag[')\n")
    hits = graph_names_in_code(tmp_path, {"closed_book", "standard_rag"})
    assert [h.split(": ", 1)[0] for h in hits] == ["ragsafe/experiments/x.py:7", "ragsafe/experiments/x.py:7"]


def test_no_graph_name_in_code_outside_graphs():
    hits = graph_names_in_code(ROOT, _registered_graph_names())
    assert not hits, "graph names hard-coded outside ragsafe/graphs/ (read them from the graph specs):\n" + \
        "\n".join(hits)


# -- registries do not depend on import order ----------------------------------------------------

REGISTRIES = {
    "graphs": "ragsafe.graphs.base:graphs",
    "metrics": "ragsafe.evals.metrics.registry:metrics",
    "benchmarks": "ragsafe.corpora.benchmark:benchmarks",
    "formats": "ragsafe.corpora.formats.base:loaders",
    "corpora": "ragsafe.corpora.documents:corpora",
    "retrievers": "ragsafe.retrievers.registry:retrievers",
}

FIRST_IMPORTS = ["ragsafe.registry", "ragsafe.graphs.base", "ragsafe.evals.metrics.registry",
                 "ragsafe.corpora.formats.base", "ragsafe.corpora.documents", "ragsafe.experiments.sweep",
                 "ragsafe.retrievers.registry"]


def _lookups_after(first: str, expect: dict[str, list[str]] | None = None) -> dict[str, dict]:
    """In a fresh interpreter: import ``first``, then look every expected name up with ``get``
    *before* anything lists a registry (a registry that fills itself only in ``names()`` fails)."""
    code = (f"import importlib, json\nimportlib.import_module({first!r})\nexpect = {expect or {}!r}\nout = {{}}\n"
            f"for key, where in {REGISTRIES!r}.items():\n"
            "    mod, _, attr = where.partition(':')\n"
            "    reg = getattr(importlib.import_module(mod), attr)\n"
            "    found = []\n"
            "    for n in expect.get(key, []):\n"
            "        try:\n"
            "            reg.get(n); found.append(n)\n"
            "        except KeyError:\n"
            "            pass\n"
            "    out[key] = {'found': found, 'names': reg.names()}\n"
            "print(json.dumps(out))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reference_names() -> dict[str, list[str]]:
    ref = _lookups_after("ragsafe.cli.main")
    assert all(v["names"] for v in ref.values()), ref
    return {k: v["names"] for k, v in ref.items()}


@pytest.mark.parametrize("first", FIRST_IMPORTS)
def test_registries_hold_the_same_names_whatever_is_imported_first(first, reference_names):
    got = _lookups_after(first, reference_names)
    assert {k: v["found"] for k, v in got.items()} == reference_names, "get() failed before names() was called"
    assert {k: v["names"] for k, v in got.items()} == reference_names
