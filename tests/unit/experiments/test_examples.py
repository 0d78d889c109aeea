"""examples/radsafe200.yaml: the paper's sweep, dry-run on the demo data (nothing runs)."""

from __future__ import annotations

import json

from ragsafe.cli.main import main
from tests.paths import ROOT

EXAMPLE = ROOT / "examples" / "radsafe200.yaml"
DEMO = ["--set", "benchmark=demo", "--set", "corpus=demo", "--set", "embedder=all-MiniLM-L6-v2"]


def test_paper_sweep_dry_run_on_demo_data(capsys):
    assert main(["sweep", str(EXAMPLE), "--dry-run", "--json", *DEMO]) == 0
    out = json.loads(capsys.readouterr().out)
    cells = {c["variant"]: c for c in out["cells"]}
    n_q = {c["questions"] for c in cells.values()}
    assert len(n_q) == 1
    n = n_q.pop()
    rag = sorted(v for v in cells if v.startswith("standard_rag["))
    assert sorted(rag) == sorted(f"standard_rag[k={k},query=question]" for k in (1, 5, 10))
    sc = [v for v in cells if v.startswith("self_consistency[")]
    assert sorted(v.split("inner=")[1].split(",")[0] for v in sc) == ["clean_evidence", "closed_book",
                                                                     "conflict_evidence"]
    assert all("n=20" in v and "temperature=0.7" in v for v in sc)
    greedy = [v for v in cells if v not in sc]
    assert {"closed_book", "clean_evidence", "conflict_evidence", "max_context"} <= set(greedy)
    # one call per question for a greedy condition; 20 samples plus the greedy answer for self-consistency
    assert all(list(cells[v]["calls"]) == [n, n] for v in greedy)
    assert all(list(cells[v]["calls"]) == [21 * n, 21 * n] for v in sc)
    # the paper's judge re-reads every raw output: one per greedy answer, 1 + 20 per self-consistency record
    assert all(cells[v]["judge_calls"] == n for v in greedy) and all(cells[v]["judge_calls"] == 21 * n for v in sc)
    assert out["totals"]["judge_calls"] == sum(c["judge_calls"] for c in cells.values())


def test_paper_sweep_names_the_papers_embedder_and_chunking(capsys):
    import yaml

    data = yaml.safe_load(EXAMPLE.read_text())
    assert data["embedder"].endswith("bge-large-en-v1.5") and data["chunk"]["tokenizer"] == "tiktoken:cl100k_base"
    assert data["parser"] == "judge"
    # without a copy of BGE here, the file's embedder is a clear error naming it, not a hang or a traceback
    assert main(["sweep", str(EXAMPLE), "--dry-run", "--set", "benchmark=demo", "--set", "corpus=demo"]) == 2
    assert "bge-large-en-v1.5" in capsys.readouterr().err


def test_set_replaces_a_top_level_key(capsys):
    assert main(["sweep", str(EXAMPLE), "--dry-run", "--json", *DEMO, "--set", "limit=3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {c["questions"] for c in out["cells"]} == {3}
