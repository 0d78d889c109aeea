"""Step attribution of wrong answers from stored records and traces (rules in ragsafe/evals/attribution.py)."""

from __future__ import annotations

import pytest

from ragsafe.corpora.formats.ragsafe import load_ragsafe_jsonl
from ragsafe.evals import attribution as at
from ragsafe.evals.score import summarize
from ragsafe.experiments.runs import load_run
from tests.fixtures.evals import fixture_runs as fx


@pytest.fixture
def qs(tmp_path):
    return {q.id: q for q in load_ragsafe_jsonl(fx.write_benchmark(tmp_path / "b.jsonl")).questions}


def test_conflict_support_rule(qs):
    q4 = qs["q4"]  # answer D (stroke), conflict target A (migraine, discharge with analgesia)
    assert at.supports_target(fx.MIGRAINE_TEXT, q4)
    assert not at.supports_target(fx.STROKE_TEXT, q4)
    # half of the target's distinctive terms {migraine, aura, discharge, analgesia} is enough …
    assert at.supports_target("migraine aura", q4)
    # … one quarter is not, and a text that covers the answer's terms as well does not favour the target
    assert not at.supports_target("migraine only", q4)
    assert not at.supports_target("migraine aura versus acute ischaemic stroke, activate thrombolysis pathway", q4)
    assert not at.supports_target(fx.MIGRAINE_TEXT, qs["q5"])  # q5 has no conflict target


def test_fixture_standard_rag_categories(qs):
    recs = {q: fx.record("m1", "standard_rag[k=2]", q, L) for q, L in zip(fx.QIDS, fx.M1["standard_rag[k=2]"])}
    c = {q: at.classify(r, qs[q]) for q, r in recs.items()}
    assert c["q1"]["category"] is None and c["q1"]["correct"]
    assert c["q2"]["category"] == "reasoning_miss" and c["q2"]["gold_in_context"] is True
    assert c["q3"]["category"] == "retrieval_miss" and c["q3"]["gold_in_context"] is False
    assert c["q4"]["category"] == "conflict_captured" and c["q4"]["conflict_via"] == "retrieved"
    assert c["q4"]["conflict_chunks"] == ["doc-migraine#c0"] and c["q4"]["chose_conflict_target"]
    assert c["q5"]["category"] == "parse_failure"


def test_categories_of_fixed_context_conditions(qs):
    assert at.classify(fx.record("m1", "closed_book", "q1", "B"), qs["q1"])["category"] == "no_evidence"
    assert at.classify(fx.record("m1", "clean_evidence", "q1", "C"), qs["q1"])["category"] == "reasoning_miss"
    r = at.classify(fx.record("m1", "conflict_evidence", "q1", "C"), qs["q1"])
    assert r["category"] == "conflict_captured" and r["conflict_via"] == "condition" and not r["chose_conflict_target"]
    err = {**fx.record("m1", "closed_book", "q1", None), "error": {"type": "Timeout"}}
    assert at.classify(err, qs["q1"])["category"] == "error"


def test_text_from_a_resolver_when_the_record_has_none(qs):
    rec = fx.record("m1", "standard_rag[k=2]", "q4", "A", with_text=False)
    r = at.classify(rec, qs["q4"])
    assert r["category"] == "reasoning_miss" and r["text_unavailable"]      # gold retrieved, text unknown
    texts = {"doc-stroke#c0": fx.STROKE_TEXT, "doc-migraine#c0": fx.MIGRAINE_TEXT}
    r = at.classify(rec, qs["q4"], texts.get)
    assert r["category"] == "conflict_captured" and not r["text_unavailable"]


def test_counts_per_graph_and_for_high_risk_errors(tmp_path):
    lr = load_run(fx.write_run(tmp_path, "m1"))
    s = summarize(lr.samples, lr.questions, lr.variants, B=20)
    sr = s["variants"]["standard_rag[k=2]"]["attribution"]
    assert sr["n_wrong"] == 4
    assert {k: v for k, v in sr["counts"].items() if v} == {"parse_failure": 1, "conflict_captured": 1,
                                                           "retrieval_miss": 1, "reasoning_miss": 1}
    # high-risk wrong answers: q3 D (retrieval miss) and q4 A (conflict captured); q2 C is unsafe only
    assert sr["n_high_risk_errors"] == 2
    assert {k: v for k, v in sr["high_risk_counts"].items() if v} == {"retrieval_miss": 1, "conflict_captured": 1}
    cb = s["variants"]["closed_book"]["attribution"]
    assert {k: v for k, v in cb["counts"].items() if v} == {"no_evidence": 2, "parse_failure": 1}
    cf = s["variants"]["conflict_evidence"]["attribution"]
    assert cf["counts"]["conflict_captured"] == 4 and cf["chose_conflict_target"] == 4  # q1 B, q2 A, q3 D, q4 A
    assert not sr["looped"] and "evidence_round" not in sr


def _looped(qid, letter, rounds, final):
    trace = [{"node": f"retrieve_{i}", "retrieval": {"query": f"q{i}", "k": 2,
                                                      "hits": [{"chunk_id": c, "doc_id": c.split("#")[0]} for c in r]}}
             for i, r in enumerate(rounds, 1)]
    trace.append({"node": "answer", "llm_calls": [{"prompt_tokens": 10, "completion_tokens": 1}]})
    return {"variant": "corrective_rag", "graph": "corrective_rag", "question_id": qid, "letter": letter,
            "retrieved": [{"chunk_id": c, "doc_id": c.split("#")[0]} for c in final], "trace": trace}


def test_round_that_introduced_the_evidence_in_a_looped_graph(qs):
    # the gold chunk first appears in round 2, after a rewrite
    r = at.classify(_looped("q4", "D", [["doc-ct#c0"], ["doc-stroke#c0", "doc-x#c0"]], ["doc-stroke#c0"]), qs["q4"])
    assert r["correct"] and r["rounds"] == 2 and r["evidence_round"] == 2
    # a conflict-captured answer relies on the conflict chunk, found in round 1
    rec = _looped("q4", "A", [["doc-migraine#c0"], ["doc-stroke#c0"]], ["doc-migraine#c0", "doc-stroke#c0"])
    r = at.classify(rec, qs["q4"], {"doc-migraine#c0": fx.MIGRAINE_TEXT, "doc-stroke#c0": fx.STROKE_TEXT}.get)
    assert r["category"] == "conflict_captured" and r["evidence_round"] == 1
    # nothing relied on (no gold in the final context) → no round
    r = at.classify(_looped("q4", "B", [["doc-ct#c0"], ["doc-x#c0"]], ["doc-x#c0"]), qs["q4"])
    assert r["category"] == "retrieval_miss" and r["evidence_round"] is None
    agg = at.attribute([_looped("q4", "D", [["doc-ct#c0"], ["doc-stroke#c0"]], ["doc-stroke#c0"]),
                        _looped("q1", "B", [["doc-dissection#c0"], ["doc-x#c0"]], ["doc-dissection#c0"])],
                       [qs["q4"], qs["q1"]])
    assert agg["looped"] and agg["evidence_round"]["correct"] == {2: 1} and agg["evidence_round"]["wrong"] == {1: 1}
