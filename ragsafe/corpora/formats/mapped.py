"""Any MCQ table or record file, read through a field mapping: JSON, JSONL, CSV or Parquet.

Public medical MCQ sets and dataset-hub exports lay the same content out in many ways: options as
an object, a list or separate columns (``opa,opb,opc,opd``, ``option_A..option_E``), the answer as
a letter, an index or the option's text. A :class:`FieldMap` says which field holds what; nothing
is guessed (an index answer needs its base, 0 or 1, declared).

Given as a manifest beside the data (``yaml.safe_load``; paths relative to the manifest)::

    format: mapped
    path: medmcqa_dev.parquet
    map:
      question: question
      options: [opa, opb, opc, opd]     # or one field holding an object or a list
      answer: cop
      answer_format: index              # letter (default) | index | text
      index_base: 1                     # with index: 0 or 1, never guessed
      id: id                            # a field, or "line" (default): the row / line number
      subspecialty: subject_name
      question_type: choice_type

or on the command line: ``--benchmark FILE --map question=question,options=opa+opb+opc+opd,answer=cop,
answer_format=index,index_base=1`` (the same keys; several option columns joined by ``+``).
Up to ten options (letters A–J). Optional fields: ``evidence_clean``, ``evidence_conflict``,
``labels`` (an object letter -> {high_risk, unsafe, contradicts}), ``gold_doc_ids``, ``split``,
``conflict_target``. A set without labels runs; label metrics then say n/a and why.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any, Iterator

from ragsafe.corpora.errors import DataError
from ragsafe.corpora.formats.base import Loader, loaders
from ragsafe.corpora.formats.common import _blank, json_members, read_json, read_jsonl, to_question
from ragsafe.corpora.schema import MAX_OPTIONS, Benchmark, Problem, Question, finish

LETTERS = "ABCDEFGHIJ"[:MAX_OPTIONS]
OPTIONAL = ("subspecialty", "question_type", "evidence_clean", "evidence_conflict", "labels", "gold_doc_ids",
            "split", "conflict_target")
ANSWER_FORMATS = ("letter", "index", "text")
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FieldMap:
    """Which field of a record holds what (see the module docstring)."""

    question: str
    """Field with the question text."""
    options: str | tuple[str, ...]
    """One field holding an object {letter: text} or a list, or several fields, one option each, in order."""
    answer: str
    """Field with the correct answer."""
    answer_format: str = "letter"
    """letter | index | text (the exact text of one option)."""
    index_base: int | None = None
    """With answer_format index: 0 or 1 (required; never guessed)."""
    id: str = "line"
    """Field with the record id, or "line": ``<file stem>-<n>``, n the line (JSONL, CSV) or position (JSON, Parquet)."""
    subspecialty: str | None = None
    question_type: str | None = None
    evidence_clean: str | None = None
    evidence_conflict: str | None = None
    labels: str | None = None
    gold_doc_ids: str | None = None
    split: str | None = None
    conflict_target: str | None = None

    def describe(self) -> str:
        """One line per mapped field, for ``ragsafe validate``."""
        rows = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is not None:
                rows.append(f"  {f.name:<17} <- {'+'.join(v) if isinstance(v, tuple) else v}")
        return "\n".join(rows)

    def fields_used(self) -> set[str]:
        used = {self.question, self.answer}
        used |= set(self.options) if isinstance(self.options, tuple) else {self.options}
        if self.id != "line":
            used.add(self.id)
        used |= {getattr(self, k) for k in OPTIONAL if getattr(self, k)}
        return used


def parse_map(spec: str | dict | FieldMap, where: str = "--map") -> FieldMap:
    """A :class:`FieldMap` from ``key=value,...`` (``--map``) or a manifest's ``map:`` object."""
    if isinstance(spec, FieldMap):
        return spec
    if isinstance(spec, str):
        items = {}
        for part in [p for p in spec.split(",") if p.strip()]:
            if "=" not in part:
                raise DataError(where, None, None, f"{part!r} is not key=value; e.g. question=stem,options=opa+opb,answer=cop")
            k, v = part.split("=", 1)
            v = v.strip()
            items[k.strip()] = tuple(x.strip() for x in v.split("+")) if "+" in v else v
        spec = items
    if not isinstance(spec, dict):
        raise DataError(where, None, "map", "expected an object of field names (question, options, answer, ...)")
    names = {f.name for f in dataclasses.fields(FieldMap)}
    unknown = sorted(set(spec) - names)
    if unknown:
        raise DataError(where, None, unknown[0], f"unknown key(s) {unknown}; valid: {', '.join(sorted(names))}")
    missing = [k for k in ("question", "options", "answer") if _blank(spec.get(k))]
    if missing:
        raise DataError(where, None, missing[0], f"missing {', '.join(missing)}: name the field(s) that hold them")
    kw = dict(spec)
    if isinstance(kw["options"], list):
        kw["options"] = tuple(str(x) for x in kw["options"])
    if isinstance(kw["options"], tuple) and len(kw["options"]) > MAX_OPTIONS:
        raise DataError(where, None, "options", f"{len(kw['options'])} option columns; at most {MAX_OPTIONS} (letters A-J)")
    fmt = kw.get("answer_format", "letter")
    if fmt not in ANSWER_FORMATS:
        raise DataError(where, None, "answer_format", f"{fmt!r} is not a format; valid: {', '.join(ANSWER_FORMATS)}")
    base = kw.get("index_base")
    if fmt == "index":
        if base is None or str(base).strip() not in ("0", "1"):
            raise DataError(where, None, "index_base", "answer_format index needs index_base: 0 or 1 (the first "
                            "option's index); it is never guessed")
        kw["index_base"] = int(str(base).strip())
    elif base is not None:
        raise DataError(where, None, "index_base", "index_base is only for answer_format index; drop it")
    for k, v in list(kw.items()):
        if k not in ("options", "index_base") and v is not None and not isinstance(v, str):
            raise DataError(where, None, k, f"must be a field name (text), got {v!r}")
    return FieldMap(**kw)


def _rows(path: Path, problems: list[Problem]) -> Iterator[tuple[int, int, Any]]:
    """(line for messages, position for ``id: line``, record) of each record of ``path``: JSONL and CSV
    records are numbered by their line, JSON list members and Parquet rows by their position from 1."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        for line, rec in read_jsonl(path, problems):
            yield line, line, rec
    elif suffix == ".json":
        parsed = read_json(path, problems)
        if parsed is None:
            return
        data, text = parsed
        if not isinstance(data, (list, dict)):
            problems.append(Problem(str(path), 1, None, None, "expected a JSON list of records or an object of them"))
            return
        for i, (_key, line, rec) in enumerate(json_members(text), start=1):
            yield line, i, rec
    elif suffix == ".csv":
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            problems.append(Problem(str(path), None, None, None, f"not UTF-8 text ({e.reason} at byte {e.start}); "
                                    "save the file as UTF-8"))
            return
        reader = csv.DictReader(io.StringIO(text, newline=""))
        for rec in reader:
            yield reader.line_num, reader.line_num, {k: v for k, v in rec.items() if k is not None}
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            problems.append(Problem(str(path), None, None, None, "Parquet needs pyarrow: pip install 'ragsafe[frames]'"))
            return
        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001  (pyarrow raises several types for a bad file)
            problems.append(Problem(str(path), None, None, None, f"not a readable Parquet file: {e}"))
            return
        for i, rec in enumerate(table.to_pylist(), start=1):
            yield i, i, rec
    else:
        problems.append(Problem(str(path), None, None, None, f"unsupported file type {suffix!r}; the mapped format "
                                f"reads {', '.join(SUFFIXES)}"))


def _options(rec: dict, m: FieldMap, report) -> dict[str, Any] | None:
    if isinstance(m.options, tuple):
        vals = [rec.get(c) for c in m.options]
        absent = [c for c in m.options if c not in rec]
        if absent:
            report(absent[0], f"option column(s) {absent} not in this record")
            return None
        while vals and _blank(vals[-1]):  # fewer options than columns: trailing blanks
            vals.pop()
        return {LETTERS[i]: v for i, v in enumerate(vals)}
    raw = rec.get(m.options)
    if isinstance(raw, dict):
        return {str(k).strip().upper(): v for k, v in raw.items()}
    if isinstance(raw, (list, tuple)):
        if len(raw) > MAX_OPTIONS:
            report(m.options, f"{len(raw)} options; at most {MAX_OPTIONS} (letters A-J)")
            return None
        return {LETTERS[i]: v for i, v in enumerate(raw)}
    report(m.options, "missing options" if _blank(raw) else f"options must be an object or a list, got {raw!r}")
    return None


def _answer(raw: Any, options: dict[str, Any], m: FieldMap) -> tuple[str | None, str | None]:
    """(letter, problem)."""
    if _blank(raw):
        return None, "missing answer"
    if m.answer_format == "letter":
        s = str(raw).strip().upper()
        return (s, None) if s in options else (None, f"answer {raw!r} is not one of the option letters {list(options)}")
    if m.answer_format == "index":
        try:
            i = int(str(raw).strip()) - int(m.index_base or 0)
        except ValueError:
            return None, f"answer {raw!r} is not an integer index (answer_format index, index_base {m.index_base})"
        letters = list(options)
        if not 0 <= i < len(letters):
            return None, (f"answer index {raw!r} (base {m.index_base}) is outside the {len(letters)} options; "
                          "check index_base")
        return letters[i], None
    same = [L for L, t in options.items() if isinstance(t, str) and t.strip() == str(raw).strip()]
    if len(same) == 1:
        return same[0], None
    return None, (f"answer {raw!r} matches {len(same)} option texts exactly; answer_format text needs exactly one"
                  if same else f"answer {raw!r} is not the exact text of any option")


def preview(q: Question) -> str:
    """One question as ragsafe reads it (``ragsafe validate`` prints the first of a mapped file)."""
    lines = [f"id: {q.id}", f"question: {q.question[:200]}"]
    lines += [f"{k}. {v}" + ("   <- answer" if k == q.answer else "") for k, v in q.options.items()]
    for k in ("subspecialty", "question_type"):
        if getattr(q, k, None):
            lines.append(f"{k}: {getattr(q, k)}")
    lines.append(f"labels: {'yes' if q.labels else 'none (label metrics will be n/a)'}")
    lines.append("evidence: " + (", ".join(k for k in ("evidence_clean", "evidence_conflict") if getattr(q, k, None))
                                 or "none (evidence conditions cannot run)"))
    return "\n".join(lines)


def load_mapped(files: list[Path], name: str | None = None, *, map: str | dict | FieldMap | None = None
                ) -> Benchmark:
    """Read MCQ records from JSON, JSONL, CSV or Parquet files through a field mapping."""
    if map is None:
        raise DataError(files[0], None, None, "the mapped format needs a field mapping: --map question=...,"
                        "options=...,answer=... or a manifest with a map: section")
    m = parse_map(map, str(files[0]))
    problems: list[Problem] = []
    questions: list[Question] = []
    n = 0
    unused: set[str] = set()
    for path in files:
        file = str(path)
        for line, pos, rec in _rows(path, problems):
            n += 1
            start = len(problems)
            if not isinstance(rec, dict):
                problems.append(Problem(file, line, None, None, f"record is {type(rec).__name__}, not an object"))
                continue
            unused |= set(rec) - m.fields_used()
            if m.id == "line":
                rid = f"{path.stem}-{pos}"
            else:
                rid = None if _blank(rec.get(m.id)) else str(rec.get(m.id)).strip()
                if rid is None:
                    problems.append(Problem(file, line, None, m.id, f"missing id in field {m.id!r}; fill it or "
                                            "map id: line to number records by line"))
                    continue

            def report(field, msg, sev="error", _rid=rid, _line=line):
                problems.append(Problem(file, _line, _rid, field, msg, sev))

            options = _options(rec, m, report)
            out: dict[str, Any] = {"id": rid, "question": rec.get(m.question), "options": options}
            for k in OPTIONAL:
                src = getattr(m, k)
                if src and not _blank(rec.get(src)):
                    out[k] = rec.get(src)
            reported = set()
            if options:
                letter, msg = _answer(rec.get(m.answer), options, m)
                out["answer"] = letter
                if msg:
                    report(m.answer, msg)
                    reported.add("answer")
            else:
                reported |= {"answer", "options"}
            back = {"question": m.question, "answer": m.answer,
                    "options": m.options if isinstance(m.options, str) else "+".join(m.options)}
            back.update({k: getattr(m, k) for k in OPTIONAL if getattr(m, k)})
            q = to_question(out, file, line, problems, start=start, reported=reported,
                            rename=lambda fld, _b=back: (_b.get(fld.split(".", 1)[0], fld.split(".", 1)[0])
                                                         + ("." + fld.split(".", 1)[1] if "." in fld else "")))
            if q is not None:
                questions.append(q)
    if unused:
        problems.append(Problem(str(files[0]), None, None, None,
                                f"field(s) not mapped, ignored: {', '.join(sorted(unused))}", "warning"))
    bench = finish(name or files[0].stem, questions, [str(p) for p in files], problems, n)
    bench.mapping = m
    return bench


loaders.add("mapped", Loader("mapped", load_mapped, "FILE.json|FILE.jsonl|FILE.csv|FILE.parquet", options=("map",),
                             doc="any MCQ layout through a field mapping (--map or a manifest's map:)"))
