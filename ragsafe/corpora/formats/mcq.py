"""Generic MCQ files (JSON or JSONL): ``question``, ``options``, ``answer``, with field names mapped."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ragsafe.corpora.formats.base import Loader, loaders
from ragsafe.corpora.formats.common import (
    RAGSAFE_ALL_KEYS,
    RAGSAFE_KEYS,
    UnknownKeys,
    _blank,
    _fields,
    _line_index,
    _members,
    flat_labels,
    json_members,
    read_json,
    read_jsonl_counted,
    renamer,
    to_question,
)
from ragsafe.corpora.schema import Benchmark, Problem, Question, finish


@dataclasses.dataclass(frozen=True, kw_only=True)
class McqFields:
    """Field names of a generic MCQ record."""

    id: str = "id"
    """Record id (falls back to ``question_id``, then the object key, then ``<file>-<index>``)."""
    question: str = "question"
    """Question text."""
    options: str = "options"
    """Options: an object ``{"A": ..., "B": ...}`` or a list (lettered A, B, ... in order)."""
    answer: str = "answer"
    """The correct letter, or the exact text of one option (``answer_idx`` with a letter also works)."""


def _mcq_answer(raw: Any, rec: dict, options: dict[str, Any]) -> tuple[str | None, str | None]:
    """(letter, problem message)."""
    letters = list(options)
    if isinstance(raw, str) and raw.strip().upper() in letters:
        return raw.strip().upper(), None
    alt = rec.get("answer_idx")
    if isinstance(alt, str) and alt.strip().upper() in letters:
        return alt.strip().upper(), None
    if isinstance(raw, str) and raw.strip():
        same = [L for L, t in options.items() if isinstance(t, str) and t.strip().casefold() == raw.strip().casefold()]
        if len(same) == 1:
            return same[0], None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return None, (f"answer {raw!r} is a number; give the option letter (a number is ambiguous: counted from "
                      "0 or from 1?)")
    if _blank(raw):
        return None, "missing answer; give the correct option letter"
    return None, f"answer {raw!r} is neither an option letter {letters} nor the exact text of one option"


def _mcq_record(rec: dict, rid: str, f: McqFields, problems: list[Problem], file: str,
                line: int | None) -> tuple[dict, set[str]]:
    """The record in the ragsafe schema, and the fields whose problems were already reported."""
    raw_opts = rec.get(f.options)
    if isinstance(raw_opts, list):
        options = {chr(ord("A") + i): v for i, v in enumerate(raw_opts)}
    elif isinstance(raw_opts, dict):
        options = {str(k).strip().upper(): v for k, v in raw_opts.items()}
    else:
        options = raw_opts
    out = {k: rec[k] for k in RAGSAFE_KEYS if k in rec}
    out.update(id=rid, question=rec.get(f.question), options=options, answer=rec.get(f.answer))
    reported: set[str] = set()
    if isinstance(options, dict) and options:
        letter, msg = _mcq_answer(rec.get(f.answer), rec, options)
        out["answer"] = letter if letter else rec.get(f.answer)
        if msg:
            problems.append(Problem(file, line, rid, f.answer, msg))
            reported.add("answer")
        if "labels" not in rec:
            lab = flat_labels(rec, list(options), lambda fld, m, sev: problems.append(
                Problem(file, line, rid, fld, m, sev)))
            if lab is not None:
                out["labels"] = lab
    else:
        reported.add("answer")  # no valid options: the options error says it all
    return out, reported


def load_mcq(files: list[Path], name: str | None = None, *, fields: dict | McqFields | None = None,
             subset: str | list[str] | None = None) -> Benchmark:
    """Generic multiple-choice files; safety labels optional (label metrics then report n/a).

    Accepted shapes: JSONL (one record per line); a JSON list of records; a JSON object of
    ``id -> record``; or a JSON object of ``set -> {id -> record}`` (MIRAGE's ``benchmark.json``),
    where ids become ``<set>-<id>``, the set name goes to ``source``, and ``subset`` picks sets.
    Keys of the ragsafe schema (``evidence_clean``, ``labels``, ...) are kept when present.

    Args:
        files: the files (all in the same shape).
        name: benchmark name (default: the first file's stem, plus the subset).
        fields: field names (:class:`McqFields` or a dict of its fields).
        subset: set name(s) to keep from a ``set -> {id -> record}`` file.

    Example:
        >>> load_any("mcq:benchmark.json", subset="medqa")   # doctest: +SKIP
    """
    f = fields if isinstance(fields, McqFields) else _fields(McqFields, fields or {}, files[0], "fields")
    wanted = [subset] if isinstance(subset, str) else list(subset) if subset else None
    problems: list[Problem] = []
    questions: list[Question] = []
    n = 0
    unknown = UnknownKeys({f.id, f.question, f.options, f.answer, "question_id", "answer_idx", *RAGSAFE_ALL_KEYS})
    for path in files:
        file = str(path)
        items: list[tuple[str | None, int | None, Any, str | None]] = []  # (key, line, rec, set)
        if path.suffix == ".jsonl":
            records, unreadable = read_jsonl_counted(path, problems)
            items = [(None, ln, rec, None) for ln, rec in records]
            n += unreadable  # unparseable lines are refused records
        else:
            parsed = read_json(path, problems)
            if parsed is None:
                continue
            data, text = parsed
            items = _mcq_items(data, text, path, wanted, problems)
        for idx, (key, line, rec, setname) in enumerate(items):
            n += 1
            start = len(problems)
            if not isinstance(rec, dict):
                problems.append(Problem(file, line, str(key) if key is not None else None, None,
                                        f"record is {type(rec).__name__}, not an object with question/options/answer"))
                continue
            unknown.check(rec, file, line)
            own = rec.get(f.id, rec.get("question_id"))
            rid = str(own) if not _blank(own) else (str(key) if key is not None and not isinstance(key, int)
                                                    else f"{path.stem}-{idx:05d}")
            if setname:
                rid = f"{setname}-{rid}"
                rec = {**rec, "source": rec.get("source", setname)}
            conv, reported = _mcq_record(rec, rid, f, problems, file, line)
            q = to_question(conv, file, line, problems, start=start, reported=reported, rename=renamer(
                {"question": f.question, "options": f.options, "answer": f.answer, "id": f.id}))
            if q is not None:
                questions.append(q)
    problems.extend(unknown.problems())
    label = name or files[0].stem + (f"-{'+'.join(wanted)}" if wanted else "")
    return finish(label, questions, [str(p) for p in files], problems, n,
                  rename=renamer({"question": f.question, "options": f.options, "answer": f.answer, "id": f.id}))


def _mcq_items(data: Any, text: str, path: Path, wanted: list[str] | None, problems: list[Problem]):
    file = str(path)
    if isinstance(data, list):
        return [(None, ln, v, None) for _, ln, v in json_members(text)]
    if not isinstance(data, dict):
        problems.append(Problem(file, 1, None, None, "expected a JSON list or object of MCQ records"))
        return []
    values = list(data.values())
    # a set file has objects of objects (MIRAGE: {"medqa": {"0000": {...}}}); a record has a question
    is_sets = values and all(isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values())
                             and "question" not in v for v in values)
    if not is_sets:
        if wanted:
            problems.append(Problem(file, 1, None, "subset", "this file has no sets; drop 'subset'"))
        return [(k, ln, v, None) for k, ln, v in json_members(text)]
    if wanted:
        unknown = [w for w in wanted if w not in data]
        if unknown:
            problems.append(Problem(file, 1, None, "subset", f"unknown set(s) {unknown}; sets in this file: "
                                    f"{sorted(data)}"))
    out = []
    line_of = _line_index(text)
    for setname, pos, _value in _members(text, 0):
        if wanted and setname not in wanted:
            continue
        out += [(k, line_of(p), v, setname) for k, p, v in _members(text, pos)]
    return out


loaders.add("mcq", Loader("mcq", load_mcq, "FILE.json|FILE.jsonl", options=("fields", "subset"),
                          doc="generic MCQ (question, options, answer), e.g. MIRAGE's benchmark.json"))
