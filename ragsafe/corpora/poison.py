"""Poisoned corpora: misleading documents indexed beside a reference corpus, marked as poison.

``--poison conflict`` adds, for every benchmark question that has one, its ``evidence_conflict``
as one extra document; ``--poison FILE`` adds the user's own misleading documents (JSONL, one
``{"id": ..., "text": ..., "title": ..., "question_id": ...}`` per line; ``title`` and
``question_id`` optional). Every poison document's id starts with :data:`POISON_PREFIX` and its
metadata carries ``poison=True`` (and the question and conflict target it was written for), so a
stored record's retrieved doc ids say whether poison reached the final context. Poison never
enters the base collection: the poisoned corpus is indexed into a collection of its own name
(:func:`poison_label`), and its identity (spec, hash) is part of the run's config hash.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from langchain_core.documents import Document

from ragsafe.corpora.errors import DataError
from ragsafe.corpora.schema import Question

POISON_PREFIX = "poison:"


def is_poison(doc_id: str | None) -> bool:
    return isinstance(doc_id, str) and doc_id.startswith(POISON_PREFIX)


def conflict_documents(questions: list[Question]) -> list[Document]:
    """One poison document per question with conflict evidence."""
    return [Document(page_content=q.evidence_conflict.strip(), id=f"{POISON_PREFIX}{q.id}",
                     metadata={"doc_id": f"{POISON_PREFIX}{q.id}", "title": "", "poison": True,
                               "question_id": q.id, "target": q.conflict_target or ""})
            for q in questions if q.evidence_conflict and q.evidence_conflict.strip()]


def file_documents(path: str | Path) -> list[Document]:
    """The user's misleading documents from a JSONL file (errors name the file, line and field)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, None, None, "no such poison file; pass --poison conflict or a JSONL file")
    out, seen = [], set()
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(p, None, None, f"not JSON ({e.msg}); one JSON object per line", line=n) from None
        if not isinstance(rec, dict):
            raise DataError(p, None, None, "expected a JSON object with id and text", line=n)
        rid, text = rec.get("id"), rec.get("text")
        if not isinstance(rid, str) or not rid.strip():
            raise DataError(p, None, "id", "missing or empty; give each poison document a text id", line=n)
        if not isinstance(text, str) or not text.strip():
            raise DataError(p, rid, "text", "missing or empty; the misleading text to index", line=n)
        if rid in seen:
            raise DataError(p, rid, "id", "listed twice; ids must be unique", line=n)
        seen.add(rid)
        doc_id = f"{POISON_PREFIX}{rid}"
        out.append(Document(page_content=text.strip(), id=doc_id,
                            metadata={"doc_id": doc_id, "title": str(rec.get("title") or ""), "poison": True,
                                      "question_id": str(rec.get("question_id") or ""), "target": ""}))
    if not out:
        raise DataError(p, None, None, "holds no poison document")
    return out


def poison_documents(spec: str, questions: list[Question]) -> list[Document]:
    """``spec`` = "conflict" (the benchmark's conflict evidence) or a JSONL file of the user's documents."""
    docs = conflict_documents(questions) if spec == "conflict" else file_documents(spec)
    if not docs:
        raise DataError(spec, None, "evidence_conflict", "no question has conflict evidence to poison with")
    return docs


def docs_digest(docs: list[Document]) -> str:
    h = hashlib.sha256()
    for d in sorted(docs, key=lambda d: d.metadata["doc_id"]):
        h.update(d.metadata["doc_id"].encode() + b"\x00" + d.page_content.encode() + b"\x01")
    return h.hexdigest()


def poison_label(corpus_label: str, digest: str) -> str:
    """The poisoned collection's corpus label: never the base corpus's."""
    return f"{corpus_label}+poison-{digest[:10]}"
