"""The benchmark schema: a question, its options' labels, a benchmark and the problems a file has.

Every format turns its records into :class:`Question` through :func:`question_from_record`, so all
formats get the same checks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Callable

MIN_OPTIONS, MAX_OPTIONS = 2, 10

LABEL_KEYS = ("high_risk", "unsafe", "contradicts")

LABEL_SPELLINGS = "0 or 1 (also accepted: 0.0/1.0, true/false in any case, JSON true/false)"
"""What a label value may be, for error messages (the spellings the label parsers accept)."""


@dataclasses.dataclass(frozen=True)
class Origin:
    """Where a record came from: its file and, for formats with lines, the 1-based line."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    @classmethod
    def parse(cls, text: str) -> Origin:
        """``"data/q.jsonl:12"`` -> ``Origin("data/q.jsonl", 12)``; text without a line number is a file."""
        file, sep, line = text.rpartition(":")
        return cls(file, int(line)) if sep and file and line.isdigit() else cls(text)


def bit(v: Any) -> int | None:
    """0/1 from ints, floats, bools and their usual text spellings (``"1"``, ``"0.0"``, ``"true"``); None otherwise."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)) and v in (0, 1):
        return int(v)
    if isinstance(v, str):
        return {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "true": 1, "false": 0}.get(v.strip().lower())
    return None


@dataclasses.dataclass(frozen=True)
class OptionLabels:
    high_risk: bool = False
    unsafe: bool = False
    contradicts: bool = False


@dataclasses.dataclass(frozen=True)
class Question:
    id: str
    question: str
    options: dict[str, str]
    answer: str
    evidence_clean: str | None = None
    evidence_conflict: str | None = None
    labels: dict[str, OptionLabels] | None = None
    subspecialty: str | None = None
    question_type: str | None = None
    agentic_report: str | None = None
    split: str | None = None
    gold_doc_ids: tuple[str, ...] = ()
    conflict_target: str | None = None
    negated: bool = False
    source: str | None = None
    origin: Origin | None = None
    """The file and line the record came from (for error messages); "file:line" text is read as one."""

    def __post_init__(self) -> None:
        if isinstance(self.origin, str):
            object.__setattr__(self, "origin", Origin.parse(self.origin))

    @property
    def letters(self) -> list[str]:
        return list(self.options)

    def flag(self, letter: str | None, key: str) -> bool | None:
        """Label ``key`` of option ``letter``; None when the benchmark has no labels."""
        if self.labels is None:
            return None
        if letter is None or letter not in self.labels:
            return False
        return bool(getattr(self.labels[letter], key))

    def is_correct(self, letter: str | None) -> bool:
        """Whether ``letter`` is the answer key (None, an abstention, never is)."""
        return letter is not None and letter == self.answer

    def wrong_and_flagged(self, letter: str | None, key: str) -> bool | None:
        """Whether ``letter`` is a real, wrong option that carries label ``key`` (e.g. a high-risk error).

        None when the benchmark has no labels; False for the correct letter and for an abstention.

        Example:
            >>> q.wrong_and_flagged("C", "high_risk")  # doctest: +SKIP
            True
        """
        flag = self.flag(letter, key)
        if flag is None:
            return None
        return letter is not None and letter != self.answer and flag

    def problem(self, field: str | None, message: str, severity: str = "error") -> Problem:
        """A :class:`Problem` with this question, located at its origin."""
        where = self.origin or Origin("?")
        return Problem(where.file, where.line, self.id, field, message, severity)


@dataclasses.dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    record: str | None
    field: str | None
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        parts = [f"record {self.record!r}" if self.record else "", f"field {self.field!r}" if self.field else ""]
        loc = " ".join(p for p in parts if p)
        return f"{where}: {loc + ': ' if loc else ''}{self.message}"


class Checked:
    """What a read that collects :class:`Problem` s offers: its ``problems`` split by severity."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]


@dataclasses.dataclass
class Benchmark(Checked):
    name: str
    questions: list[Question]
    files: list[str]
    problems: list[Problem] = dataclasses.field(default_factory=list)
    n_records: int = 0
    mapping: Any = None
    """How a mapped file's fields were read (:class:`~ragsafe.corpora.formats.mapped.FieldMap`), else None."""

    def summary(self) -> str:
        """One line: records read, questions loaded, records refused, warnings, labels.

        Example:
            >>> load_benchmark("demo").summary()   # doctest: +SKIP
            'demo: 72 records in 12 file(s), 72 loaded, 0 refused, 0 error(s), 0 warning(s); labels: yes'
        """
        # every record is either loaded or refused with at least one error naming it
        refused = self.n_records - len(self.questions)
        ids = sorted({p.record for p in self.errors if p.record})
        shown = ", ".join(ids[:8]) + (", ..." if len(ids) > 8 else "")
        return (f"{self.name}: {self.n_records} records in {len(self.files)} file(s), {len(self.questions)} loaded, "
                f"{refused} refused, {len(self.errors)} error(s){f' [{shown}]' if ids else ''}, "
                f"{len(self.warnings)} warning(s); labels: {'yes' if self.has_labels() else 'no'}")

    def content_hash(self) -> str:
        blob = json.dumps([dataclasses.asdict(q) | {"origin": None} for q in self.questions], sort_keys=True,
                          default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def has_labels(self) -> bool:
        return bool(self.questions) and all(q.labels is not None for q in self.questions)

    def select(self, *, split: str | None = None, limit: int | None = None, ids: list[str] | None = None,
               skip: set[str] | None = None) -> list[Question]:
        """Questions ordered by id compared as text (the paper's bootstrap order), filtered."""
        qs = sorted(self.questions, key=lambda q: q.id)
        if split:
            qs = [q for q in qs if q.split == split]
        if ids:
            want = set(ids)
            qs = [q for q in qs if q.id in want]
        if skip:
            qs = [q for q in qs if q.id not in skip]
        return qs[:limit] if limit else qs


def question_from_record(rec: dict, file: str, line: int | None, problems: list[Problem]) -> Question | None:
    """Validate one ragsafe-schema record; append problems; return a Question when usable."""
    rid = str(rec.get("id")) if rec.get("id") not in (None, "") else None

    def bad(field: str | None, msg: str, severity: str = "error") -> None:
        problems.append(Problem(file, line, rid, field, msg, severity))

    n0 = len([p for p in problems if p.severity == "error"])
    if rid is None:
        bad("id", "missing id; give every record a unique 'id'")
    text = rec.get("question")
    if not isinstance(text, str) or not text.strip():
        bad("question", "empty question text")
    opts = rec.get("options")
    letters: list[str] = []
    if not isinstance(opts, dict) or not opts:
        bad("options", "must be an object like {\"A\": \"...\", \"B\": \"...\"}")
        opts = {}
    else:
        letters = [str(k).strip().upper() for k in opts]
        expected = [chr(ord("A") + i) for i in range(len(letters))]
        if sorted(letters) != expected:
            bad("options", f"letters {letters} are not contiguous from A (expected {expected})")
        if not MIN_OPTIONS <= len(letters) <= MAX_OPTIONS:
            bad("options", f"{len(letters)} options; need between {MIN_OPTIONS} and {MAX_OPTIONS}")
        for k, v in opts.items():
            if not isinstance(v, str) or not v.strip():
                bad(f"options.{k}", "empty option text")
        opts = {str(k).strip().upper(): str(v) for k, v in sorted(opts.items(), key=lambda kv: str(kv[0]).upper())}
        letters = list(opts)
    ans = str(rec.get("answer", "")).strip().upper()
    if ans not in letters:
        bad("answer", f"answer {rec.get('answer')!r} is not one of the options {letters}")
    labels = None
    raw_labels = rec.get("labels")
    if raw_labels is not None:
        if not isinstance(raw_labels, dict):
            bad("labels", "must map each option letter to {high_risk, unsafe, contradicts}")
        else:
            labels = {}
            for L in letters:
                entry = raw_labels.get(L)
                if not isinstance(entry, dict):
                    bad(f"labels.{L}", "missing labels for this option (give high_risk, unsafe, contradicts as 0/1)")
                    continue
                vals = {}
                for key in LABEL_KEYS:
                    b = bit(entry.get(key))
                    if b is None:
                        bad(f"labels.{L}.{key}", f"must be {LABEL_SPELLINGS}, got {entry.get(key)!r}")
                        b = 0
                    vals[key] = bool(b)
                labels[L] = OptionLabels(**vals)
            extra = set(raw_labels) - set(letters)
            if extra:
                bad("labels", f"labels for letters that are not options: {sorted(extra)}")
    for fld in ("evidence_clean", "evidence_conflict"):
        v = rec.get(fld)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            bad(fld, "present but empty; remove it or give the text")
    clean, conflict = rec.get("evidence_clean"), rec.get("evidence_conflict")
    if isinstance(clean, str) and isinstance(conflict, str) and clean.strip() and \
            " ".join(clean.split()).casefold() == " ".join(conflict.split()).casefold():
        bad("evidence_conflict", "is the same text as evidence_clean, so the conflict condition would measure "
            "nothing; write evidence that points to a wrong option", "warning")
    ct = rec.get("conflict_target")
    if ct is not None and ct not in letters:
        bad("conflict_target", f"{ct!r} is not an option letter")
    if len([p for p in problems if p.severity == "error"]) > n0:
        return None
    return Question(
        id=rid, question=text.strip(), options=opts, answer=ans,
        evidence_clean=(rec.get("evidence_clean") or None), evidence_conflict=(rec.get("evidence_conflict") or None),
        labels=labels, subspecialty=rec.get("subspecialty"), question_type=rec.get("question_type"),
        agentic_report=rec.get("agentic_report") or None, split=rec.get("split"),
        gold_doc_ids=tuple(rec.get("gold_doc_ids") or ()), conflict_target=ct, negated=bool(rec.get("negated")),
        source=rec.get("source"), origin=Origin(file, line or None))


def finish(name: str, questions: list[Question], files: list[str], problems: list[Problem], n_records: int,
           rename: Callable[[str], str] | None = None) -> Benchmark:
    """Cross-record checks (duplicate ids, coverage) and the Benchmark.

    ``rename`` maps ragsafe field names to the source file's names in the cross-record problems.
    """
    seen: dict[str, str] = {}
    kept = []
    for q in questions:
        if q.id in seen:
            problems.append(q.problem(rename("id") if rename else "id",
                                      f"duplicate id (first at {seen[q.id]}); make ids unique"))
            continue
        seen[q.id] = str(q.origin or "?")
        kept.append(q)
    problems.extend(dataclasses.replace(p, field=rename(p.field)) if rename and p.field else p
                    for p in coverage_problems(kept))
    return Benchmark(name=name, questions=kept, files=files, problems=problems, n_records=n_records)


def coverage_problems(questions: list[Question]) -> list[Problem]:
    """Warnings across records: fields most questions have but some lack, and label conventions.

    A field that no question has is not flagged here (a benchmark without agentic reports is
    normal; the runner refuses a graph that needs one). A field that only some questions lack is
    usually a data slip, and label metrics report n/a for the whole benchmark when any question
    has no labels, so each gap is named.
    """
    out: list[Problem] = []
    needs = {"evidence_clean": "the clean_evidence graph", "evidence_conflict": "the conflict_evidence graph",
             "agentic_report": "the precomputed_report graph", "labels": "label metrics (they report n/a)"}
    for fld, user in needs.items():
        have = [q for q in questions if getattr(q, fld) is not None]
        if not have or len(have) == len(questions):
            continue
        for q in questions:
            if getattr(q, fld) is None:
                out.append(q.problem(fld, f"missing while {len(have)} of {len(questions)} questions "
                                     f"have it; {user} cannot use this question", "warning"))
    for q in questions:
        if q.conflict_target is not None and q.conflict_target == q.answer:
            out.append(q.problem("conflict_target", "equals the answer; conflict evidence must "
                                 "point to a wrong option", "warning"))
        if q.negated and q.labels is not None:
            # Labels describe what each option says. In a "which is NOT true" stem the correct
            # option is the false statement (so it contradicts the evidence) and the distractors
            # are true statements that normally carry no flag.
            if not q.labels[q.answer].contradicts:
                out.append(q.problem(f"labels.{q.answer}.contradicts", "negated stem: the correct "
                                     "option is the false statement, so it normally has contradicts=1 (labels "
                                     "describe what the option says)", "warning"))
            flagged = [L for L, lab in q.labels.items() if L != q.answer and any(dataclasses.astuple(lab))]
            if flagged:
                out.append(q.problem("labels", f"negated stem: distractors {flagged} carry flags; "
                                     "true-statement distractors normally carry none (labels describe what the "
                                     "option says, not the risk of picking it)", "warning"))
    return out
