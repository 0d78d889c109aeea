"""README's "Add your own graph" and "Add your own retriever", end to end through --plugin.

The code is taken from README.md itself (the fenced block that starts with ``# my_graphs.py`` /
``# my_retriever.py``), so the README cannot drift from what works: a real run over real HTTP
against the local llama.cpp server (smollm2-135m) and a real Chroma store.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.paths import ROOT

MODEL = "smollm2-135m"


def readme_block(first_line: str) -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (block,) = [b for b in blocks if b.startswith(first_line + "\n")]
    return block


def _run(argv, llm_server, demo_store, out):
    from ragsafe.cli.main import main

    chroma = demo_store.client.get_settings().persist_directory
    return main(["run", *argv, "--limit", "2", "--out", str(out), "--chroma-path", chroma,
                 "--base-url", llm_server.base_url, "--model", MODEL])


def _records(out):
    (run_dir,) = [d for d in out.iterdir() if d.is_dir() and d.name.startswith("run-")]
    recs = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    return run_dir, recs


@pytest.mark.e2e
def test_readme_add_your_own_graph(tmp_path, llm_server, demo_store):
    f = tmp_path / "my_graphs.py"
    f.write_text(readme_block("# my_graphs.py"))
    out = tmp_path / "runs"
    assert _run(["--plugin", str(f), "--graph", "options_rag", "--grid", "options_rag.k=1,3"],
                llm_server, demo_store, out) == 0
    run_dir, recs = _records(out)
    by_variant = {}
    for r in recs:
        by_variant.setdefault(r["variant"], []).append(r)
    assert sorted(by_variant) == ["options_rag[k=1]", "options_rag[k=3]"]
    assert all(len(r["retrieved"]) == 1 for r in by_variant["options_rag[k=1]"])
    assert all(len(r["retrieved"]) == 3 for r in by_variant["options_rag[k=3]"])
    # the plugin's query: question and every option (what its file says), sent to the real store
    from ragsafe.corpora.benchmark import load_benchmark

    qs = {q.id: q for q in load_benchmark("demo").questions}
    for r in recs:
        q = qs[r["question_id"]]
        (step,) = [t for t in r["trace"] if t["node"] == "retrieve"]
        assert step["retrieval"]["query"] == q.question + " " + " ".join(q.options.values())
    assert json.loads((run_dir / "run.json").read_text())["config"]["plugins"] == [str(f)]
    assert (run_dir / "summary.json").exists()


def _keyword_order(chunks, query, k):
    words = set(query.lower().split())
    hits = [d for d in chunks if words & set(d.page_content.lower().split())]
    return [d.metadata["chunk_id"] for d in sorted(hits, key=lambda d: -len(words & set(d.page_content.lower().split())))[:k]]


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["by-name", "module:factory"])
def test_readme_add_your_own_retriever(tmp_path, llm_server, demo_store, how):
    from ragsafe.retrievers.bm25 import chunks_from_store

    f = tmp_path / "my_retriever.py"
    code = readme_block("# my_retriever.py")
    if how == "module:factory":  # the factory alone (README: works without registering); a second file that
        code = code.split("@retriever(")[0]  # registered "keyword" again would clash with the by-name case
    f.write_text(code)
    out = tmp_path / "runs"
    argv = ["--plugin", str(f), "--retriever", "keyword"] if how == "by-name" else ["--retriever", f"{f}:make"]
    assert _run([*argv, "--graph", "standard_rag[k=2]"], llm_server, demo_store, out) == 0
    run_dir, recs = _records(out)
    assert len(recs) == 2 and not any(r.get("error") for r in recs)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["corpus"]["index"]["kind"] == "langchain" and run["corpus"]["index"]["class"] == "KeywordRetriever"
    assert run["identity"]["corpus"]["retriever"]["name"] == ("keyword" if how == "by-name" else f"{f}:make")
    # the hits are the keyword retriever's ranking over the real index's chunks, not Chroma's
    chunks = chunks_from_store(demo_store)
    for r in recs:
        (step,) = [t for t in r["trace"] if t["node"] == "retrieve"]
        got = [h["chunk_id"] for h in step["retrieval"]["hits"]]
        assert got == _keyword_order(chunks, step["retrieval"]["query"], 2)
