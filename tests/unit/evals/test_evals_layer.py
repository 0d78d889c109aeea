"""evals/ is science over stored records: it reaches storage only through experiments/runs."""

from __future__ import annotations

import ast

from tests.paths import ROOT

EVALS = ROOT / "ragsafe" / "evals"
FORBIDDEN = ("ragsafe.llm", "ragsafe.retrievers", "ragsafe.experiments", "chromadb", "transformers", "openai",
             "aiohttp", "httpx", "sentence_transformers", "torch")
ALLOWED = ("ragsafe.experiments.runs",)


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, node.lineno


def test_no_evals_module_reaches_a_model_or_a_store_except_through_the_run_loader():
    files = sorted(EVALS.rglob("*.py"))
    assert len(files) > 10
    bad = [f"{p.relative_to(ROOT)}:{line}: imports {mod}" for p in files for mod, line in _imports(p)
           if mod.startswith(FORBIDDEN) and not mod.startswith(ALLOWED)]
    assert bad == []


def test_no_metric_list_outside_the_registrations():
    # the names of the old hand-kept lists must not come back
    stale = ("GREEDY_METRICS", "SC_METRICS", "BREAKDOWN_METRICS", "GAP_METRICS", "BAR_METRICS", "SHORT =", "_is_pct")
    hits = [f"{p.relative_to(ROOT)}: {s}" for p in sorted((ROOT / "ragsafe").rglob("*.py"))
            for s in stale if s in p.read_text(encoding="utf-8")]
    assert hits == []
