"""The mapped format: any MCQ layout (JSON, JSONL, CSV, Parquet) through a field mapping.

Every file here is written by the test for ragsafe (made-up questions, not clinical ground truth).
"""

from __future__ import annotations

import csv
import json

import pytest

from ragsafe.corpora.benchmark import load_benchmark
from ragsafe.corpora.errors import DataError
from ragsafe.corpora.formats.mapped import parse_map
from ragsafe.corpora.loaders import load_any

ROWS = [  # (question, options, answer letter, subject)
    ("Which modality best shows acute haemorrhage?", ["CT", "Ultrasound", "Plain film", "DEXA"], "A", "neuro"),
    ("First test for suspected DVT?", ["MRI", "Compression ultrasound", "PET", "Angiography"], "B", "vascular"),
    ("Which sign suggests pneumoperitoneum?", ["Rigler sign", "Kerley lines", "Bat wing", "Halo"], "A", "chest"),
]


def _csv(path, rows, header):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_jsonl_options_object_letter_answer(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text("".join(json.dumps({"qid": f"x{i}", "stem": q, "choices": dict(zip("ABCD", o)), "key": a})
                         + "\n" for i, (q, o, a, _) in enumerate(ROWS)), encoding="utf-8")
    b = load_any(f"mapped:{p}#question=stem,options=choices,answer=key,id=qid")
    assert [q.id for q in b.questions] == ["x0", "x1", "x2"]
    assert [q.answer for q in b.questions] == [r[2] for r in ROWS]
    assert b.questions[1].options["B"] == "Compression ultrasound" and not b.errors


def test_json_list_options_answer_as_text(tmp_path):
    p = tmp_path / "b.json"
    p.write_text(json.dumps([{"question": q, "options": o, "answer": o["ABCD".index(a)]} for q, o, a, _ in ROWS]))
    b = load_any(p, "mapped", map="question=question,options=options,answer=answer,answer_format=text")
    assert [q.answer for q in b.questions] == [r[2] for r in ROWS]
    assert [q.id for q in b.questions] == ["b-1", "b-2", "b-3"]  # id: a JSON list member's position


def test_csv_columns_index_base_one_and_subject(tmp_path):
    p = _csv(tmp_path / "c.csv", [[q, *o, "ABCD".index(a) + 1, s] for q, o, a, s in ROWS],
             ["question", "opa", "opb", "opc", "opd", "cop", "subject_name"])
    b = load_any(f"mapped:{p}#question=question,options=opa+opb+opc+opd,answer=cop,answer_format=index,"
                 "index_base=1,subspecialty=subject_name")
    assert [q.answer for q in b.questions] == [r[2] for r in ROWS]
    assert [q.subspecialty for q in b.questions] == [r[3] for r in ROWS]
    assert [q.id for q in b.questions] == ["c-2", "c-3", "c-4"]  # CSV rows: the header is line 1


def test_parquet_five_columns_base_zero_with_fewer_options(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [{"q": q, **{f"option_{L}": v for L, v in zip("ABCDE", o + [None])}, "ans": "ABCD".index(a)}
            for q, o, a, _ in ROWS]
    rows[0]["option_E"] = "Bone scan"
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    m = {"question": "q", "options": [f"option_{L}" for L in "ABCDE"], "answer": "ans", "answer_format": "index",
         "index_base": 0}
    b = load_any(tmp_path / "d.parquet", "mapped", map=m)
    assert [len(q.options) for q in b.questions] == [5, 4, 4]  # trailing blank columns are no option
    assert [q.answer for q in b.questions] == [r[2] for r in ROWS]


def test_manifest_beside_the_data(tmp_path):
    _csv(tmp_path / "e.csv", [[f"id{i}", q, *o, a] for i, (q, o, a, _) in enumerate(ROWS)],
         ["id", "question", "A", "B", "C", "D", "answer"])
    (tmp_path / "e.yaml").write_text("format: mapped\npath: e.csv\nmap:\n  question: question\n"
                                     "  options: [A, B, C, D]\n  answer: answer\n  id: id\n", encoding="utf-8")
    b = load_benchmark(str(tmp_path / "e.yaml"))
    assert [q.id for q in b.questions] == ["id0", "id1", "id2"] and b.mapping.options == ("A", "B", "C", "D")
    assert "options           <- A+B+C+D" in b.mapping.describe()


def test_ten_options_and_no_labels_are_fine(tmp_path):
    p = tmp_path / "f.jsonl"
    p.write_text(json.dumps({"question": "Pick J", "options": [f"o{i}" for i in range(10)], "answer": "J"}) + "\n")
    b = load_any(p, "mapped", map="question=question,options=options,answer=answer")
    q = b.questions[0]
    assert list(q.options) == list("ABCDEFGHIJ") and q.answer == "J" and not q.labels


@pytest.mark.parametrize("spec, field, words", [
    ("question=q,options=o,answer=a,answer_format=index", "index_base", "never guessed"),
    ("question=q,options=o,answer=a,index_base=1", "index_base", "only for answer_format index"),
    ("question=q,options=o,answer=a,colour=red", "colour", "unknown key"),
    ("question=q,answer=a", "options", "missing options"),
    ("question=q,options=o,answer=a,answer_format=number", "answer_format", "not a format"),
])
def test_bad_mappings_name_the_key_and_the_fix(spec, field, words):
    with pytest.raises(DataError) as e:
        parse_map(spec, "bench.csv")
    assert e.value.field == field and words in str(e.value) and "bench.csv" in str(e.value)


def test_record_problems_name_file_line_record_and_the_source_field(tmp_path):
    p = _csv(tmp_path / "g.csv", [["x1", "Q1", "a", "b", "c", "d", "5"], ["x2", "Q2", "a", "b", "c", "d", "2"],
                                  ["", "Q3", "a", "b", "c", "d", "1"]],
             ["id", "stem", "opa", "opb", "opc", "opd", "cop"])
    b = load_any(f"mapped:{p}#question=stem,options=opa+opb+opc+opd,answer=cop,answer_format=index,index_base=1,"
                 "id=id")
    assert [q.id for q in b.questions] == ["x2"]
    bad = {(e.line, e.record, e.field): e.message for e in b.errors}
    assert "outside the 4 options" in bad[(2, "x1", "cop")]
    assert (4, None, "id") in bad
    assert b.n_records == 3


def test_unmapped_columns_are_warned_by_name(tmp_path):
    p = _csv(tmp_path / "h.csv", [["Q", "a", "b", "A", "x", "y"]], ["q", "o1", "o2", "ans", "exp", "topic"])
    b = load_any(f"mapped:{p}#question=q,options=o1+o2,answer=ans")
    assert len(b.questions) == 1
    assert any("exp, topic" in w.message for w in b.warnings)


def test_label_metrics_are_na_without_labels(tmp_path):
    from ragsafe.evals.score import summarize

    p = tmp_path / "i.jsonl"
    p.write_text("".join(json.dumps({"question": q, "options": o, "answer": a}) + "\n" for q, o, a, _ in ROWS))
    b = load_any(p, "mapped", map="question=question,options=options,answer=answer")
    samples = [{"variant": "closed_book", "graph": "closed_book", "question_id": q.id, "letter": "A",
                "correct": q.answer == "A", "trace": []} for q in b.questions]
    s = summarize(samples, b.questions, ["closed_book"], B=50)
    v = s["variants"]["closed_book"]
    assert v["metrics"]["accuracy"]["mean"] == pytest.approx(2 / 3) and v["metrics"]["accuracy"]["n"] == 3
    assert "labels" in v["na"]["high_risk_error_rate"]


def test_validate_prints_the_mapping_and_a_record(tmp_path, capsys):
    from ragsafe.cli.main import main

    p = _csv(tmp_path / "v.csv", [[q, *o, "ABCD".index(a) + 1] for q, o, a, _ in ROWS],
             ["question", "opa", "opb", "opc", "opd", "cop"])
    m = "question=question,options=opa+opb+opc+opd,answer=cop,answer_format=index,index_base=1"
    assert main(["validate", str(p), "--map", m]) == 0
    out = capsys.readouterr().out
    assert "options           <- opa+opb+opc+opd" in out and "index_base        <- 1" in out
    assert f"B. {ROWS[0][1][1]}" in out and f"A. {ROWS[0][1][0]}   <- answer" in out
    assert "labels: none (label metrics will be n/a)" in out
    assert main(["validate", str(p), "--map", m.replace("index_base=1", "index_base=2")]) != 0
