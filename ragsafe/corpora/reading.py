"""Reading untrusted input files: encodings, bounds, and JSON that cannot hang or crash the parser.

Every loader of :mod:`ragsafe.corpora` reads through these functions, so every file gets the same
rules, and a bad file becomes a :class:`~ragsafe.corpora.errors.DataError` (or a
:class:`~ragsafe.corpora.schema.Problem`) naming the file and line, never a Python traceback:

* **Encodings**: UTF-8, with or without a byte-order mark (Excel and Windows tools write one).
  UTF-16 and UTF-32 with a byte-order mark are decoded. Anything else is refused naming what was
  found (not UTF-8 at line L, UTF-16 without a byte-order mark, a binary file).
* **Bounds**, checked before any parsing: a file of at most :data:`MAX_FILE_BYTES`, lines (JSONL)
  and CSV cells of at most :data:`MAX_LINE_CHARS` characters, JSON and YAML values nested at most
  :data:`MAX_DEPTH` levels.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

from ragsafe.corpora.errors import DataError
from ragsafe.corpora.schema import Problem

MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest input file read (256 MiB; RadSaFE-200 with its reports is a few MiB)."""
MAX_LINE_CHARS = 8 * 1024 * 1024
"""Longest JSONL line or CSV cell, in characters (8 Mi; a long research report is ~100 k)."""
MAX_DEPTH = 64
"""Deepest nesting of a JSON or YAML value (a benchmark record needs 4)."""

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))

TOO_DEEP = (f"nested more than {MAX_DEPTH} levels deep (the bound of ragsafe's loaders; a benchmark record "
            "needs 4); flatten the value")
SAVE_AS_UTF8 = "save it as UTF-8 (in Excel: Save As > CSV UTF-8; in an editor: encoding UTF-8)"


def read_bytes(path: Path) -> bytes:
    """The file's bytes, refusing what is not a readable regular file or is over the size bound."""
    path = Path(path)
    try:
        if path.is_dir():
            raise DataError(path, None, None, "is a folder, not a file; give a file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DataError(path, None, None, f"file is {size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES // 2**20} "
                            "MiB bound of ragsafe's loaders; split it into several files")
        with open(path, "rb") as f:
            return f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise DataError(path, None, None, "file not found; check the path") from None
    except PermissionError:
        raise DataError(path, None, None, "permission denied; make the file readable") from None
    except OSError as e:
        raise DataError(path, None, None, f"cannot read the file ({e.strerror or e})") from None


def decode(data: bytes, path: Path) -> str:
    """Text of ``data``: UTF-8 (BOM or not), or UTF-16/32 announced by a byte-order mark."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(enc)
            except UnicodeDecodeError as e:
                raise DataError(path, None, None, f"starts with a {enc.upper()} byte-order mark but is not valid "
                                f"{enc.upper()} (at byte {e.start + len(bom)}); {SAVE_AS_UTF8}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        if b"\x00" in data[:4096]:
            raise DataError(path, None, None, _nul_problem(data), line=None) from None
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(path, None, None, f"not UTF-8: byte 0x{data[e.start]:02x} at column {col} (the file is "
                        f"probably Latin-1 or Windows-1252); {SAVE_AS_UTF8}", line=line) from None
    if "\x00" in text:
        raise DataError(path, None, None, _nul_problem(data))
    return text


def _nul_problem(data: bytes) -> str:
    head = data[:4096]
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4 and head[0::2].count(0) < len(head) // 8:
        return f"looks like UTF-16-LE without a byte-order mark; {SAVE_AS_UTF8}"
    if len(head) >= 4 and head[0::2].count(0) > len(head) // 4 and head[1::2].count(0) < len(head) // 8:
        return f"looks like UTF-16-BE without a byte-order mark; {SAVE_AS_UTF8}"
    return "not a text file (it contains NUL bytes); give a UTF-8 text file"


def read_text(path: str | Path) -> str:
    """Read an input file as text under the rules of this module (see the module docstring)."""
    path = Path(path)
    return decode(read_bytes(path), path)


def is_text(path: Path, probe: int = 8192) -> bool:
    """Cheap check for folder scans: the first bytes decode as text (UTF-8, or UTF-16/32 with a BOM)."""
    try:
        with open(path, "rb") as f:
            head = f.read(probe)
    except OSError:
        return False
    if any(head.startswith(bom) for bom, _ in _BOMS):
        return True
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 3  # a character cut by the probe's end
    return True


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON/YAML value (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            break
        children = v.values() if isinstance(v, dict) else v
        stack.extend((c, d + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


class JSONProblem(ValueError):
    """A JSON text that cannot be used: ``msg``, with ``line`` and ``column`` (1-based) when known."""

    def __init__(self, msg: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(msg)
        self.msg, self.line, self.column = msg, line, column


def parse_json(text: str) -> Any:
    """``json.loads`` within the depth bound; raises :class:`JSONProblem` for anything unusable."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise JSONProblem(f"invalid JSON ({e.msg} at column {e.colno})", e.lineno, e.colno) from None
    except RecursionError:  # the C parser stops near Python's recursion limit
        raise JSONProblem(TOO_DEEP) from None
    except ValueError as e:  # e.g. an integer with more than 4300 digits
        raise JSONProblem(f"invalid JSON value ({str(e)[:120]})") from None
    if depth(value) > MAX_DEPTH:
        raise JSONProblem(TOO_DEEP)
    return value


def load_yaml(text: str, path: Path, *, field: str | None = None, first_line: int = 1) -> Any:
    """``yaml.safe_load`` within the depth bound, errors as :class:`DataError` naming the line
    (``first_line``: the file's line where ``text`` starts)."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise DataError(path, None, field, f"invalid YAML ({getattr(e, 'problem', None) or e}); fix it",
                        line=mark.line + first_line if mark is not None else None) from None
    except RecursionError:
        raise DataError(path, None, field, TOO_DEEP) from None
    except ValueError as e:  # e.g. an integer too long to convert
        raise DataError(path, None, field, f"invalid YAML value ({str(e)[:120]})") from None
    if depth(value) > MAX_DEPTH:
        raise DataError(path, None, field, TOO_DEEP)
    return value


def folder_files(folder: Path, suffixes: tuple[str, ...], *, recursive: bool = False,
                 ignore: tuple[str, ...] = ()) -> tuple[list[Path], list[Problem]]:
    """The files of ``folder`` with one of ``suffixes``, and a problem for each file left out.

    Files with other suffixes are skipped with a warning naming each (hidden files silently); a
    symbolic link whose target lies outside the folder is refused (an error: data named in an
    input never escapes the folder it was given in).
    """
    root = folder.resolve()
    found = sorted(folder.rglob("*") if recursive else folder.glob("*"))
    keep: list[Path] = []
    problems: list[Problem] = []
    for p in found:
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or p.name in ignore:
            continue
        target = p.resolve()
        if not target.is_relative_to(root):  # a symbolic link (or one on its path) leading out
            problems.append(Problem(str(p), None, None, None, f"symbolic link to {target}, outside {folder}; "
                                    "refused (copy the file into the folder instead)"))
            continue
        if p.is_dir():
            continue
        if not p.is_file():
            problems.append(Problem(str(p), None, None, None, "not a regular file; skipped", "warning"))
        elif p.suffix.lower() not in suffixes:
            problems.append(Problem(str(p), None, None, None, f"skipped: only {', '.join(suffixes)} files are read "
                                    "from a folder", "warning"))
        else:
            keep.append(p)
    return keep, problems
