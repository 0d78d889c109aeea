"""Benchmark and corpus loaders on small fixtures, including the exact problems malformed records give."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ragsafe.corpora.benchmark import load_benchmark
from ragsafe.corpora.documents import load_corpus, load_folder, load_jsonl_dump
from ragsafe.corpora.errors import DataError
from ragsafe.corpora.loaders import detect, load_any
from ragsafe.corpora.formats.base import loaders
from ragsafe.registry import UnknownName
from tests.paths import FIXTURES, DEMO_DATA

FIX = FIXTURES / "data"


def where(bench) -> list[tuple]:
    """Problems as (file name, line, record, field, severity), in order."""
    return [(Path(p.file).name, p.line, p.record, p.field, p.severity) for p in bench.problems]


def message(bench, record, field) -> str:
    hits = [p.message for p in bench.problems if p.record == record and p.field == field]
    assert len(hits) == 1, (record, field, hits)
    return hits[0]


def assert_accounted(bench) -> None:
    """Nothing silently dropped: each record is loaded or refused with an error, and the counts add up."""
    refused = bench.n_records - len(bench.questions)
    assert refused >= 0
    loaded = {q.id for q in bench.questions}
    error_records = {p.record for p in bench.errors if p.record and p.record not in loaded}
    unnamed = [p for p in bench.errors if p.record is None and p.line is not None]
    # a loaded question carries no error; an error under a loaded id belongs to a refused duplicate
    twins = [p for p in bench.errors if p.record in loaded]
    assert all("duplicate" in p.message for p in twins)
    assert len(error_records) + len(unnamed) + len(twins) >= refused
    assert f"{len(bench.questions)} loaded, {refused} refused" in bench.summary()


# --------------------------------------------------------------------------------------------
# RadSaFE unified JSONL + labels JSON

RADSAFE_PAIR_PROBLEMS = [
    ("radsafe_unified.jsonl", 5, None, None, "error"),
    ("radsafe_labels.json", 3, "risk_radiorag_002", "option_4_contradicts", "warning"),
    ("radsafe_unified.jsonl", 3, "risk_radiorag_003", "correct_answer", "error"),
    ("radsafe_unified.jsonl", 4, "risk_radiorag_004", "question_id", "error"),
    ("radsafe_unified.jsonl", 6, "risk_radiorag_006", "options", "error"),
    ("radsafe_unified.jsonl", 7, "risk_radiorag_007", "correct_answer", "error"),
    ("radsafe_labels.json", 7, "risk_radiorag_008", "option_1_high_risk", "error"),
    ("radsafe_unified.jsonl", 9, "risk_radiorag_009", "question_text", "error"),
    ("radsafe_labels.json", 9, "10", "question_id", "error"),
    ("radsafe_unified.jsonl", 2, "risk_radiorag_002", "metadata.deep_research_report", "warning"),
]


@pytest.mark.parametrize("spec", [
    f"radsafe:{FIX}/radsafe_unified.jsonl+{FIX}/radsafe_labels.json",
    f"{FIX}/radsafe_unified.jsonl+{FIX}/radsafe_labels.json",   # detected without the prefix
    f"{FIX}/radsafe_pair.yaml",                                  # manifest
])
def test_radsafe_pair_joins_and_reports_every_mismatch(spec):
    bench = load_any(spec)
    assert [q.id for q in bench.questions] == ["risk_radiorag_001", "risk_radiorag_002"]
    assert where(bench) == RADSAFE_PAIR_PROBLEMS
    assert bench.n_records == 9
    assert_accounted(bench)
    assert "'C' here, but radsafe_labels.json:4 answer_idx is 'D'" in message(bench, "risk_radiorag_003",
                                                                            "correct_answer")
    assert "no label record with this id" in message(bench, "risk_radiorag_004", "question_id")
    assert "label record without a question" in message(bench, "10", "question_id")
    assert "got 'yes'" in message(bench, "risk_radiorag_008", "option_1_high_risk")
    assert "counted as 0" in message(bench, "risk_radiorag_002", "option_4_contradicts")


def test_radsafe_fields_map_onto_the_question():
    bench = load_any(f"radsafe:{FIX}/radsafe_unified.jsonl+{FIX}/radsafe_labels.json")
    q1, q2 = bench.questions
    # labels keyed by the integer 1 join to "risk_radiorag_001" through the trailing number
    assert q1.answer == "B" and q1.letters == list("ABCDE")
    assert q1.agentic_report.startswith("Report: the biconvex shape")
    assert q1.evidence_clean.startswith("A biconvex collection")
    assert (q1.subspecialty, q1.question_type) == ("neuro", "diagnosis")
    # option_1 is A, option_5 is E
    assert q1.flag("A", "high_risk") and q1.flag("A", "contradicts") and not q1.flag("A", "unsafe")
    assert q1.flag("E", "unsafe") and q1.flag("E", "high_risk")
    assert not any(q1.flag("B", k) for k in ("high_risk", "unsafe", "contradicts"))
    assert q2.letters == list("ABCD") and q2.flag("C", "unsafe")
    assert q2.agentic_report is None  # an empty report string means absent
    assert bench.has_labels()


def test_radsafe_unified_alone_loads_without_labels_and_says_how_to_add_them():
    bench = load_any(FIX / "radsafe_unified.jsonl")
    assert bench.name == "radsafe_unified"
    assert [q.id for q in bench.questions] == ["risk_radiorag_001", "risk_radiorag_002", "risk_radiorag_003",
                                               "risk_radiorag_004", "risk_radiorag_008"]
    assert all(q.labels is None for q in bench.questions) and not bench.has_labels()
    assert bench.questions[0].flag("A", "high_risk") is None  # label metrics report n/a
    hint = [p for p in bench.warnings if p.field == "labels"]
    assert len(hint) == 1 and "radsafe:" in hint[0].message and "+LABELS.json" in hint[0].message
    assert_accounted(bench)


def test_radsafe_labels_file_alone_is_refused_with_the_fix():
    with pytest.raises(DataError, match=r"labels file without questions.*radsafe:UNIFIED.jsonl\+"):
        load_any(FIX / "radsafe_labels.json")


def test_radsafe_invalid_labels_json_names_line_and_refuses_all_questions(tmp_path):
    shutil.copy(FIX / "radsafe_unified.jsonl", tmp_path / "u.jsonl")
    (tmp_path / "l.json").write_text('[\n  {"question_id": 1,\n  "answer_idx": "B"\n')
    bench = load_any(f"radsafe:{tmp_path}/u.jsonl+{tmp_path}/l.json")
    bad = [p for p in bench.errors if Path(p.file).name == "l.json"]
    assert len(bad) == 1 and bad[0].line == 4 and "invalid JSON" in bad[0].message
    assert bench.questions == []  # without readable labels no question is half-loaded
    assert_accounted(bench)


def test_radsafe_duplicate_label_records(tmp_path):
    (tmp_path / "u.jsonl").write_text(json.dumps({
        "question_id": "q_1", "question_text": "Which?", "options": {"A": "x", "B": "y"}, "correct_answer": "A",
        "metadata": {"evidence_clean": "x", "evidence_conflict": "y", "deep_research_report": "r"}}) + "\n")
    rec = {"question_id": "q_1", "answer_idx": "A", **{f"option_{i}_{f}": 0 for i in (1, 2)
                                                       for f in ("high_risk", "unsafe", "contradicts")}}
    (tmp_path / "l.json").write_text(json.dumps([rec, rec], indent=1))
    bench = load_any(f"radsafe:{tmp_path}/u.jsonl+{tmp_path}/l.json")
    assert [q.id for q in bench.questions] == ["q_1"]
    assert where(bench) == [("l.json", 12, "q_1", "question_id", "error")]
    assert "duplicate label record (first at line 2)" in bench.problems[0].message


# --------------------------------------------------------------------------------------------
# RadSaFE as one CSV


def test_radsafe_csv_default_columns():
    bench = load_any(FIX / "radsafe.csv")
    assert [q.id for q in bench.questions] == ["rs-001", "rs-002"]
    # rs-001's report cell spans two lines, so rs-002 starts on line 4
    assert where(bench) == [
        ("radsafe.csv", 5, "rs-003", "correct_answer", "error"),
        ("radsafe.csv", 6, "rs-004", "option_2_unsafe", "error"),
        ("radsafe.csv", 7, "rs-005", "option_*", "error"),
        ("radsafe.csv", 8, "rs-006", "option_5_high_risk", "error"),
        ("radsafe.csv", 9, "rs-001", "question_id", "error"),
        ("radsafe.csv", 4, "rs-002", "deep_research_report", "warning"),
    ]
    assert "disagrees with answer_idx 'D'" in message(bench, "rs-003", "correct_answer")
    assert "got 'maybe'" in message(bench, "rs-004", "option_2_unsafe")
    assert "only 4 options" in message(bench, "rs-006", "option_5_high_risk")
    assert bench.n_records == 7  # the trailing blank line is not a record
    assert_accounted(bench)
    q1, q2 = bench.questions
    assert q1.agentic_report == "Report: biconvex shape and fracture,\nso extradural."
    assert q1.flag("A", "high_risk") and q1.flag("E", "unsafe")  # "1" and "1.0"
    assert q2.letters == list("ABCD") and q2.flag("C", "unsafe")  # "true"; an empty E cell is no option


def test_radsafe_csv_with_renamed_header_via_manifest():
    bench = load_any(FIX / "radsafe_csv.yaml")
    assert bench.name == "renamed-csv" and bench.errors == []
    assert [q.id for q in bench.questions] == ["rs-001", "rs-002"]
    assert where(bench) == [("radsafe_renamed.csv", 4, "rs-002", "Report", "warning")]
    q1 = bench.questions[0]
    assert q1.answer == "B" and q1.flag("A", "high_risk") and q1.flag("E", "unsafe")
    assert q1.evidence_conflict == "Crescentic collections are extradural." and q1.subspecialty == "neuro"


def test_radsafe_csv_columns_from_python_match_the_manifest():
    from ragsafe.corpora.formats.radsafe_csv import load_radsafe_csv
    cols = {"id": "ID", "question": "Question", "options": "{letter}", "answer": "Key", "answer_check": None,
            "evidence_clean": "Clean evidence", "evidence_conflict": "Conflict evidence", "agentic_report": "Report",
            "subspecialty": "Area", "question_type": "Type", "flag": "{letter}_{flag}"}
    a = load_radsafe_csv([FIX / "radsafe_renamed.csv"], "x", columns=cols)
    b = load_any(FIX / "radsafe_csv.yaml")
    assert a.content_hash() == b.content_hash()


def test_radsafe_csv_missing_column_names_it_and_the_header(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("question_id,Question,option_A,option_B,correct_answer\nq1,What?,x,y,A\nq2,Why?,x,y,B\n")
    bench = load_any(p)
    assert bench.questions == [] and bench.n_records == 2
    assert where(bench) == [("r.csv", 1, None, "question_text", "error")]
    msg = bench.problems[0].message
    assert "not in the header" in msg and "'Question'" in msg and "columns: {question:" in msg
    assert "2 records in 1 file(s), 0 loaded, 2 refused" in bench.summary()


def test_radsafe_csv_unknown_column_key_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"unknown key\(s\) \['questoin'\]"):
        load_any(FIX / "radsafe.csv", columns={"questoin": "Q"})


def test_radsafe_csv_options_as_one_json_column(tmp_path):
    p = tmp_path / "j.csv"
    p.write_text('question_id,question_text,options,correct_answer\n'
                 'q1,What?,"{""A"": ""x"", ""B"": ""y""}",B\n'
                 'q2,Why?,"{not json",A\n')
    bench = load_any(p)
    assert [q.id for q in bench.questions] == ["q1"] and bench.questions[0].options == {"A": "x", "B": "y"}
    assert where(bench) == [("j.csv", 3, "q2", "options", "error")]
    assert "not a JSON object" in bench.problems[0].message


# --------------------------------------------------------------------------------------------
# generic MCQ


def test_mcq_jsonl():
    bench = load_any(FIX / "mcq.jsonl")
    assert [q.id for q in bench.questions] == ["m1", "m2", "mcq-00005", "m7"]
    assert where(bench) == [
        ("mcq.jsonl", 10, None, None, "error"),
        ("mcq.jsonl", 3, "m3", "answer", "error"),
        ("mcq.jsonl", 4, "m4", "answer", "error"),
        ("mcq.jsonl", 8, "m8", "labels.B.high_risk", "error"),
        ("mcq.jsonl", 9, "m9", "options", "error"),
        ("mcq.jsonl", 5, "m1", "id", "error"),
        ("mcq.jsonl", 1, "m1", "labels", "warning"),
        ("mcq.jsonl", 2, "m2", "labels", "warning"),
        ("mcq.jsonl", 6, "mcq-00005", "labels", "warning"),
    ]
    assert "is a number" in message(bench, "m3", "answer")
    assert "neither an option letter" in message(bench, "m4", "answer")
    assert "duplicate id (first at" in message(bench, "m1", "id")
    assert bench.n_records == 10
    assert_accounted(bench)
    by_id = {q.id: q for q in bench.questions}
    assert by_id["m2"].answer == "C" and by_id["m2"].options["C"] == "Consolidation"  # list options, text answer
    assert by_id["mcq-00005"].answer == "D"  # lower-case letter
    assert by_id["m7"].flag("C", "high_risk") and by_id["m7"].flag("B", "contradicts")
    assert by_id["m1"].labels is None and by_id["m1"].flag("B", "unsafe") is None
    assert not bench.has_labels()


def test_mcq_mirage_shaped_sets_and_subset():
    bench = load_any(FIX / "mirage_like.json")
    assert [q.id for q in bench.questions] == ["medqa-0000", "pubmedqa-0000"]
    assert [q.source for q in bench.questions] == ["medqa", "pubmedqa"]
    assert where(bench) == [("mirage_like.json", 13, "medqa-0001", "answer", "error")]
    assert "missing answer" in bench.problems[0].message
    only = load_any(f"mcq:{FIX}/mirage_like.json", subset="pubmedqa")
    assert [q.id for q in only.questions] == ["pubmedqa-0000"] and only.problems == []
    assert only.questions[0].options == {"A": "yes", "B": "no", "C": "maybe"}
    wrong = load_any(FIX / "mirage_like.json", "mcq", subset="nope")
    assert where(wrong) == [("mirage_like.json", 1, None, "subset", "error")]
    assert "['medqa', 'pubmedqa']" in wrong.problems[0].message


def test_mcq_json_list_names_lines_and_makes_ids():
    bench = load_any(FIX / "mcq_list.json")
    assert [q.id for q in bench.questions] == ["mcq_list-00000"]
    assert where(bench) == [("mcq_list.json", 10, "mcq_list-00001", "options.B", "error")]


def test_mcq_custom_field_names_are_used_in_messages(tmp_path):
    p = tmp_path / "medqa.jsonl"
    p.write_text(json.dumps({"qid": "a", "stem": "Which?", "choices": {"A": "x", "B": "y"}, "key": "B"}) + "\n" +
                 json.dumps({"qid": "b", "stem": "", "choices": {"A": "x", "B": "y"}, "key": "A"}) + "\n")
    bench = load_any(p, "mcq", fields={"id": "qid", "question": "stem", "options": "choices", "answer": "key"})
    assert [q.id for q in bench.questions] == ["a"] and bench.questions[0].answer == "B"
    assert where(bench) == [("medqa.jsonl", 2, "b", "stem", "error")]


def test_mcq_accepts_radsafe_style_flat_flags(tmp_path):
    p = tmp_path / "flat.jsonl"
    zero = {f"option_{i}_{f}": 0 for i in (1, 2, 3) for f in ("high_risk", "unsafe", "contradicts")}
    recs = [{"id": "f1", "question": "Which?", "options": ["x", "y", "z"], "answer": "A", **zero, "option_3_unsafe": 1},
            # two options; zero flags for a third option are harmless, a set flag there is not
            {"id": "f2", "question": "Which?", "options": ["x", "y"], "answer": "A", **zero},
            {"id": "f3", "question": "Which?", "options": ["x", "y"], "answer": "A", **zero, "option_3_high_risk": 1}]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    bench = load_any(p)
    assert [q.id for q in bench.questions] == ["f1", "f2"]
    assert bench.questions[0].flag("C", "unsafe") and not bench.questions[0].flag("A", "unsafe")
    assert bench.questions[1].letters == ["A", "B"] and bench.has_labels()
    assert where(bench) == [("flat.jsonl", 3, "f3", "option_3_high_risk", "error")]


def test_mcq_keeps_ragsafe_keys_so_ragsafe_files_load_identically():
    demo = DEMO_DATA / "demo_benchmark" / "gu.jsonl"
    assert load_any(f"mcq:{demo}").content_hash() == load_any(f"ragsafe:{demo}").content_hash()


# --------------------------------------------------------------------------------------------
# detection, specs, manifests


@pytest.mark.parametrize("name, fmt", [
    ("radsafe_unified.jsonl", "radsafe"), ("radsafe_labels.json", "radsafe-labels"), ("radsafe.csv", "radsafe-csv"),
    ("mcq.jsonl", "mcq"), ("mirage_like.json", "mcq"), ("mcq_list.json", "mcq"), ("radsafe_pair.yaml", "manifest"),
])
def test_detect(name, fmt):
    assert detect(FIX / name) == fmt


def test_detect_ragsafe_schema():
    demo = DEMO_DATA / "demo_benchmark" / "neuro.jsonl"
    assert detect(demo) == "ragsafe"


def test_registered_formats():
    assert {"ragsafe", "radsafe", "radsafe-csv", "mcq"} <= set(loaders.names())


def test_explicit_format_overrides_detection():
    # forced ragsafe on a generic MCQ file: the strict schema refuses the record without an id
    bench = load_any(f"ragsafe:{FIX}/mcq.jsonl")
    assert any(p.field == "id" and p.line == 6 for p in bench.errors)


def test_spec_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_any(tmp_path / "absent.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match=r"cannot tell the format.*mcq:"):
        load_any(tmp_path / "x.txt")
    with pytest.raises(DataError, match=r"takes no option\(s\) \['subset'\]"):
        load_any(FIX / "radsafe.csv", subset="x")
    with pytest.raises(UnknownName, match="benchmark format"):
        load_any(FIX / "mcq.jsonl", "nosuch")


def test_manifest_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("format: radsafe\nunified: u.jsonl\nlabls: l.json\n")
    with pytest.raises(DataError, match=r"unknown key\(s\) \['labls'\]"):
        load_any(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("format: csv\npath: x.csv\n")
    with pytest.raises(DataError, match="'csv' is not a format"):
        load_any(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("format: radsafe\nlabels: l.json\n")
    with pytest.raises(DataError, match="no data file given"):
        load_any(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("format: mcq\npath: missing.json\n")
    with pytest.raises(DataError, match="relative to the manifest"):
        load_any(tmp_path / "d.yaml")
    (tmp_path / "e.yaml").write_text("format: [unclosed\n")
    with pytest.raises(DataError, match="invalid YAML"):
        load_any(tmp_path / "e.yaml")


def test_folder_of_jsonl_and_load_benchmark_routing(tmp_path):
    demo_dir = DEMO_DATA / "demo_benchmark"
    folder = load_benchmark(str(demo_dir))
    assert folder.content_hash() == load_benchmark("demo").content_hash()
    assert load_benchmark(f"radsafe:{FIX}/radsafe_unified.jsonl+{FIX}/radsafe_labels.json").n_records == 9
    with pytest.raises(UnknownName, match="valid names: .*demo"):
        load_benchmark("no-such-benchmark")


def test_validate_cli_prints_problems_and_fails_on_errors(capsys):
    from ragsafe.cli.main import main

    assert main(["validate", str(FIX / "radsafe_csv.yaml")]) == 0
    assert main(["validate", str(FIX / "mcq.jsonl")]) == 1
    out = capsys.readouterr().out
    assert "mcq.jsonl:3: record 'm3' field 'answer': answer 2 is a number" in out


# --------------------------------------------------------------------------------------------
# cross-record validation in benchmark.py


def _write(tmp_path, recs) -> Path:
    p = tmp_path / "b.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p


def _rec(i, **kw):
    opts = {"A": "true statement one", "B": "true statement two", "C": "the false statement"}
    lab = {L: {"high_risk": 0, "unsafe": 0, "contradicts": 0} for L in opts}
    return {"id": f"q{i}", "question": "Which is NOT correct?", "options": opts, "answer": "C",
            "evidence_clean": "e", "evidence_conflict": "c", "labels": lab, **kw}


def test_partial_evidence_is_a_warning_per_question_lacking_it(tmp_path):
    recs = [_rec(1), _rec(2), {k: v for k, v in _rec(3).items() if k != "evidence_conflict"}]
    bench = load_any(_write(tmp_path, recs))
    assert where(bench) == [("b.jsonl", 3, "q3", "evidence_conflict", "warning")]
    assert "2 of 3" in bench.problems[0].message and bench.errors == []
    # a field no question has is normal (the runner refuses graphs that need it)
    assert not any(p.field == "agentic_report" for p in bench.problems)


def test_negated_label_convention_warnings(tmp_path):
    good = _rec(1, negated=True)
    good["labels"]["C"] = {"high_risk": 1, "unsafe": 1, "contradicts": 1}
    flipped = _rec(2, negated=True)  # answer-risk framing: distractors flagged, correct option clean
    flipped["labels"]["A"] = {"high_risk": 1, "unsafe": 0, "contradicts": 1}
    bench = load_any(_write(tmp_path, [good, flipped]))
    assert where(bench) == [("b.jsonl", 2, "q2", "labels.C.contradicts", "warning"),
                            ("b.jsonl", 2, "q2", "labels", "warning")]
    assert "['A']" in bench.problems[1].message


def test_conflict_target_equal_to_answer_is_flagged(tmp_path):
    bench = load_any(_write(tmp_path, [_rec(1, conflict_target="C")]))
    assert where(bench) == [("b.jsonl", 1, "q1", "conflict_target", "warning")]


def test_ragsafe_jsonl_counts_unparseable_lines_as_refused(tmp_path):
    p = tmp_path / "b.jsonl"
    p.write_text(json.dumps(_rec(1)) + "\n{oops\n")
    bench = load_any(p)
    assert bench.n_records == 2 and len(bench.questions) == 1
    assert where(bench) == [("b.jsonl", 2, None, None, "error")]


# --------------------------------------------------------------------------------------------
# corpus loaders (corpora/documents.py)


def test_load_folder():
    docs = load_folder(FIX / "corpus_folder")
    by_id = {d.metadata["doc_id"]: d for d in docs}
    assert sorted(by_id) == ["fx-pneumothorax", "pancreatitis", "sub/plain-note"]  # README.md and .json skipped
    assert by_id["fx-pneumothorax"].metadata["title"] == "Pneumothorax (fixture)"  # front matter wins
    assert by_id["fx-pneumothorax"].metadata["area"] == "chest"
    assert not by_id["fx-pneumothorax"].page_content.startswith("---")
    assert by_id["pancreatitis"].metadata["title"] == "Acute pancreatitis"  # first heading
    assert by_id["sub/plain-note"].metadata["title"] == "plain note"  # file name
    assert load_corpus(str(FIX / "corpus_folder"))[0].metadata["doc_id"] == docs[0].metadata["doc_id"]
    assert [d.metadata["doc_id"] for d in load_folder(FIX / "corpus_folder", recursive=False)] == \
        ["pancreatitis", "fx-pneumothorax"]


@pytest.mark.parametrize("name, text, field, fragment", [
    ("a.md", "---\nid: a\ntitle: A\nno closing line\n", "front matter", "no closing '---'"),
    ("a.md", "---\nid: [a\n---\nbody\n", "front matter", "invalid YAML"),
    ("a.md", "---\n- a list\n---\nbody\n", "front matter", "must be a mapping"),
    ("a.md", "---\nid: a\n---\n   \n", "text", "document is empty"),
])
def test_load_folder_malformed(tmp_path, name, text, field, fragment):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError) as e:
        load_folder(tmp_path)
    assert e.value.field == field and fragment in e.value.problem and e.value.file.endswith(name)


def test_load_folder_duplicate_ids_and_missing_folders(tmp_path):
    (tmp_path / "a.md").write_text("---\nid: same\n---\nbody a\n")
    (tmp_path / "b.md").write_text("---\nid: same\n---\nbody b\n")
    with pytest.raises(DataError) as e:
        load_folder(tmp_path)
    assert e.value.record == "same" and e.value.field == "id" and "duplicate document id" in e.value.problem
    assert e.value.file.endswith("b.md") and "a.md" in e.value.problem
    with pytest.raises(DataError, match="does not exist"):
        load_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .md or .txt files"):
        load_folder(tmp_path / "empty")


def test_load_jsonl_dump():
    docs = load_jsonl_dump(FIX / "corpus_dump.jsonl")
    assert [d.metadata["doc_id"] for d in docs] == ["dump-1", "extradural-haematoma", "7"]
    assert [d.metadata["title"] for d in docs] == ["Subdural haematoma", "Extradural haematoma", "7"]
    assert docs[1].page_content.startswith("# Extradural")
    assert [d.metadata["doc_id"] for d in load_corpus(str(FIX / "corpus_dump.jsonl"))] == ["dump-1",
                                                                                           "extradural-haematoma", "7"]


@pytest.mark.parametrize("lines, line, record, field, fragment", [
    (['{"id": "a", "content": "x"}', '{"id": "b", "content": '], 2, None, None, "invalid JSON"),
    (['{"title": "t", "content": "x"}'], 1, None, "id", "neither 'id' nor 'slug'"),
    (['{"id": "a", "content": "x"}', '', '{"id": "b", "content": "  "}'], 3, "b", "content", "no 'content'"),
    (['{"id": "a", "content": "x"}', '{"slug": "a", "text": "y"}'], 2, "a", "id", "duplicate id"),
])
def test_load_jsonl_dump_malformed(tmp_path, lines, line, record, field, fragment):
    p = tmp_path / "dump.jsonl"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        load_jsonl_dump(p)
    err = e.value
    assert (err.line, err.record, err.field) == (line, record, field) and fragment in err.problem
    assert str(err).startswith(f"{p}:{line}")
