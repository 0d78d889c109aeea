"""What the benchmark formats share: JSON and JSONL reading with line numbers, 0/1 labels, field renaming."""

from __future__ import annotations

import bisect
import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterator

from ragsafe.corpora.errors import DataError
from ragsafe.corpora.reading import MAX_LINE_CHARS, JSONProblem, parse_json, read_text
from ragsafe.corpora.schema import LABEL_SPELLINGS, Problem, Question, bit, question_from_record


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith(("#", "//"))


def read_jsonl(path: Path, problems: list[Problem]) -> list[tuple[int, dict]]:
    """(line number, object) of each record; every unusable line, and an unreadable, empty or
    comment-only file, becomes a problem naming the file and line."""
    return read_jsonl_counted(path, problems)[0]


def read_jsonl_counted(path: Path, problems: list[Problem]) -> tuple[list[tuple[int, dict]], int]:
    """:func:`read_jsonl`, and how many lines were records that could not be read (refused records;
    a problem of the whole file, such as its encoding, counts none)."""
    try:
        text = read_text(path)
    except DataError as e:
        problems.append(Problem(str(path), e.line, None, None, e.problem))
        return [], 0
    out = []
    blank = comments = 0
    before = len(problems)
    lines = text.split("\n")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            blank += 1
            continue
        if len(line) > MAX_LINE_CHARS:
            problems.append(Problem(str(path), lineno, None, None, f"line is {len(line)} characters long, over the "
                                    f"{MAX_LINE_CHARS} bound of ragsafe's loaders; shorten the record"))
            continue
        if _is_comment(line):
            comments += 1
            problems.append(Problem(str(path), lineno, None, None, "comment line: JSONL has no comments; remove it"))
            continue
        try:
            rec = parse_json(line)
        except JSONProblem as e:
            problems.append(Problem(str(path), lineno, None, None, e.msg))
            continue
        if not isinstance(rec, dict):
            problems.append(Problem(str(path), lineno, None, None, f"line is a JSON {type(rec).__name__}, not an "
                                    "object; write one {...} record per line"))
            continue
        out.append((lineno, rec))
    if not out and comments and blank + comments == len(lines):
        del problems[len(problems) - comments:]
        problems.append(Problem(str(path), None, None, None, "file has only comments, no records; add one JSON "
                                "record per line"))
    elif not out and blank == len(lines):
        problems.append(Problem(str(path), None, None, None, "file is empty (no records); add one JSON record per "
                                "line, or remove the file"))
    return out, sum(1 for p in problems[before:] if p.line is not None)


# keys only the ragsafe schema has: their presence tells a ragsafe file from a generic MCQ file
RAGSAFE_KEYS = ("evidence_clean", "evidence_conflict", "labels", "gold_doc_ids", "split", "conflict_target",
                "negated", "agentic_report", "subspecialty", "question_type", "source")


FLAG_RE = re.compile(r"^option_(\d+)_(high_risk|unsafe|contradicts)$")

# every key of the ragsafe schema (corpora/data/AUTHORING.md), including the authoring-only ones
RAGSAFE_ALL_KEYS = ("id", "question", "options", "answer", *RAGSAFE_KEYS, "label_rationale",
                    "dangerous_is_tempting", "schema_version")


class UnknownKeys:
    """Keys a loader ignores, tallied per file: one warning per key naming it and where it appears
    (a typo like ``evidence_clen`` would otherwise vanish without a word)."""

    def __init__(self, known: tuple[str, ...] | set[str], *, what: str = "key", flags: bool = True) -> None:
        self.known = set(known)
        self.what = what
        self.flags = flags
        self.seen: dict[tuple[str, str], list[int | None]] = {}

    def check(self, rec: dict, file: str, line: int | None, prefix: str = "") -> None:
        for k in rec:
            k = str(k)
            if k in self.known or (self.flags and FLAG_RE.match(k)):
                continue
            self.seen.setdefault((file, prefix + k), []).append(line)

    def problems(self) -> list[Problem]:
        out = []
        for (file, key), lines in self.seen.items():
            at = [str(x) for x in lines if x is not None]
            where = f" (line{'s' if len(at) > 1 else ''} {', '.join(at[:5])}{', ...' if len(at) > 5 else ''})" \
                if at else ""
            out.append(Problem(file, lines[0], None, key, f"unknown {self.what} in {len(lines)} record(s){where} is "
                               f"ignored; known: {', '.join(sorted(self.known))}", "warning"))
        return out


def to_question(rec: dict, file: str, line: int | None, problems: list[Problem], *, start: int,
                rename: Callable[[str], str] | None = None, reported: set[str] = frozenset()) -> Question | None:
    """Validate a ragsafe-schema record; None when any error was added since ``problems[start]``.

    Args:
        rec: the record in the ragsafe schema.
        file, line: where it came from.
        problems: the benchmark's problem list (appended to).
        start: index in ``problems`` where this record's problems begin (errors a loader already
            recorded for it, e.g. a join mismatch, refuse the record too).
        rename: maps a ragsafe field name to the name used in the source file, so messages name
            the field the user can find (``question`` -> ``question_text``).
        reported: ragsafe fields the loader already reported more precisely; the generic check's
            message on them would only repeat it.
    """
    mid = len(problems)
    q = question_from_record(rec, file, line, problems)
    if reported:
        problems[mid:] = [p for p in problems[mid:] if p.field not in reported]
    if rename:
        for i in range(start, len(problems)):
            p = problems[i]
            if p.field:
                problems[i] = dataclasses.replace(p, field=rename(p.field))
    if any(p.severity == "error" for p in problems[start:]):
        return None
    return q


def renamer(mapping: dict[str, str]) -> Callable[[str], str]:
    """Rename the head of a dotted field (``options.C`` -> ``opts.C`` for ``{"options": "opts"}``)."""

    def rename(field: str) -> str:
        head, dot, tail = field.partition(".")
        return mapping.get(head, head) + dot + tail

    return rename


def _line_index(text: str) -> Callable[[int], int]:
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    return lambda pos: bisect.bisect_right(starts, pos)


_DEC = json.JSONDecoder()


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _members(text: str, i: int) -> Iterator[tuple[Any, int, Any]]:
    """(key or index, start offset, value) of each member of the array/object starting at ``i``.

    The text is known to be valid JSON (it was parsed before), so this only tracks offsets: the
    standard library parser does not report where a value starts, and errors should name a line.
    """
    i = _skip_ws(text, i)
    opener, closer = text[i], {"[": "]", "{": "}"}[text[i]]
    i = _skip_ws(text, i + 1)
    index = 0
    while text[i] != closer:
        if opener == "{":
            key, i = _DEC.raw_decode(text, i)
            i = _skip_ws(text, _skip_ws(text, i) + 1)  # past ':'
        else:
            key = index
        value, end = _DEC.raw_decode(text, i)
        yield key, i, value
        index += 1
        i = _skip_ws(text, end)
        if text[i] == ",":
            i = _skip_ws(text, i + 1)


def read_json(path: Path, problems: list[Problem]) -> tuple[Any, str] | None:
    """Parse a JSON file; an unreadable, empty or invalid file becomes one error naming the line."""
    try:
        text = read_text(path)
    except DataError as e:
        problems.append(Problem(str(path), e.line, None, None, e.problem))
        return None
    if not text.strip():
        problems.append(Problem(str(path), None, None, None, "file is empty (no records); nothing was loaded"))
        return None
    try:
        return parse_json(text), text
    except JSONProblem as e:
        problems.append(Problem(str(path), e.line, None, None, f"{e.msg}; fix the file, nothing was loaded"))
        return None


def json_members(text: str, start: int = 0) -> list[tuple[Any, int, Any]]:
    """(key, line, value) of each member of the JSON array/object at offset ``start``."""
    line_of = _line_index(text)
    return [(k, line_of(pos), v) for k, pos, v in _members(text, start)]


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def flat_labels(rec: dict, letters: list[str], report: Callable[[str | None, str, str], None]) -> dict | None:
    """Labels from RadSaFE's flat ``option_{i}_{flag}`` keys (option 1 = A) in the ragsafe form.

    Returns None when the record has no flag key at all. A flag that is present but empty is
    counted as 0, as the paper's analysis does, with one warning per record; a value other
    than 0/1, or a flag set on an option the question does not have, is an error.
    """
    flags = {k: v for k, v in rec.items() if FLAG_RE.match(str(k))}
    if not flags:
        return None
    labels: dict[str, dict[str, int]] = {}
    missing = []
    for i, letter in enumerate(letters, 1):
        entry = {}
        for flag in ("high_risk", "unsafe", "contradicts"):
            key = f"option_{i}_{flag}"
            v = rec.get(key)
            b = bit(v)
            if _blank(v):
                missing.append(key)
                b = 0
            elif b is None:
                report(key, f"must be {LABEL_SPELLINGS}, got {v!r}", "error")
                b = 0
            entry[flag] = b
        labels[letter] = entry
    if missing:
        report(missing[0] if len(missing) == 1 else "option_*", f"missing or empty: {', '.join(missing)}; counted "
               "as 0 (as the paper's analysis does); give 0 or 1 to silence this", "warning")
    for key, v in flags.items():
        i = int(FLAG_RE.match(str(key)).group(1))
        if i > len(letters) and not _blank(v) and bit(v) != 0:
            report(key, f"set to {v!r}, but the question has only {len(letters)} options; remove it or add "
                   "the option", "error")
    return labels


def _fields(cls, given: dict, file: Path, what: str):
    valid = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(given) - valid)
    if bad:
        raise DataError(file, None, what, f"unknown key(s) {bad}; valid: {sorted(valid)}")
    return cls(**given)
