"""End to end: evidence mixes, abstention and a poisoned corpus over the real llama.cpp server and a
real Chroma store (smollm2-135m answers near chance: these tests check what was sent, retrieved and
recorded, never whether an answer is right)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.invoke import invoke_all

pytestmark = pytest.mark.e2e




def _user(st):
    return st["answer"]["messages"][-1]["content"]


def test_mixed_evidence_sends_both_texts_in_the_asked_order(e2e_deps, demo_benchmark):
    qs = demo_benchmark.select(limit=2)
    for q, st in zip(qs, invoke_all(e2e_deps, "mixed_evidence", qs, order="conflict_first", abstain=True)):
        msg = _user(st)
        assert msg.index(q.evidence_conflict.strip()[:60]) < msg.index(q.evidence_clean.strip()[:60])
        assert "insufficient evidence" in st["answer"]["messages"][0]["content"]
        assert st["letter"] is None or st["letter"] in q.options
        assert st["answer"]["source"] in ("parse", "abstention")


def test_rag_plus_clean_and_graded_mix_over_real_retrieval(e2e_deps, demo_benchmark):
    qs = demo_benchmark.select(limit=2)
    for q, st in zip(qs, invoke_all(e2e_deps, "rag_plus_clean", qs, k=2, position="last")):
        msg = _user(st)
        assert len(st["chunks"]) == 2 and msg.index(st["chunks"][0].page_content.strip()[:60]) \
            < msg.index(q.evidence_clean.strip()[:60])
    deps = dataclasses.replace(e2e_deps, questions=demo_benchmark.questions)
    for q, st in zip(qs, invoke_all(deps, "graded_mix", qs, k=4, fraction=0.5)):
        info = next(t for t in st["trace"] if t["node"] == "retrieve")
        assert len(st["chunks"]) == 4 and info["replaced"] == 2
        assert len(info["distractors"]) == 2 - info["short"]
        for d in info["distractors"]:
            other = next(o for o in demo_benchmark.questions if o.id == d["from_question"])
            assert d["doc_id"] in other.gold_doc_ids and d["doc_id"] not in q.gold_doc_ids
            assert d["chunk_id"] in {c.metadata["chunk_id"] for c in st["chunks"]}
        (call,) = next(t for t in st["trace"] if t["node"] == "answer")["llm_calls"]
        assert call["prompt_tokens"] > 100


def test_poisoned_corpus_run_and_its_pairing_with_the_clean_run(llm_server, tmp_path, demo_store):
    from ragsafe.config import EndpointConfig
    from ragsafe.corpora.poison import is_poison
    from ragsafe.evals.score import analyze
    from ragsafe.experiments.config import RunConfig
    from ragsafe.experiments.execute import run
    from ragsafe.experiments.runs import combine_runs, load_run

    chroma = str(demo_store.client.get_settings().persist_directory)
    common = dict(graphs=["standard_rag[k=3]", "verifier_loop[max_rounds=0,abstain_on_contradiction=true]"],
                  limit=2, out=str(tmp_path), chroma_path=chroma,
                  endpoint=EndpointConfig(base_url=llm_server.base_url, model="smollm2-135m", timeout=300))
    clean = run(RunConfig(**common), progress=lambda m: None)
    poisoned = run(RunConfig(**common, poison="conflict"), progress=lambda m: None)
    assert clean != poisoned
    meta, meta_clean = (json.loads((d / "run.json").read_text()) for d in (poisoned, clean))
    # the poisoned index is a collection of its own, with the poison documents in it; the base is untouched
    assert meta["corpus"]["index"]["collection"] != meta_clean["corpus"]["index"]["collection"]
    assert meta["corpus"]["index"]["chunks"] > meta_clean["corpus"]["index"]["chunks"] == demo_store.count()
    assert meta["corpus"]["poison"]["spec"] == "conflict"
    recs = [json.loads(x) for x in (poisoned / "samples.jsonl").read_text().splitlines()]
    assert not any(is_poison(r["doc_id"]) for x in (clean / "samples.jsonl").read_text().splitlines()
                   for r in json.loads(x)["retrieved"])
    hits = [r["doc_id"] for rec in recs for r in rec["retrieved"]]
    assert all(isinstance(h, str) for h in hits)
    summary = json.loads((poisoned / "summary.json").read_text())
    cell = summary["safety"]["poison"]["standard_rag[k=3]"]
    want = sum(any(is_poison(r["doc_id"]) for r in rec["retrieved"]) for rec in recs
               if rec["variant"] == "standard_rag[k=3]") / 2
    assert cell["poison_retrieved_rate"]["mean"] == pytest.approx(want) and cell["poison_retrieved_rate"]["n"] == 2
    # one analysis over both runs: each poisoned graph is paired with itself on the clean corpus
    arms, qs = combine_runs([load_run(clean), load_run(poisoned)], text=False)
    s = analyze(arms, qs, B=50)
    pairs = {(p["a"], p["b"]) for p in s["safety"]["pairs"] if "poison" in p}
    assert pairs == {("standard_rag[k=3]+poison", "standard_rag[k=3]"),
                     ("verifier_loop[abstain_on_contradiction=true,max_rounds=0]+poison",
                      "verifier_loop[abstain_on_contradiction=true,max_rounds=0]")}
    assert "verifier" in s["safety"]["selective"]["verifier_loop[abstain_on_contradiction=true,max_rounds=0]"]
