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

import re
from pathlib import Path
from typing import Any

from ragsafe.corpora.errors import DataError
from ragsafe.corpora.formats.base import Loader, loaders
from ragsafe.corpora.formats.common import (
    UnknownKeys,
    _blank,
    flat_labels,
    json_members,
    read_json,
    read_jsonl_counted,
    renamer,
    to_question,
)
from ragsafe.corpora.schema import Benchmark, Problem, Question, finish

LETTERS = "ABCDEFGHIJ"

MAX_RADSAFE_OPTIONS = 5
"""RadSaFE labels exist for five options (``option_1`` .. ``option_5``, A to E)."""


def too_many_options(options: dict) -> str:
    return (f"{len(options)} options {sorted(options)}; the RadSaFE format has labels for five (A-E): drop the "
            "extra options, or write the question in the ragsafe format (up to ten)")

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
        self.unknown = UnknownKeys(("question_id", "options", "answer_idx", "subspecialty", "question_type"))
        for _, line, rec in records:
            if isinstance(rec, dict):
                self.unknown.check(rec, str(path), line)
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
    records, unreadable = read_jsonl_counted(unified, problems)
    n = len(records) + unreadable
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
    meta_keys = ("evidence_clean", "evidence_conflict", "deep_research_report", "subspecialty", "question_type")
    unknown = UnknownKeys({"question_id", "question_text", "options", "correct_answer", "metadata", "answer_idx",
                           *meta_keys})
    unknown_meta = UnknownKeys(meta_keys, what="metadata key", flags=False)
    for line, rec in records:
        start = len(problems)
        unknown.check(rec, str(unified), line)
        if isinstance(rec.get("metadata"), dict):
            unknown_meta.check(rec["metadata"], str(unified), line, prefix="metadata.")
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
        if isinstance(options, dict) and len(options) > MAX_RADSAFE_OPTIONS:
            bad(unified, line, "options", too_many_options(options))
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
    problems.extend(unknown.problems() + unknown_meta.problems())
    if index is not None:
        problems.extend(index.unknown.problems())
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


