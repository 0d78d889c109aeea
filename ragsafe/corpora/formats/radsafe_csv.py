"""RadSaFE-200 as one CSV table with configurable column names."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

from ragsafe.corpora.errors import DataError
from ragsafe.corpora.formats.base import Loader, loaders
from ragsafe.corpora.formats.common import _fields, flat_labels, renamer, to_question
from ragsafe.corpora.formats.radsafe import LETTERS, MAX_RADSAFE_OPTIONS, _letter, _letters_of, _text, too_many_options
from ragsafe.corpora.reading import MAX_LINE_CHARS, read_text
from ragsafe.corpora.schema import Benchmark, Problem, Question, finish


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
    text = read_text(path)
    if not text.strip():
        raise DataError(path, None, None, "file is empty; the first line must be the header, then one row per "
                        "question")
    csv.field_size_limit(MAX_LINE_CHARS)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    try:
        header = next(reader, None)
        end = reader.line_num
        for row in reader:
            # a quoted cell may span lines: the record starts on the line after the previous one ended
            rows.append((end + 1, row))
            end = reader.line_num
    except csv.Error as e:
        msg = str(e)
        if "field larger" in msg:
            msg = f"a cell is longer than {MAX_LINE_CHARS} characters (the bound of ragsafe's loaders)"
        raise DataError(path, None, None, f"unreadable CSV ({msg}); check quoting (an unclosed \" swallows the "
                        "rest of the file)", line=reader.line_num + 1) from None
    if not header or not any(h.strip() for h in header):
        raise DataError(path, None, None, "empty header line; the first line must name the columns")
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
    if not data_rows:
        problems.append(Problem(file, None, None, None, "no data rows below the header; add one row per question"))
    if missing:
        return finish(name or path.stem, [], [file], problems, len(data_rows))
    flag_cols = {}
    for i, letter in enumerate(LETTERS, 1):
        for flag in ("high_risk", "unsafe", "contradicts"):
            c = col(cols.flag.format(i=i, letter=letter, flag=flag))
            if c is not None:
                flag_cols[f"option_{i}_{flag}"] = (c, cols.flag.format(i=i, letter=letter, flag=flag))
    flag_header = {k: h for k, (_, h) in flag_cols.items()}
    used = {col(getattr(cols, f.name)) for f in dataclasses.fields(cols) if f.name not in ("options", "flag")}
    used |= {c for c, _ in flag_cols.values()}
    used |= set(opt_cols.values()) if opt_mode == "letters" else {opt_cols[0]}
    unknown = [h for i, h in enumerate(header) if i not in used and h.strip()]
    if unknown:
        problems.append(Problem(file, 1, None, None, f"unknown column(s) {unknown} are ignored; rename them to "
                                "ragsafe's names or map them in a manifest (columns: {field: 'Header'})", "warning"))
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
        if isinstance(options, dict) and len(options) > MAX_RADSAFE_OPTIONS:
            problems.append(Problem(file, line, rid, cols.options.replace("{letter}", "*"), too_many_options(options)))
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
