"""Untrusted input files: encodings, bounds, empty files, unknown keys, folders, semantics, and
`ragsafe validate`'s exit codes. Every outcome is a loaded result or an error naming the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragsafe.cli.main import main
from ragsafe.corpora import reading
from ragsafe.corpora.documents import CorpusError, check_corpus, load_folder
from ragsafe.corpora.errors import DataError
from ragsafe.corpora.loaders import load_any
from tests.paths import FIXTURES, ROOT

FIX = FIXTURES / "data"


def rec(i: int = 1, **kw) -> dict:
    return {"id": f"q{i}", "question": f"Question {i}?", "options": {"A": "a", "B": "b", "C": "c"}, "answer": "B",
            **kw}


def jsonl(*recs: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in recs)


def errors(bench) -> list[str]:
    return [str(p) for p in bench.errors]


# --------------------------------------------------------------------------------------------
# encodings


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf8_with_or_without_bom_and_utf16_32_with_bom_load_every_record(tmp_path, encoding):
    p = tmp_path / "b.jsonl"
    data = jsonl(rec(1), rec(2), rec(3)).encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):  # no BOM of their own: add one, as Windows tools do
        data = ("\ufeff" + jsonl(rec(1), rec(2), rec(3))).encode(encoding)
    p.write_bytes(data)
    bench = load_any(p)
    assert [q.id for q in bench.questions] == ["q1", "q2", "q3"], bench.problems  # the first record is kept
    assert not bench.errors


@pytest.mark.parametrize("data, fragment", [
    (jsonl(rec()).encode("utf-16-le"), "UTF-16-LE without a byte-order mark"),
    (jsonl(rec()).encode("utf-16-be"), "UTF-16-BE without a byte-order mark"),
    ((json.dumps(rec(question="Qué?"), ensure_ascii=False) + "\n").encode("latin-1"), "not UTF-8: byte 0xe9"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "not a text file"),
    (b"\xff\xfe" + b"\x00\xd8", "UTF-16-LE byte-order mark but is not valid"),
])
def test_other_encodings_are_refused_naming_file_and_encoding(tmp_path, data, fragment):
    p = tmp_path / "b.jsonl"
    p.write_bytes(data)
    bench = load_any(p)
    assert not bench.questions
    (err,) = bench.errors
    assert err.file == str(p) and fragment in err.message and "UTF-8" in err.message


def test_csv_from_excel_with_bom_and_utf16(tmp_path):
    text = (FIX / "radsafe.csv").read_text(encoding="utf-8")
    want = [q.id for q in load_any(FIX / "radsafe.csv").questions]
    for enc in ("utf-8-sig", "utf-16"):
        p = tmp_path / f"{enc}.csv"
        p.write_bytes(text.encode(enc))
        assert [q.id for q in load_any(p).questions] == want


# --------------------------------------------------------------------------------------------
# empty files, bounds


@pytest.mark.parametrize("name, text, fragment", [
    ("e.jsonl", "", "file is empty"),
    ("w.jsonl", "  \n\t\n\n", "file is empty"),
    ("c.jsonl", "# a comment\n// another\n\n", "only comments"),
    ("e.json", "", "file is empty"),
    ("w.json", "  \n ", "file is empty"),
])
def test_empty_blank_and_comment_only_files_are_errors(tmp_path, name, text, fragment):
    p = tmp_path / name
    p.write_text(text)
    bench = load_any(p)
    assert len(bench.errors) == 1 and fragment in bench.errors[0].message and bench.errors[0].file == str(p)
    assert main(["validate", str(p)]) == 1


@pytest.mark.parametrize("text, fragment", [("", "empty"), ("question_id,question_text\n", "no data rows"),
                                            ("\n\n", "empty")])
def test_empty_csv_is_an_error(tmp_path, text, fragment):
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=fragment) if fragment == "empty" else _no_raise():
        bench = load_any(p)
        assert any(fragment in e.message for e in bench.errors)
    assert main(["validate", str(p)]) == 1


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_deep_nesting_is_refused_naming_the_bound(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "d.json").write_text(deep)
    (tmp_path / "d.jsonl").write_text(json.dumps(rec(1)) + "\n" + '{"id": ' + deep + "}\n")
    (tmp_path / "d.yaml").write_text("format: mcq\npath: " + "[" * 5000 + "]" * 5000 + "\n")
    b = load_any(tmp_path / "d.json")
    assert "nested more than 64 levels" in b.errors[0].message
    b = load_any(tmp_path / "d.jsonl")
    assert [q.id for q in b.questions] == ["q1"] and b.errors[0].line == 2 and "64 levels" in b.errors[0].message
    with pytest.raises(DataError, match="64 levels"):
        load_any(tmp_path / "d.yaml")


def test_line_and_cell_length_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "MAX_LINE_CHARS", 500)
    import ragsafe.corpora.formats.common as common
    import ragsafe.corpora.formats.radsafe_csv as rcsv

    monkeypatch.setattr(common, "MAX_LINE_CHARS", 500)
    monkeypatch.setattr(rcsv, "MAX_LINE_CHARS", 500)
    p = tmp_path / "l.jsonl"
    p.write_text(jsonl(rec(1), rec(2, question="x" * 1000), rec(3)))
    b = load_any(p)
    assert [q.id for q in b.questions] == ["q1", "q3"] and b.errors[0].line == 2
    assert "over the 500 bound" in b.errors[0].message
    c = tmp_path / "l.csv"
    c.write_text("question_id,question_text,option_A,option_B,correct_answer\nq1," + "y" * 1000 + ",a,b,A\n")
    with pytest.raises(DataError, match="longer than 500 characters"):
        load_any(c)


def test_a_file_over_the_size_bound_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "MAX_FILE_BYTES", 1000)
    p = tmp_path / "big.jsonl"
    p.write_text(jsonl(*[rec(i) for i in range(50)]))
    b = load_any(p)
    assert "bound of ragsafe's loaders" in b.errors[0].message and not b.questions


# --------------------------------------------------------------------------------------------
# unknown keys and columns, every problem


def test_unknown_keys_are_warned_by_name_once_per_file(tmp_path):
    p = tmp_path / "u.jsonl"
    p.write_text(jsonl(rec(1, evidence_clen="typo"), rec(2, evidence_clen="typo"), rec(3, extra=1)))
    b = load_any(p)
    assert len(b.questions) == 3 and not b.errors
    by_field = {w.field: w for w in b.warnings}
    assert set(by_field) == {"evidence_clen", "extra"}
    assert "2 record(s) (lines 1, 2)" in by_field["evidence_clen"].message and "evidence_clean" in \
        by_field["evidence_clen"].message


def test_unknown_keys_of_radsafe_files_and_csv_columns_are_warned(tmp_path):
    u = tmp_path / "u.jsonl"
    good = json.loads((FIX / "radsafe_unified.jsonl").read_text().splitlines()[0])
    good["notes"] = "x"
    good["metadata"]["reviewer"] = "y"
    u.write_text(json.dumps(good) + "\n")
    b = load_any(u)
    assert {w.field for w in b.warnings} >= {"notes", "metadata.reviewer"}
    c = tmp_path / "t.csv"
    text = (FIX / "radsafe.csv").read_text().splitlines()
    c.write_text("\n".join([text[0] + ",Reviewer Notes"] + [ln + ",x" for ln in text[1:2]]) + "\n")
    b = load_any(c)
    assert any("Reviewer Notes" in w.message and "unknown column" in w.message for w in b.warnings)


def test_every_problem_of_a_file_is_reported(tmp_path):
    p = tmp_path / "many.jsonl"
    p.write_text(jsonl(rec(1)) + "{bad json\n" + jsonl(rec(3, answer="Z")) + "[1, 2]\n" + jsonl(rec(5, options={})))
    b = load_any(p)
    assert [q.id for q in b.questions] == ["q1"]
    assert sorted(e.line for e in b.errors) == [2, 3, 4, 5]
    assert b.n_records == 5


def test_corpus_problems_are_all_reported(tmp_path):
    (tmp_path / "a.md").write_text("---\nid: a\ntitle: [unclosed\n---\nbody\n")
    (tmp_path / "b.md").write_text("---\nid: b\n---\n   \n")
    (tmp_path / "c.md").write_text("---\nid: c\ntitle: C\n---\nbody c\n")
    (tmp_path / "d.md").write_text("---\nid: c\ntitle: D\n---\nbody d\n")
    with pytest.raises(CorpusError) as e:
        load_folder(tmp_path)
    assert len([p for p in e.value.problems if p.severity == "error"]) == 3
    msg = str(e.value)
    assert "3 error(s)" in msg and "a.md" in msg and "b.md" in msg and "d.md" in msg


# --------------------------------------------------------------------------------------------
# folders: non-text files, symbolic links, ids


def test_corpus_folder_skips_non_text_refuses_escaping_links_and_warns_on_missing_titles(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "ok.md").write_text("# Title\nbody\n")
    (corpus / "untitled.txt").write_text("no heading here\n")
    (corpus / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    (corpus / "binary.md").write_bytes(b"\x00\x01\x02\x03")
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret\nmust never be indexed\n")
    (corpus / "link.md").symlink_to(outside)
    (corpus / "sub" / "inside.md").symlink_to(corpus / "ok.md")
    (corpus / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    chk = check_corpus(str(corpus))
    texts = " ".join(d.page_content for d in chk.docs)
    assert "must never be indexed" not in texts
    assert sorted(d.metadata["doc_id"] for d in chk.docs) == ["ok", "sub/inside", "untitled"]
    msgs = {Path(p.file).name: (p.severity, p.message) for p in chk.problems}
    assert msgs["link.md"][0] == "error" and "outside" in msgs["link.md"][1]
    assert msgs["image.png"][0] == "warning" and "skipped" in msgs["image.png"][1]
    assert msgs["binary.md"][0] == "warning" and "not a text file" in msgs["binary.md"][1]
    assert msgs["untitled.txt"][0] == "warning" and "no title" in msgs["untitled.txt"][1]
    assert msgs["dirlink"][0] == "error" and "outside" in msgs["dirlink"][1]
    assert main(["validate", "--corpus", str(corpus)]) == 1
    (corpus / "link.md").unlink()
    (corpus / "dirlink").unlink()
    assert main(["validate", "--corpus", str(corpus)]) == 0  # warnings allowed


def test_benchmark_folder_warns_about_other_files(tmp_path):
    (tmp_path / "a.jsonl").write_text(jsonl(rec(1)))
    (tmp_path / "notes.txt").write_text("x")
    b = load_any(tmp_path)
    assert [q.id for q in b.questions] == ["q1"]
    assert any(w.file.endswith("notes.txt") and "skipped" in w.message for w in b.warnings)


def test_ids_are_never_used_as_file_paths(tmp_path, monkeypatch):
    from ragsafe.config import EndpointConfig
    from ragsafe.experiments.config import RunConfig
    from ragsafe.experiments.execute import run
    from ragsafe.experiments.store import RunStore
    from tests.fault_server import FaultServer

    evil = ["../../escaped", "/tmp/abs-escaped", "..\\\\win", "a/../../b"]
    p = tmp_path / "bench" / "b.jsonl"
    p.parent.mkdir()
    p.write_text(jsonl(*[rec(i, id=x) for i, x in enumerate(evil)]))
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "d.md").write_text("---\nid: ../../doc-escaped\ntitle: T\n---\nbody\n")
    assert [d.metadata["doc_id"] for d in load_folder(tmp_path / "corpus")] == ["../../doc-escaped"]
    monkeypatch.chdir(tmp_path / "bench")
    before = set(tmp_path.rglob("*")) | set(Path("/tmp").glob("abs-escaped*"))
    with FaultServer() as srv:
        d = run(RunConfig(graphs=["closed_book"], benchmark=str(p), out=str(tmp_path / "runs"), cache="off",
                          endpoint=EndpointConfig(base_url=srv.base_url, model="fake")), progress=lambda m: None)
    assert sorted(r["question_id"] for r in RunStore(d).samples()) == sorted(evil)
    after = set(tmp_path.rglob("*")) | set(Path("/tmp").glob("abs-escaped*"))
    assert all(x.is_relative_to(tmp_path / "runs") for x in after - before)


# --------------------------------------------------------------------------------------------
# semantics


def test_conflict_evidence_equal_to_clean_evidence_is_a_warning(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(jsonl(rec(1, evidence_clean="B is right.", evidence_conflict="  b is   RIGHT. ")))
    b = load_any(p)
    assert len(b.questions) == 1
    (w,) = b.warnings
    assert w.field == "evidence_conflict" and "same text as evidence_clean" in w.message


def test_label_values_accept_listed_spellings_and_name_them_when_wrong(tmp_path):
    labels = {L: {"high_risk": "TRUE", "unsafe": "false", "contradicts": 0.0} for L in "ABC"}
    p = tmp_path / "l.jsonl"
    p.write_text(jsonl(rec(1, labels=labels)))
    q = load_any(p).questions[0]
    assert q.labels["A"].high_risk and not q.labels["A"].unsafe
    labels["B"]["unsafe"] = "yes"
    p.write_text(jsonl(rec(1, labels=labels)))
    (e,) = load_any(p).errors
    assert e.field == "labels.B.unsafe" and "true/false" in e.message and "0.0/1.0" in e.message


def test_more_than_five_options_is_an_error_in_the_radsafe_formats(tmp_path):
    six = {L: f"option {L}" for L in "ABCDEF"}
    u = tmp_path / "u.jsonl"
    u.write_text(json.dumps({"question_id": "r1", "question_text": "Q?", "options": six, "correct_answer": "A"}) + "\n")
    (e,) = load_any(f"radsafe:{u}").errors
    assert e.field == "options" and "labels for five" in e.message
    c = tmp_path / "six.csv"
    c.write_text("question_id,question_text,option_A,option_B,option_C,option_D,option_E,option_F,correct_answer\n"
                 "r1,Q?,a,b,c,d,e,f,A\n")
    assert any("labels for five" in x.message for x in load_any(c).errors)
    # the ragsafe format allows up to ten
    p = tmp_path / "ten.jsonl"
    p.write_text(jsonl(rec(1, options=six, answer="A")))
    assert len(load_any(p).questions) == 1


# --------------------------------------------------------------------------------------------
# ragsafe validate


def test_validate_exit_codes(tmp_path, capsys):
    ok = tmp_path / "ok.jsonl"
    ok.write_text(jsonl(rec(1, extra="warned")))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(jsonl(rec(1, answer="Z")))
    assert main(["validate", str(ok)]) == 0
    assert main(["validate", str(bad)]) == 1
    assert main(["validate", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["validate", str(ok), "--graph", "no_such_graph"]) == 2
    assert main(["validate", "--corpus", str(tmp_path), "--graph", "closed_book"]) == 2
    with pytest.raises(SystemExit) as e:
        main(["validate", "--no-such-flag"])
    assert e.value.code == 2
    out = capsys.readouterr().out
    assert "warning:" in out and "error:" in out


def test_validate_radsafe_pair_as_two_paths_or_labels_flag(capsys):
    u, lab = str(FIX / "radsafe_unified.jsonl"), str(FIX / "radsafe_labels.json")
    assert main(["validate", u, lab]) == 1
    two = capsys.readouterr().out
    assert main(["validate", u, "--labels", lab]) == 1
    assert capsys.readouterr().out == two
    assert "labels: yes" in two


def test_validate_graph_lists_questions_it_cannot_run(tmp_path, capsys):
    p = tmp_path / "g.jsonl"
    p.write_text(jsonl(rec(1, evidence_clean="B."), rec(2)))
    assert main(["validate", str(p), "--graph", "clean_evidence", "--graph", "closed_book"]) == 1
    out = capsys.readouterr().out
    assert "graph clean_evidence: cannot run 1 of 2" in out and "'q2'" in out and "evidence_clean" in out
    assert "graph closed_book: can run all 2" in out


def test_validate_never_prints_a_traceback(tmp_path):
    files = {"deep.json": "[" * 200_000, "bin.jsonl": os.urandom(4096), "u16.csv": "a,b\n1,2\n".encode("utf-16-le"),
             "dir.jsonl": None, "bad.yaml": "format: [", "nul.jsonl": b"{\"id\": 1}\x00\n"}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name, data in files.items():
        p = tmp_path / name
        if data is None:
            p.mkdir()
        elif isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)
        r = subprocess.run([sys.executable, "-m", "ragsafe.cli", "validate", str(p)], capture_output=True, text=True,
                           env=env, timeout=120)
        assert "Traceback" not in r.stderr + r.stdout, (name, r.stderr[-2000:])
        assert r.returncode in (1, 2) and name in r.stdout + r.stderr, (name, r.returncode, r.stdout, r.stderr)
