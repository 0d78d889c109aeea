"""Retrieval-ceiling metrics on hand-computed rankings, and one pass through the real Chroma store."""

from __future__ import annotations

import json
import math

import pytest
from langchain_core.documents import Document

from ragsafe.corpora.schema import Question
from ragsafe.evals.metrics import retrieval as rev
from ragsafe.experiments.retrieval import run as retrieval_run

# doc id of each retrieved chunk, best first: a gold doc "a" at ranks 2 and 3, gold "b" at rank 4
RANKED = ["x", "a", "a", "b", "y"]
GOLD = ("a", "b")


def test_recall_counts_documents_not_chunks():
    assert rev.recall_at_k(RANKED, GOLD, 1) == 0.0
    assert rev.recall_at_k(RANKED, GOLD, 2) == 0.5
    assert rev.recall_at_k(RANKED, GOLD, 3) == 0.5   # a second chunk of "a" adds nothing
    assert rev.recall_at_k(RANKED, GOLD, 4) == 1.0
    assert rev.recall_at_k(RANKED, GOLD, 100) == 1.0


def test_hit_and_reciprocal_rank():
    assert rev.hit_at_k(RANKED, GOLD, 1) == 0.0
    assert rev.hit_at_k(RANKED, GOLD, 2) == 1.0
    assert rev.reciprocal_rank(RANKED, GOLD) == 0.5
    assert rev.reciprocal_rank(["b", "a"], GOLD) == 1.0
    assert rev.reciprocal_rank(["x", "y"], GOLD) == 0.0


def test_ndcg_by_hand():
    # gains at ranks 2 ("a") and 4 ("b"); the duplicate "a" at rank 3 earns nothing
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert rev.ndcg_at_k(RANKED, GOLD, 5) == pytest.approx(dcg / idcg)
    # with k=3 only "a" counts; the ideal still has min(|gold|, k) = 2 hits
    assert rev.ndcg_at_k(RANKED, GOLD, 3) == pytest.approx((1 / math.log2(3)) / idcg)
    # k=1 with three gold documents: the ideal is a single hit at rank 1
    assert rev.ndcg_at_k(["a"], ("a", "b", "c"), 1) == 1.0
    assert rev.ndcg_at_k(["a", "b"], GOLD, 2) == 1.0
    assert rev.ndcg_at_k(["x", "y"], GOLD, 2) == 0.0


def test_empty_gold_is_an_error():
    with pytest.raises(ValueError):
        rev.recall_at_k(RANKED, (), 5)
    with pytest.raises(ValueError):
        rev.ndcg_at_k(RANKED, (), 5)


def test_score_ranking_keys():
    m = rev.score_ranking(RANKED, GOLD, ks=(1, 4))
    assert m == {"recall@1": 0.0, "hit@1": 0.0, "recall@4": 1.0, "hit@4": 1.0, "mrr": 0.5,
                 "ndcg@1": 0.0, "ndcg@4": pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) /
                                                        (1 + 1 / math.log2(3)))}


def _q(qid, text, gold, area):
    return Question(id=qid, question=text, options={"A": "a", "B": "b"}, answer="A", gold_doc_ids=tuple(gold),
                    subspecialty=area)


def _chunks(*doc_ids):
    return [Document(page_content=d, metadata={"doc_id": d, "chunk_id": f"{d}#c{i}"}) for i, d in enumerate(doc_ids)]


def test_evaluate_aggregates_overall_and_per_subspecialty():
    results = {"q1": _chunks("g1", "x", "y"), "q2": _chunks("x", "y", "g2"), "q3": _chunks("x", "y", "z")}
    asked = []

    def search(query, n):
        asked.append((query, n))
        return results[query][:n]

    qs = [_q("q1", "q1", ["g1"], "neuro"), _q("q2", "q2", ["g2"], "neuro"), _q("q3", "q3", ["g3", "g1"], "chest"),
          _q("q4", "q4", [], "chest")]
    rep = rev.evaluate(qs, search, ks=(1, 3), corpus_ids={"g1", "g2", "x", "y", "z"})
    assert asked == [("q1", 3), ("q2", 3), ("q3", 3)]  # depth defaults to the largest k; q4 is not queried
    assert rep.skipped == ["q4"] and rep.missing_gold == {"q3": ["g3"]}
    assert rep.overall["n"] == 3
    assert rep.overall["recall@1"] == pytest.approx(1 / 3)
    assert rep.overall["recall@3"] == pytest.approx((1 + 1 + 0) / 3)
    assert rep.overall["mrr"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert rep.by_group["neuro"]["recall@3"] == 1.0 and rep.by_group["neuro"]["n"] == 2
    assert rep.by_group["chest"]["hit@3"] == 0.0
    assert [r["found"] for r in rep.rows] == [{"g1": 1}, {"g2": 3}, {}]
    text = rev.table(rep)
    assert text.splitlines()[0].split()[:4] == ["subspecialty", "n", "recall@1", "recall@3"]
    assert text.splitlines()[1].split()[:3] == ["ALL", "3", "0.333"]
    assert rev.table(rep, markdown=True).startswith("| subspecialty | n |")


def test_compare_is_other_minus_base():
    base = rev.evaluate([_q("q", "q", ["g"], "a")], lambda q, n: _chunks("g")[:n], ks=(1,))
    worse = rev.evaluate([_q("q", "q", ["g"], "a")], lambda q, n: _chunks("x", "g")[:n], ks=(1,), depth=2)
    d = rev.compare(base, worse)
    assert d["recall@1"] == -1.0 and d["mrr"] == -0.5 and "n" not in d


def test_bad_k():
    with pytest.raises(ValueError):
        rev.evaluate([], lambda q, n: [], ks=(0, 5))


# --------------------------------------------------------------------------------------------
# the real store: a tiny corpus whose topics do not overlap, and the CLI


@pytest.fixture
def tiny(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    texts = {
        "pneumothorax": "Pneumothorax: air in the pleural space, a visible visceral pleural line, absent lung "
                        "markings beyond it, and in tension mediastinal shift away from the collapsed lung.",
        "pancreatitis": "Acute pancreatitis: inflammation of the pancreas with raised lipase, peripancreatic fat "
                        "stranding, fluid collections and walled-off necrosis on contrast CT.",
        "scaphoid": "Scaphoid fracture: wrist fall on an outstretched hand, snuffbox tenderness, occult waist "
                    "fractures and avascular necrosis of the proximal pole.",
    }
    for name, text in texts.items():
        (corpus / f"{name}.md").write_text(f"---\nid: {name}\ntitle: {name.title()}\n---\n{text}\n")
    noise = tmp_path / "noise"
    noise.mkdir()
    for i in range(3):
        (noise / f"n{i}.txt").write_text(f"Chest radiograph report {i}: lungs clear, heart size normal, no effusion.")
    bench = tmp_path / "b.jsonl"
    qs = [("t1", "Visceral pleural line with absent lung markings and mediastinal shift: which diagnosis?",
           ["pneumothorax"], "chest"),
          ("t2", "Raised lipase with peripancreatic fat stranding on CT: which diagnosis?", ["pancreatitis"], "abdo")]
    bench.write_text("".join(json.dumps({"id": i, "question": t, "options": {"A": "x", "B": "y"}, "answer": "A",
                                         "gold_doc_ids": g, "subspecialty": s}) + "\n" for i, t, g, s in qs))
    return {"corpus": str(corpus), "noise": str(noise), "bench": str(bench), "chroma": str(tmp_path / "chroma")}


def test_run_on_real_chroma_store(tiny):
    rep = retrieval_run(tiny["bench"], tiny["corpus"], ks=(1, 3), chroma_path=tiny["chroma"], distractors=[tiny["noise"]])
    assert rep.info["documents"] == 6 and rep.info["chunks"] == 6
    assert rep.overall["n"] == 2 and rep.missing_gold == {}
    # distinct topics: the gold article must be the top hit for each question
    assert rep.overall["recall@1"] == 1.0 and rep.overall["mrr"] == 1.0
    assert sorted(rep.by_group) == ["abdo", "chest"]


def test_distractor_ids_may_not_clash(tiny):
    with pytest.raises(ValueError, match="reuses document ids"):
        retrieval_run(tiny["bench"], tiny["corpus"], chroma_path=tiny["chroma"], distractors=[tiny["corpus"]])


def test_cli_retrieval_eval(tiny, tmp_path, capsys):
    from ragsafe.cli.main import main

    md, js = tmp_path / "r.md", tmp_path / "r.json"
    rc = main(["retrieval-eval", "--benchmark", tiny["bench"], "--corpus", tiny["corpus"], "--k", "1", "2",
               "--chroma-path", tiny["chroma"], "--distractors", tiny["noise"], "--md", str(md), "--json", str(js)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "recall@1" in out and "with distractors" in out and "recall@2 1.000 -> 1.000 (+0.000)" in out
    saved = json.loads(js.read_text())
    assert len(saved) == 2 and saved[1]["info"]["distractors"] == [tiny["noise"]]
    assert [r["id"] for r in saved[0]["questions"]] == ["t1", "t2"]
    assert md.read_text().count("| ALL |") == 2
