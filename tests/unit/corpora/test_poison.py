"""Poisoned corpora: poison documents, their marks, the user's file, and the run's identity."""

from __future__ import annotations

import json

import pytest

from ragsafe.config import ConfigError
from ragsafe.corpora.benchmark import load_benchmark
from ragsafe.corpora.errors import DataError
from ragsafe.corpora.poison import POISON_PREFIX, is_poison, poison_documents, poison_label
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.plan import plan


def test_conflict_poison_is_one_marked_document_per_question():
    qs = load_benchmark("demo").questions
    docs = poison_documents("conflict", qs)
    assert len(docs) == sum(1 for q in qs if q.evidence_conflict)
    d, q = docs[0], next(q for q in qs if q.evidence_conflict)
    assert d.metadata["doc_id"] == f"{POISON_PREFIX}{q.id}" and d.metadata["poison"] is True
    assert d.page_content == q.evidence_conflict.strip() and d.metadata["target"] == (q.conflict_target or "")
    assert is_poison(d.metadata["doc_id"]) and not is_poison("neuro-sah") and not is_poison(None)


def test_poison_file_and_its_errors(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"id": "x1", "text": "Misleading text", "title": "T"}) + "\n\n", encoding="utf-8")
    (d,) = poison_documents(str(p), [])
    assert d.metadata["doc_id"] == "poison:x1" and d.metadata["title"] == "T"
    for body, match in [("{bad json\n", r"p2\.jsonl:1.*not JSON"), (json.dumps({"text": "t"}) + "\n", r":1.*'id'"),
                        (json.dumps({"id": "a", "text": " "}) + "\n", r"'text'"),
                        ("\n".join(json.dumps({"id": "a", "text": "t"}) for _ in range(2)) + "\n", r":2.*twice")]:
        f = tmp_path / "p2.jsonl"
        f.write_text(body, encoding="utf-8")
        with pytest.raises(DataError, match=match):
            poison_documents(str(f), [])
    with pytest.raises(DataError, match="no such poison file"):
        poison_documents(str(tmp_path / "missing.jsonl"), [])


def test_poison_changes_the_identity_and_never_the_base_collection(tmp_path):
    base = RunConfig(graphs=["standard_rag"], limit=3, out=str(tmp_path))
    clean, poisoned = plan(base), plan(RunConfig(graphs=["standard_rag"], limit=3, out=str(tmp_path), poison="conflict"))
    assert clean["config_hash"] != poisoned["config_hash"]
    assert "poison" not in clean["identity"]["corpus"] and poisoned["identity"]["corpus"]["poison"]["spec"] == "conflict"
    n_poison = poisoned["poison"]["documents"]
    assert len(poisoned["docs"]) == len(clean["docs"]) + n_poison and n_poison > 0
    assert not any(is_poison(d.metadata["doc_id"]) for d in clean["docs"])
    assert poison_label("demo", poisoned["poison"]["hash"]).startswith("demo+poison-")
    with pytest.raises(ConfigError, match="no chosen graph retrieves"):
        plan(RunConfig(graphs=["closed_book"], limit=3, out=str(tmp_path), poison="conflict"))


def test_grader_off_verifier_off_under_poison_is_one_command(tmp_path):
    p = plan(RunConfig(graphs=["corrective_rag", "verifier_loop"], limit=3, out=str(tmp_path), poison="conflict",
                       grids=["corrective_rag.grade=true,false", "verifier_loop.verify=true,false"]))
    assert [v.label for v in p["variants"]] == ["corrective_rag[grade=true]", "corrective_rag[grade=false]",
                                                "verifier_loop[verify=true]", "verifier_loop[verify=false]"]
    assert p["identity"]["corpus"]["poison"]["spec"] == "conflict"
