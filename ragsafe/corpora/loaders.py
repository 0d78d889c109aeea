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

import re
from pathlib import Path
from typing import Any

from ragsafe.corpora.errors import DataError
from ragsafe.corpora.formats import mapped, mcq, radsafe, radsafe_csv, ragsafe  # noqa: F401  (each registers its format)
from ragsafe.corpora.formats.base import loaders
from ragsafe.corpora.formats.common import FLAG_RE, RAGSAFE_KEYS
from ragsafe.corpora.reading import MAX_LINE_CHARS, JSONProblem, folder_files, load_yaml, parse_json, read_text
from ragsafe.corpora.schema import Benchmark

_PREFIX = re.compile(r"^([a-z][a-z0-9_-]*):(.+)$", re.S)
SUFFIXES = (".jsonl", ".json", ".csv", ".yaml", ".yml")


# --------------------------------------------------------------------------------------------
# shared helpers


# --------------------------------------------------------------------------------------------
# ragsafe schema


# --------------------------------------------------------------------------------------------
# generic MCQ (MIRAGE-style and friends)


# --------------------------------------------------------------------------------------------
# detection, manifests, load_any


def _first_record(path: Path) -> dict | None:
    try:
        text = read_text(path)
    except DataError:
        return None  # the loader reports why
    for i, line in enumerate(text.split("\n", 51)[:51]):
        if line.strip() and len(line) <= MAX_LINE_CHARS:
            try:
                rec = parse_json(line)
            except JSONProblem:
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
            data = parse_json(read_text(path))
        except (DataError, JSONProblem):
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
    if fmt == "mapped" and "#" in text and "map" not in options:
        text, options["map"] = text.split("#", 1)  # mapped:FILE#question=...,options=...,answer=... (--map)
    files = _split(text)
    for p in files:
        if not p.exists():
            raise DataError(p, None, None, "file not found; check the path (relative paths start at the "
                            "current folder)")
    skipped: list = []
    if len(files) == 1 and files[0].is_dir():
        folder = files[0]
        files, skipped = folder_files(folder, (".jsonl",))
        if not files:
            raise DataError(folder, None, None, "folder has no .jsonl files; give a file instead"
                            + (f" ({len(skipped)} other file(s) skipped)" if skipped else ""))
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
    bench = loader.load(files, name, **options)
    bench.problems[:0] = skipped
    return bench


MANIFEST_FILES = {"ragsafe": ("path", "paths"), "radsafe": ("unified", "labels"), "radsafe-csv": ("path",),
                  "mcq": ("path", "paths"), "mapped": ("path", "paths")}


def load_manifest(path: Path) -> Benchmark:
    """A YAML (or JSON) manifest: ``format``, ``name``, the files, and format options.

    Example:
        >>> # radsafe200.yaml:  format: radsafe / unified: u.jsonl / labels: l.json
        >>> load_manifest(Path("radsafe200.yaml"))   # doctest: +SKIP
    """
    data = load_yaml(read_text(path), path)
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

