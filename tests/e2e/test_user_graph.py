"""A graph defined outside the package (a user's file passed with --graph-module) runs."""

import json
import textwrap

import pytest

from tests.conftest import E2E_MODEL

USER_GRAPH = textwrap.dedent('''
    """Keyword-first RAG: retrieve with the options appended, keep the top chunk only."""
    import dataclasses
    from langgraph.graph import END, START, StateGraph
    from ragsafe.graphs import Deps, State, graph
    from ragsafe.graphs.base import join_chunks, make_answer_node, retrieval_info, traced

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Params:
        k: int = 1
        """Chunks kept."""

    @graph("my_options_rag", params=Params, needs_retriever=True)
    def build(deps: Deps, params: Params):
        @traced("retrieve")
        async def retrieve(state: State) -> dict:
            q = state["question"]
            query = q.question + " " + " ".join(q.options.values())
            docs = await deps.retriever.search(query, params.k)
            return {"queries": [query], "chunks": docs, "context": join_chunks(docs),
                    "_trace": retrieval_info(query, docs, params.k)}

        b = StateGraph(State)
        b.add_node("retrieve", retrieve)
        b.add_node("answer", make_answer_node(deps))
        b.add_edge(START, "retrieve")
        b.add_edge("retrieve", "answer")
        b.add_edge("answer", END)
        return b.compile()
''')


@pytest.mark.e2e
def test_user_graph_module_runs_end_to_end(tmp_path, llm_server, demo_store):
    from ragsafe.cli.main import main

    mod = tmp_path / "my_graphs.py"
    mod.write_text(USER_GRAPH)
    out = tmp_path / "runs"
    chroma = demo_store.client.get_settings().persist_directory
    rc = main(["run", "--graph-module", str(mod), "--graph", "my_options_rag", "--set", "my_options_rag.k=2",
               "--limit", "2", "--out", str(out), "--chroma-path", chroma,
               "--base-url", llm_server.base_url, "--model", E2E_MODEL])
    assert rc == 0
    (run_dir,) = out.iterdir()
    recs = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["variant"] == "my_options_rag[k=2]" for r in recs)
    assert all(len(r["retrieved"]) == 2 for r in recs)
    # the user's graph searched with the options appended, as its file says
    from ragsafe.corpora.benchmark import load_benchmark
    qs = {q.id: q for q in load_benchmark("demo").questions}
    for r in recs:
        q = qs[r["question_id"]]
        assert r["queries"] == [q.question + " " + " ".join(q.options.values())]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["variants"]["my_options_rag[k=2]"]["params"] == {"k": 2}
