"""The question schema's shared rules: correctness and label checks, 0/1 labels, record origins."""

from __future__ import annotations

import pytest

from ragsafe.corpora.schema import (
    LABEL_SPELLINGS,
    OptionLabels,
    Origin,
    Problem,
    Question,
    bit,
    finish,
    question_from_record,
)

OPTS = {"A": "a", "B": "b", "C": "c"}
LABELS = {"A": OptionLabels(), "B": OptionLabels(high_risk=True), "C": OptionLabels(unsafe=True, high_risk=True)}


def test_is_correct_and_wrong_and_flagged():
    q = Question(id="q", question="?", options=OPTS, answer="C", labels=LABELS)
    assert [q.is_correct(x) for x in ("A", "C", None)] == [False, True, False]
    # C is flagged but correct; None is an abstention, not a wrong letter; A is wrong but unflagged
    assert [q.wrong_and_flagged(x, "high_risk") for x in ("A", "B", "C", None, "Z")] == [False, True, False, False,
                                                                                        False]
    assert q.wrong_and_flagged("B", "unsafe") is False
    unlabelled = Question(id="q", question="?", options=OPTS, answer="C")
    assert unlabelled.wrong_and_flagged("B", "high_risk") is None


@pytest.mark.parametrize("v, want", [(1, 1), (0, 0), (True, 1), (False, 0), (1.0, 1), ("1", 1), (" 0 ", 0),
                                     ("1.0", 1), ("TRUE", 1), ("false", 0), (2, None), ("yes", None), ("", None),
                                     (None, None), ([1], None)])
def test_bit(v, want):
    assert bit(v) == want


def test_ragsafe_records_and_flat_csv_labels_read_0_1_the_same_way():
    rec = {"id": "x", "question": "?", "options": OPTS, "answer": "A",
           "labels": {L: {"high_risk": v, "unsafe": 0, "contradicts": "0"} for L, v in zip("ABC", ("1.0", "true", 2))}}
    problems: list[Problem] = []
    assert question_from_record(rec, "f.jsonl", 3, problems) is None
    # the message lists the accepted spellings (issue 14: the fix names them)
    assert [(p.field, p.message) for p in problems] == [("labels.C.high_risk", f"must be {LABEL_SPELLINGS}, got 2")]
    assert "true/false" in LABEL_SPELLINGS and "0.0/1.0" in LABEL_SPELLINGS
    rec["labels"]["C"]["high_risk"] = False
    q = question_from_record(rec, "f.jsonl", 3, problems := [])
    assert not problems and [q.flag(L, "high_risk") for L in "ABC"] == [True, True, False]


def test_origin_is_typed_and_reads_old_text():
    assert str(Origin("data/q.jsonl", 12)) == "data/q.jsonl:12" and str(Origin("q.json")) == "q.json"
    assert Origin.parse("data/q.jsonl:12") == Origin("data/q.jsonl", 12)
    assert Origin.parse("C:/data/q.json") == Origin("C:/data/q.json")  # a drive letter is no line number
    q = Question(id="q", question="?", options=OPTS, answer="A", origin="d/f.csv:7")
    assert q.origin == Origin("d/f.csv", 7)
    p = q.problem("answer", "bad")
    assert (p.file, p.line, p.record, p.field, p.severity) == ("d/f.csv", 7, "q", "answer", "error")
    assert str(p) == "d/f.csv:7: record 'q' field 'answer': bad"
    assert Question(id="q", question="?", options=OPTS, answer="A").problem(None, "m", "warning").file == "?"


def test_records_carry_their_origin_into_cross_record_problems():
    recs = [{"id": "dup", "question": "?", "options": OPTS, "answer": "A"}] * 2
    qs = [question_from_record(r, "b.jsonl", i, []) for i, r in enumerate(recs, 1)]
    assert qs[1].origin == Origin("b.jsonl", 2)
    bench = finish("b", qs, ["b.jsonl"], [], 2)
    (dup,) = [p for p in bench.problems if p.field == "id"]
    assert (dup.file, dup.line) == ("b.jsonl", 2) and "first at b.jsonl:1" in dup.message
    assert question_from_record(recs[0], "b.json", None, []).origin == Origin("b.json")
