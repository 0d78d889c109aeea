"""The official RadSaFE-200 release, in its two forms.

1. **Unified JSONL + labels JSON** (format ``radsafe``; spec ``radsafe:UNIFIED.jsonl+LABELS.json``).
   Each JSONL line: ``question_id``, ``question_text``, ``options`` ``{"A": ..., "E": ...}``,
   ``correct_answer`` and ``metadata`` with ``evidence_clean``, ``evidence_conflict`` and
   ``deep_research_report`` (which becomes ``Question.agentic_report``). The labels file is a JSON
   list of ``question_id``, ``options``, ``answer_idx`` (a letter), ``subspecialty``,
   ``question_type`` and ``option_{1..5}_{high_risk,unsafe,contradicts}`` (option 1 is A).

   The files are joined on ``question_id``: first by the exact text, then, for ids that do not
   match exactly, by the trailing number (the released analysis keys labels by an integer, while
   question ids may carry a prefix such as ``risk_radiorag_017``). Mismatches are problems, never
   silent: a question without labels and a label record without a question are errors, and so is
   an answer that differs between the files; option texts that differ are warnings (the unified
   file's text is used).

2. **One CSV** (format ``radsafe-csv``) with the same content as columns. The released header may
   differ from ours, so every column name is configurable (:class:`RadsafeColumns`, or
   ``columns:`` in a manifest). Empty cells mean "absent".

Example:
    >>> from ragsafe.corpora.loaders import load_any
    >>> bench = load_any("radsafe:RadSaFE-200.jsonl+RadSaFE-200_labels.json")   # doctest: +SKIP
    >>> bench = load_any("radsafe-csv:radsafe200.csv")                           # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from ragsafe.corpora.benchmark import Benchmark, Problem, Question, finish, read_jsonl
from ragsafe.corpora.errors import DataError
from ragsafe.corpora.loaders import (
    Loader,
    _blank,
    _fields,
    flat_labels,
    json_members,
    loaders,
    read_json,
    renamer,
    to_question,
)

LETTERS = "ABCDEFGHIJ"

# ragsafe field -> the unified file's field, so messages name what the user sees in the file
UNIFIED_NAMES = {"id": "question_id", "question": "question_text", "answer": "correct_answer",
                 "evidence_clean": "metadata.evidence_clean", "evidence_conflict": "metadata.evidence_conflict",
                 "agentic_report": "metadata.deep_research_report"}


def _text(v: Any) -> str | None:
    """Evidence-like text; empty strings mean absent (CSV cells and exports write "" for none)."""
    return None if _blank(v) else v if isinstance(v, str) else str(v)


def _letter(v: Any) -> str | None:
    """An option letter (one character A-J, any case), else None."""
    if isinstance(v, str) and len(v.strip()) == 1 and v.strip().upper() in LETTERS:
        return v.strip().upper()
    return None


def _trailing_int(s: str) -> int | None:
    m = re.search(r"(\d+)\s*$", s)
    return int(m.group(1)) if m else None


def _norm(t: Any) -> str:
    return " ".join(str(t).split()).casefold()


def _letters_of(options: Any) -> list[str]:
    if not isinstance(options, dict):
        return []
    return sorted(str(k).strip().upper() for k in options)


class _LabelIndex:
    """Label records by exact id, and by trailing number for ids without an exact match."""

    def __init__(self, path: Path, records: list[tuple[Any, int, Any]], problems: list[Problem]) -> None:
        self.path = path
        self.exact: dict[str, tuple[int, dict]] = {}
        self.by_num: dict[int, list[str]] = {}
        self.used: set[str] = set()
        for _, line, rec in records:
            if not isinstance(rec, dict):
                problems.append(Problem(str(path), line, None, None, "label record is not an object; give "
                                        "question_id, answer_idx and option_*_* flags"))
                continue
            lid = None if _blank(rec.get("question_id")) else str(rec["question_id"]).strip()
            if lid is None:
                problems.append(Problem(str(path), line, None, "question_id", "missing question_id; the record "
                                        "cannot be joined to a question"))
                continue
            if lid in self.exact:
                problems.append(Problem(str(path), line, lid, "question_id", f"duplicate label record (first at "
                                        f"line {self.exact[lid][0]}); keep one"))
                continue
            self.exact[lid] = (line, rec)
            num = _trailing_int(lid)
            if num is not None:
                self.by_num.setdefault(num, []).append(lid)

    def match(self, qid: str) -> tuple[str, int, dict] | None:
        if qid in self.exact:
            key = qid
        else:
            num = _trailing_int(qid)
            cands = [k for k in self.by_num.get(num, []) if k not in self.used] if num is not None else []
            if len(cands) != 1:
                return None
            key = cands[0]
        self.used.add(key)
        line, rec = self.exact[key]
        return key, line, rec

    def unused(self) -> list[tuple[str, int]]:
        return [(k, line) for k, (line, _) in self.exact.items() if k not in self.used]


def load_radsafe(files: list[Path], name: str | None = None) -> Benchmark:
    """The unified JSONL, joined with the labels JSON when given.

    Args:
        files: ``[UNIFIED.jsonl]`` or ``[UNIFIED.jsonl, LABELS.json]``.
        name: benchmark name (default: the unified file's stem).

    Without a labels file (and no ``option_*_*`` flags in the unified records) the questions
    load without labels, label metrics report n/a, and one warning says how to add them.
    """
    if not 1 <= len(files) <= 2:
        raise DataError(files[0], None, None, "radsafe takes UNIFIED.jsonl or UNIFIED.jsonl+LABELS.json")
    unified = files[0]
    labels_path = files[1] if len(files) > 1 else None
    problems: list[Problem] = []
    before = len(problems)
    records = read_jsonl(unified, problems)
    n = len(records) + (len(problems) - before)
    index = None
    if labels_path is not None:
        parsed = read_json(labels_path, problems)
        if parsed is not None:
            data, text = parsed
            if not isinstance(data, list):
                problems.append(Problem(str(labels_path), 1, None, None, "labels file must be a JSON list of records"))
            else:
                index = _LabelIndex(labels_path, json_members(text), problems)
    questions: list[Question] = []
    any_flags = False
    for line, rec in records:
        start = len(problems)
        rid = None if _blank(rec.get("question_id")) else str(rec["question_id"]).strip()

        def bad(file: Path, ln: int | None, fld: str | None, msg: str, sev: str = "error") -> None:
            problems.append(Problem(str(file), ln, rid, fld, msg, sev))

        meta = rec.get("metadata") if rec.get("metadata") is not None else {}
        if not isinstance(meta, dict):
            bad(unified, line, "metadata", "must be an object with evidence_clean, evidence_conflict, "
                "deep_research_report")
            meta = {}
        options = rec.get("options")
        letters = _letters_of(options)
        out = {"id": rid, "question": rec.get("question_text"), "options": options,
               "answer": _letter(rec.get("correct_answer")) or rec.get("correct_answer"),
               "evidence_clean": _text(meta.get("evidence_clean", rec.get("evidence_clean"))),
               "evidence_conflict": _text(meta.get("evidence_conflict", rec.get("evidence_conflict"))),
               "agentic_report": _text(meta.get("deep_research_report", rec.get("deep_research_report"))),
               "subspecialty": meta.get("subspecialty", rec.get("subspecialty")),
               "question_type": meta.get("question_type", rec.get("question_type"))}
        lab_src, lab_line, lab = unified, line, rec  # where flags come from
        if labels_path is not None:
            hit = index.match(rid) if index is not None and rid is not None else None
            if index is None or rid is None:
                lab = None  # no id: already reported
                if index is None:
                    # refusing beats loading the questions without the labels the user asked for
                    bad(unified, line, "question_id", f"its labels cannot be read ({labels_path.name} has an "
                        "error above); fix that file")
            elif hit is None:
                bad(unified, line, "question_id", f"no label record with this id in {labels_path.name}; add one "
                    f"there (or load without labels: radsafe:{unified})")
                lab = None
            else:
                _, lab_line, lab = hit
                lab_src = labels_path
                _join_checks(out, rec, lab, unified, line, labels_path, lab_line, bad)
                for key in ("subspecialty", "question_type"):
                    if not _blank(lab.get(key)):
                        out[key] = lab[key]
        if lab is not None:
            labels = flat_labels(lab, letters, lambda fld, msg, sev: bad(lab_src, lab_line, fld, msg, sev))
            if labels is not None:
                out["labels"] = labels
                any_flags = True
            elif index is not None:
                bad(labels_path, lab_line, "option_*", "label record has no option_{i}_{flag} fields; add "
                    "high_risk, unsafe and contradicts for every option")
        q = to_question(out, str(unified), line, problems, start=start, rename=renamer(UNIFIED_NAMES))
        if q is not None:
            questions.append(q)
    if index is not None:
        for lid, lline in index.unused():
            problems.append(Problem(str(labels_path), lline, lid, "question_id", f"label record without a question "
                                    f"in {unified.name}; remove it or add the question"))
    elif labels_path is None and not any_flags and records:
        problems.append(Problem(str(unified), None, None, "labels", "no labels file given, so label metrics report "
                                f"n/a; load both files with radsafe:{unified}+LABELS.json", "warning"))
    return finish(name or unified.stem, questions, [str(p) for p in files], problems, n,
                  rename=renamer(UNIFIED_NAMES))


def _join_checks(out: dict, rec: dict, lab: dict, unified: Path, line: int, labels_path: Path, lab_line: int,
                 bad) -> None:
    """Answer and option agreement between the unified record and its label record."""
    la = lab.get("answer_idx")
    if not _blank(la) and _letter(la) is None:
        bad(labels_path, lab_line, "answer_idx", f"{la!r} is not a letter; give the correct option letter")
    elif _letter(la) and not _blank(out["answer"]) and _letter(la) != out["answer"]:
        bad(unified, line, "correct_answer", f"{out['answer']!r} here, but {labels_path.name}:{lab_line} "
            f"answer_idx is {_letter(la)!r}; correct the file that is wrong")
    elif _blank(out["answer"]) and _letter(la):
        out["answer"] = _letter(la)
    lopts = lab.get("options")
    uopts = rec.get("options")
    if isinstance(lopts, dict) and isinstance(uopts, dict):
        u = {str(k).strip().upper(): v for k, v in uopts.items()}
        l_ = {str(k).strip().upper(): v for k, v in lopts.items()}
        if sorted(u) != sorted(l_):
            bad(labels_path, lab_line, "options", f"letters {sorted(l_)} differ from the unified file's "
                f"{sorted(u)}; the flags would attach to the wrong options")
        else:
            diff = [k for k in sorted(u) if _norm(u[k]) != _norm(l_[k])]
            if diff:
                bad(labels_path, lab_line, "options", f"text of option(s) {diff} differs from the unified file "
                    "(the unified text is used); check the two files belong together", "warning")


loaders.add("radsafe", Loader("radsafe", load_radsafe, "UNIFIED.jsonl[+LABELS.json]",
                              doc="official RadSaFE-200 release: unified JSONL joined with the labels JSON"))


# --------------------------------------------------------------------------------------------
# single CSV


@dataclasses.dataclass(frozen=True, kw_only=True)
class RadsafeColumns:
    """CSV header names (matched case-insensitively, surrounding spaces ignored)."""

    id: str = "question_id"
    """Question id."""
    question: str = "question_text"
    """Question text."""
    answer: str = "correct_answer"
    """Correct letter."""
    answer_check: str | None = "answer_idx"
    """A second answer column; when both are filled they must agree (the labels file's copy)."""
    options: str = "option_{letter}"
    """Per-letter option columns (``{letter}`` = A, B, ...), or one column holding a JSON object.
    With the default, ``A``..``E`` and a JSON ``options`` column are tried when ``option_A`` is absent."""
    evidence_clean: str = "evidence_clean"
    evidence_conflict: str = "evidence_conflict"
    agentic_report: str = "deep_research_report"
    """Pre-computed research report (becomes ``Question.agentic_report``)."""
    subspecialty: str = "subspecialty"
    question_type: str = "question_type"
    flag: str = "option_{i}_{flag}"
    """Label columns; ``{i}`` = 1 for A, ``{letter}`` = A, ``{flag}`` = high_risk / unsafe / contradicts."""


def load_radsafe_csv(files: list[Path], name: str | None = None, *,
                     columns: dict | RadsafeColumns | None = None) -> Benchmark:
    """RadSaFE-200 as one CSV.

    Args:
        files: ``[FILE.csv]``.
        name: benchmark name (default: the file's stem).
        columns: header names that differ from :class:`RadsafeColumns` (a dict of its fields).

    Example:
        >>> load_radsafe_csv([Path("r.csv")], columns={"question": "Question", "answer": "Key"})  # doctest: +SKIP
    """
    if len(files) != 1:
        raise DataError(files[0], None, None, "radsafe-csv takes one .csv file")
    path = files[0]
    user_cols = columns if isinstance(columns, dict) else {}
    cols = columns if isinstance(columns, RadsafeColumns) else _fields(RadsafeColumns, columns or {}, path, "columns")
    file = str(path)
    problems: list[Problem] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        rows: list[tuple[int, list[str]]] = []
        end = reader.line_num
        for row in reader:
            # a quoted cell may span lines: the record starts on the line after the previous one ended
            rows.append((end + 1, row))
            end = reader.line_num
    if not header:
        raise DataError(path, None, None, "empty file; the first line must be the header")
    where = {h.strip().lower(): i for i, h in enumerate(header)}

    def col(name: str | None) -> int | None:
        return None if name is None else where.get(name.strip().lower())

    opt_mode, opt_cols = _option_columns(cols, where, explicit="options" in user_cols)
    missing = [(f, getattr(cols, f)) for f in ("id", "question") if col(getattr(cols, f)) is None]
    if col(cols.answer) is None and col(cols.answer_check) is None:
        missing.append(("answer", cols.answer))
    if opt_mode is None:
        missing.append(("options", cols.options))
    for fld, name_ in missing:
        problems.append(Problem(file, 1, None, name_, f"column not in the header {header}; name the right one in a "
                                f"manifest (columns: {{{fld}: 'Your header'}}) or rename it"))
    data_rows = [(ln, r) for ln, r in rows if any(c.strip() for c in r)]
    if missing:
        return finish(name or path.stem, [], [file], problems, len(data_rows))
    flag_cols = {}
    for i, letter in enumerate(LETTERS, 1):
        for flag in ("high_risk", "unsafe", "contradicts"):
            c = col(cols.flag.format(i=i, letter=letter, flag=flag))
            if c is not None:
                flag_cols[f"option_{i}_{flag}"] = (c, cols.flag.format(i=i, letter=letter, flag=flag))
    flag_header = {k: h for k, (_, h) in flag_cols.items()}
    names = {"id": cols.id, "question": cols.question, "answer": cols.answer,
             "evidence_clean": cols.evidence_clean, "evidence_conflict": cols.evidence_conflict,
             "agentic_report": cols.agentic_report}
    questions: list[Question] = []
    for line, row in data_rows:
        start = len(problems)

        def cell(name_: str | None) -> str:
            c = col(name_)
            return row[c].strip() if c is not None and c < len(row) else ""

        rid = cell(cols.id) or None
        if len(row) != len(header):
            problems.append(Problem(file, line, rid, None, f"row has {len(row)} cells but the header has {len(header)};"
                                    " check quoting and delimiters"))
        options = _row_options(opt_mode, opt_cols, row, rid, file, line, problems)
        reported = {"options", "answer"} if options is False else set()
        options = None if options is False else options
        ans, check = cell(cols.answer), cell(cols.answer_check)
        ans, check = (_letter(ans) or ans or None), (_letter(check) or check or None)
        if ans and check and ans != check:
            problems.append(Problem(file, line, rid, cols.answer, f"{ans!r} disagrees with {cols.answer_check} "
                                    f"{check!r}; correct the wrong one"))
        rec = {"id": rid, "question": cell(cols.question), "options": options, "answer": ans or check,
               "evidence_clean": _text(cell(cols.evidence_clean)),
               "evidence_conflict": _text(cell(cols.evidence_conflict)),
               "agentic_report": _text(cell(cols.agentic_report)),
               "subspecialty": cell(cols.subspecialty) or None, "question_type": cell(cols.question_type) or None}
        if flag_cols:
            flat = {k: (row[c] if c < len(row) else "") for k, (c, _) in flag_cols.items()}
            labels = flat_labels(flat, _letters_of(options), lambda fld, msg, sev: problems.append(
                Problem(file, line, rid, flag_header.get(fld, fld), msg, sev)))
            rec["labels"] = labels
        opt_name = opt_cols[1] if opt_mode == "json" else None

        def rename(fld: str, _o=opt_name) -> str:
            head, dot, tail = fld.partition(".")
            if head == "options":
                if _o:
                    return _o + dot + tail
                return cols.options.format(letter=tail) if tail and "{letter}" in cols.options else \
                    cols.options.replace("{letter}", "*")
            return names.get(head, head) + dot + tail

        q = to_question(rec, file, line, problems, start=start, rename=rename, reported=reported)
        if q is not None:
            questions.append(q)
    return finish(name or path.stem, questions, [file], problems, len(data_rows), rename=renamer(names))


def _option_columns(cols: RadsafeColumns, where: dict[str, int], explicit: bool):
    """("letters", {letter: col}) or ("json", col) or (None, None)."""
    patterns = [cols.options] if explicit else [cols.options, "{letter}", "options"]
    for pat in patterns:
        if "{letter}" in pat:
            found = {L: where[pat.format(letter=L).lower()] for L in LETTERS if pat.format(letter=L).lower() in where}
            if "A" in found and "B" in found:
                return "letters", found
        elif pat.lower() in where:
            return "json", (where[pat.lower()], pat)
    return None, None


def _row_options(mode: str, where, row: list[str], rid, file: str, line: int, problems: list[Problem]):
    """The row's options, or None after reporting an unreadable JSON cell."""
    if mode == "json":
        c, header = where
        raw = row[c] if c < len(row) else ""
        try:
            return json.loads(raw) if raw.strip() else None
        except json.JSONDecodeError as e:
            problems.append(Problem(file, line, rid, header, f"not a JSON object ({e.msg}); write "
                                    '{"A": "...", "B": "..."}'))
            return False
    # empty cells are absent options (a 4-option question leaves E empty); a gap is reported by
    # the contiguity check
    return {L: row[c].strip() for L, c in sorted(where.items()) if c < len(row) and row[c].strip()}


loaders.add("radsafe-csv", Loader("radsafe-csv", load_radsafe_csv, "FILE.csv", options=("columns",),
                                  doc="RadSaFE-200 as one CSV; column names configurable"))
