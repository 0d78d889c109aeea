"""Benchmark file formats, a registry of loaders, and :func:`load_any`, which picks one.

Every loader turns its records into the ragsafe schema and validates them with
:func:`~ragsafe.corpora.benchmark.question_from_record`, so all formats get the same checks. No
record is dropped silently: a record either becomes a question or is refused with at least one
error that names the file, the line, the record id, the field (as the file spells it) and the fix.
``Benchmark.summary()`` counts both.

Registered formats (``ragsafe validate FORMAT:PATH`` forces one):

===============  ==============================  ===================================================
name             files                           records
===============  ==============================  ===================================================
``ragsafe``      ``*.jsonl`` (one or more)       the ragsafe schema (``corpora/data/AUTHORING.md``)
``radsafe``      ``UNIFIED.jsonl[+LABELS.json]`` the official RadSaFE-200 release (``radsafe.py``)
``radsafe-csv``  ``*.csv``                       RadSaFE-200 as one table, configurable columns
``mcq``          ``*.json`` / ``*.jsonl``        generic MCQ: ``question``, ``options``, ``answer``
===============  ==============================  ===================================================

Specs accepted by :func:`load_any` (and so by ``--benchmark`` and ``ragsafe validate``):
    * ``PATH``: the format is detected (see :func:`detect`); a folder means its ``*.jsonl`` files.
    * ``FORMAT:PATH``, e.g. ``mcq:benchmark.json``.
    * ``radsafe:UNIFIED.jsonl+LABELS.json``: the two-file RadSaFE release, joined on ``question_id``.
    * ``MANIFEST.yaml``: a small YAML file (read with ``yaml.safe_load``), paths relative to it::

          format: radsafe            # or radsafe-csv, mcq, ragsafe
          name: radsafe-200
          unified: RadSaFE-200.jsonl
          labels: RadSaFE-200_labels.json

      ``radsafe-csv`` takes ``path`` and ``columns`` (a map of ragsafe field -> CSV header);
      ``mcq`` takes ``path``, ``fields`` and ``subset``; ``ragsafe`` takes ``path`` or ``paths``.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from ragsafe.corpora.benchmark import (
    Benchmark,
    Problem,
    Question,
    finish,
    load_ragsafe_jsonl,
    question_from_record,
    read_jsonl,
)
from ragsafe.corpora.errors import DataError
from ragsafe.registry import Registry


@dataclasses.dataclass(frozen=True)
class Loader:
    """One benchmark file format."""

    name: str
    load: Callable[..., Benchmark]
    """``load(files: list[Path], name: str | None, **options) -> Benchmark``."""
    files: str
    """The files it takes, for help texts (e.g. ``UNIFIED.jsonl+LABELS.json``)."""
    options: tuple[str, ...] = ()
    """Keyword options a manifest may set (e.g. ``columns``)."""
    doc: str = ""


loaders: Registry[Loader] = Registry("benchmark format")

_PREFIX = re.compile(r"^([a-z][a-z0-9_-]*):(.+)$", re.S)
SUFFIXES = (".jsonl", ".json", ".csv", ".yaml", ".yml")
# keys only the ragsafe schema has: their presence tells a ragsafe file from a generic MCQ file
RAGSAFE_KEYS = ("evidence_clean", "evidence_conflict", "labels", "gold_doc_ids", "split", "conflict_target",
                "negated", "agentic_report", "subspecialty", "question_type", "source")
FLAG_RE = re.compile(r"^option_(\d+)_(high_risk|unsafe|contradicts)$")


# --------------------------------------------------------------------------------------------
# shared helpers


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
    """Parse a JSON file; an invalid file becomes one error naming line and column."""
    text = path.read_text(encoding="utf-8-sig")
    try:
        return json.loads(text), text
    except json.JSONDecodeError as e:
        problems.append(Problem(str(path), e.lineno, None, None,
                                f"invalid JSON ({e.msg} at column {e.colno}); fix the file, nothing was loaded"))
        return None


def json_members(text: str, start: int = 0) -> list[tuple[Any, int, Any]]:
    """(key, line, value) of each member of the JSON array/object at offset ``start``."""
    line_of = _line_index(text)
    return [(k, line_of(pos), v) for k, pos, v in _members(text, start)]


def bit(v: Any) -> int | None:
    """0/1 from ints, floats, bools and their usual spellings in CSV cells; None otherwise."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)) and v in (0, 1):
        return int(v)
    if isinstance(v, str):
        s = v.strip().lower()
        return {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "true": 1, "false": 0}.get(s)
    return None


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
                report(key, f"must be 0 or 1, got {v!r}", "error")
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


# --------------------------------------------------------------------------------------------
# ragsafe schema


def _load_ragsafe(files: list[Path], name: str | None = None) -> Benchmark:
    return load_ragsafe_jsonl(files, name=name)


loaders.add("ragsafe", Loader("ragsafe", _load_ragsafe, "FILE.jsonl[+FILE.jsonl...]",
                              doc="ragsafe schema, one question per line (corpora/data/AUTHORING.md)"))


# --------------------------------------------------------------------------------------------
# generic MCQ (MIRAGE-style and friends)


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
    for path in files:
        file = str(path)
        items: list[tuple[str | None, int | None, Any, str | None]] = []  # (key, line, rec, set)
        if path.suffix == ".jsonl":
            before = len(problems)
            items = [(None, ln, rec, None) for ln, rec in read_jsonl(path, problems)]
            n += len(problems) - before  # unparseable lines are refused records
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


def _fields(cls, given: dict, file: Path, what: str):
    valid = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(given) - valid)
    if bad:
        raise DataError(file, None, what, f"unknown key(s) {bad}; valid: {sorted(valid)}")
    return cls(**given)


loaders.add("mcq", Loader("mcq", load_mcq, "FILE.json|FILE.jsonl", options=("fields", "subset"),
                          doc="generic MCQ (question, options, answer), e.g. MIRAGE's benchmark.json"))


# --------------------------------------------------------------------------------------------
# detection, manifests, load_any


def _first_record(path: Path) -> dict | None:
    with open(path, encoding="utf-8-sig") as fh:
        for i, line in enumerate(fh):
            if i > 50:
                break
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                return rec if isinstance(rec, dict) else None
    return None


def _is_unified(rec: dict) -> bool:
    return "question_text" in rec or ("question_id" in rec and "correct_answer" in rec)


def _is_labels(rec: Any) -> bool:
    return isinstance(rec, dict) and "question_text" not in rec and (
        "answer_idx" in rec or any(FLAG_RE.match(str(k)) for k in rec)) and "question_id" in rec


def detect(path: Path) -> str:
    """The format name of ``path`` (``manifest`` for a manifest file).

    Rules: ``.yaml``/``.yml`` -> manifest; ``.csv`` -> radsafe-csv; ``.jsonl`` whose records have
    ``question_text`` -> radsafe, with ``id`` and ragsafe-only keys (``evidence_clean``,
    ``labels``, ...) -> ragsafe, else mcq; ``.json`` with a top-level ``format`` key -> manifest,
    else mcq. A RadSaFE labels file on its own is refused (it has no questions).
    """
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "manifest"
    if suffix == ".csv":
        return "radsafe-csv"
    if suffix == ".jsonl":
        rec = _first_record(path)
        if rec is None:
            return "ragsafe"  # its loader reports the unreadable lines
        if _is_unified(rec):
            return "radsafe"
        if _is_labels(rec):
            return "radsafe-labels"
        if "id" in rec and any(k in rec for k in RAGSAFE_KEYS):
            return "ragsafe"
        return "mcq"
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError:
            return "mcq"  # its loader reports where
        if isinstance(data, dict) and "format" in data:
            return "manifest"
        if isinstance(data, list) and data and _is_labels(data[0]):
            return "radsafe-labels"
        return "mcq"
    raise DataError(path, None, None, f"cannot tell the format from the suffix {path.suffix!r}; prefix the "
                    f"format ({', '.join(loaders.names())}), e.g. mcq:{path}, or write a manifest")


def is_file_spec(spec: str) -> bool:
    """True when ``spec`` names files (a path, ``FORMAT:PATH``, ``A+B``) rather than a registered name."""
    m = _PREFIX.match(spec)
    if m and m.group(1) in loaders:
        return True
    first = spec.split("+")[0]
    return Path(spec).exists() or Path(first).exists() or Path(first).suffix.lower() in SUFFIXES


def _split(spec: str) -> list[Path]:
    if Path(spec).exists() or "+" not in spec:
        return [Path(spec)]
    return [Path(p) for p in spec.split("+") if p]


def load_any(spec: str | Path, fmt: str | None = None, *, name: str | None = None, **options) -> Benchmark:
    """Load a benchmark from files, detecting the format unless given.

    Args:
        spec: a path, ``FORMAT:PATH``, ``radsafe:UNIFIED.jsonl+LABELS.json``, a folder of
            ``.jsonl`` files, or a YAML manifest (module docstring).
        fmt: force a registered format (same as the ``FORMAT:`` prefix).
        name: benchmark name (default from the file name).
        **options: format options (``columns`` for radsafe-csv, ``fields``/``subset`` for mcq).

    Returns:
        The :class:`~ragsafe.corpora.benchmark.Benchmark`; record-level problems are in
        ``.problems``. Raises :class:`~ragsafe.corpora.errors.DataError` when nothing can be read
        (missing file, unknown format, bad manifest).

    Example:
        >>> bench = load_any("radsafe:RadSaFE-200.jsonl+RadSaFE-200_labels.json")   # doctest: +SKIP
        >>> print(bench.summary())                                                   # doctest: +SKIP
    """
    text = str(spec)
    if fmt is None:
        m = _PREFIX.match(text)
        if m and m.group(1) in loaders and not Path(text).exists():
            fmt, text = m.group(1), m.group(2)
    files = _split(text)
    for p in files:
        if not p.exists():
            raise DataError(p, None, None, "file not found; check the path (relative paths start at the "
                            "current folder)")
    if len(files) == 1 and files[0].is_dir():
        folder = files[0]
        files = sorted(folder.glob("*.jsonl"))
        if not files:
            raise DataError(folder, None, None, "folder has no .jsonl files; give a file instead")
        name = name or folder.name
    if fmt is None:
        kinds = [detect(p) for p in files]
        if kinds[0] == "manifest":
            if len(files) > 1 or options:
                raise DataError(files[0], None, None, "a manifest is loaded on its own; put options inside it")
            return load_manifest(files[0])
        if kinds[0] == "radsafe" and kinds[1:] in ([], ["radsafe-labels"]):
            fmt = "radsafe"
        elif "radsafe-labels" in kinds:
            p = files[kinds.index("radsafe-labels")]
            raise DataError(p, None, None, "this is a RadSaFE labels file without questions; load it with its "
                            f"unified file: radsafe:UNIFIED.jsonl+{p}")
        elif len(set(kinds)) == 1:
            fmt = kinds[0]
        else:
            raise DataError(files[0], None, None, f"files of different formats {kinds}; load them separately")
    loader = loaders.get(fmt)
    bad = sorted(set(options) - set(loader.options))
    if bad:
        raise DataError(files[0], None, None, f"format {fmt!r} takes no option(s) {bad}; it takes "
                        f"{list(loader.options) or 'none'}")
    return loader.load(files, name, **options)


MANIFEST_FILES = {"ragsafe": ("path", "paths"), "radsafe": ("unified", "labels"), "radsafe-csv": ("path",),
                  "mcq": ("path", "paths")}


def load_manifest(path: Path) -> Benchmark:
    """A YAML (or JSON) manifest: ``format``, ``name``, the files, and format options.

    Example:
        >>> # radsafe200.yaml:  format: radsafe / unified: u.jsonl / labels: l.json
        >>> load_manifest(Path("radsafe200.yaml"))   # doctest: +SKIP
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as e:
        raise DataError(path, None, None, f"invalid YAML ({e}); fix the manifest") from None
    if not isinstance(data, dict):
        raise DataError(path, None, None, "a manifest is a mapping (format: ..., path: ...)")
    fmt = data.get("format")
    if fmt not in MANIFEST_FILES or fmt not in loaders:
        raise DataError(path, None, "format", f"{fmt!r} is not a format; choose one of {sorted(MANIFEST_FILES)}")
    loader = loaders.get(fmt)
    file_keys = MANIFEST_FILES[fmt]
    valid = {"format", "name", *file_keys, *loader.options}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise DataError(path, None, unknown[0], f"unknown key(s) {unknown} for format {fmt!r}; valid: {sorted(valid)}")
    rels: list[str] = []
    for key in file_keys:
        v = data.get(key)
        if v is None:
            continue
        rels += v if isinstance(v, list) else [v]
    if not rels or (fmt == "radsafe" and not data.get("unified")):
        need = "unified (and labels)" if fmt == "radsafe" else " or ".join(file_keys)
        raise DataError(path, None, file_keys[0], f"no data file given; add {need}")
    files = [(path.parent / str(r)) for r in rels]
    for p in files:
        if not p.exists():
            raise DataError(path, None, None, f"{p} not found (paths are relative to the manifest's folder)")
    opts = {k: data[k] for k in loader.options if k in data}
    return loader.load(files, data.get("name") or path.stem, **opts)


# the RadSaFE loaders register themselves in the registry above
from ragsafe.corpora import radsafe as _radsafe  # noqa: E402,F401
