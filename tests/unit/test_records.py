"""Typed run records: a folder written before the record module still loads and re-scores the same.

``tests/fixtures/runs/v1/run-adb313d26ae8`` was made by ``ragsafe run`` at commit 2b3491f (before
ragsafe/records.py existed) with smollm2-135m on four demo questions: closed_book, standard_rag
(every sample an error: the prompt outgrew the model's context), self_consistency over standard_rag
(k=3, n=3, one sample without a letter) and clean_evidence; its summary.json was then re-scored by
the code of d09fcc0 from the folder's relative path. Nothing in it was edited by hand.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ragsafe import records
from ragsafe.config import ConfigError
from ragsafe.evals.score import score_run_dir
from ragsafe.experiments.runs import load_run
from ragsafe.experiments.store import RunStore
from ragsafe.records import RunManifest, SampleRecord, Summary
from tests.frozen import frozen_bytes
from tests.paths import FIXTURES

FROZEN = FIXTURES / "runs" / "v1" / "run-adb313d26ae8"


@pytest.fixture
def frozen(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the summary was scored from this relative path
    shutil.copytree(FROZEN, tmp_path / FROZEN.name)
    return FROZEN.name


def test_frozen_folder_loads_typed(frozen):
    store = RunStore(frozen)
    run = store.read_run()
    assert isinstance(run, RunManifest) and run.config_hash.startswith("adb313d26ae8")
    assert run.endpoint.model == "smollm2-135m" and run.variants["clean_evidence"].paper_condition == "evidence_clean"
    assert run.answer_policy() == {"answer_mode": "generate", "max_tokens": 10, "seed": 0}  # the v1 place
    samples = store.samples()
    assert len(samples) == 16 and all(isinstance(s, SampleRecord) for s in samples)
    errors = [s for s in samples if s.error]
    assert {s.variant for s in errors} == {"standard_rag"} and all(s.error.type == "BadRequestError" for s in errors)
    sc = [s for s in samples if s.sc]
    assert len(sc) == 4 and all(len(s.sc["ballots"]) == 3 for s in sc)
    answered = [s for s in samples if not s.error]
    assert all("answer" in {t.node for t in s.trace} for s in answered)
    calls = [c for s in answered for c in s.llm_calls()]
    assert calls and all(c.prompt_tokens > 0 for c in calls)
    assert isinstance(store.read_summary(), Summary)
    lr = load_run(frozen)
    assert [q.id for q in lr.questions] == run.question_ids and lr.variants[:2] == ["closed_book", "clean_evidence"]


def test_every_frozen_file_reads_back_and_writes_back_unchanged(frozen):
    lines = (FROZEN / "samples.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    for line in lines:
        assert records.dump_sample_line(records.load_sample_line(line)) == line
    for name, read, version in (("run.json", records.read_manifest, records.MANIFEST_VERSION),
                                ("summary.json", records.read_summary, records.SUMMARY_VERSION)):
        again = Path(frozen) / f"again-{name}"
        records.write_json(again, read(FROZEN / name), version)
        assert again.read_bytes() == (FROZEN / name).read_bytes(), name


def test_frozen_folder_rescores_to_the_same_summary(frozen):
    want = (FROZEN / "summary.json").read_bytes()
    (Path(frozen) / "summary.json").unlink()
    score_run_dir(frozen)
    assert frozen_bytes((Path(frozen) / "summary.json").read_bytes()) == want


def test_a_bad_record_names_its_file_and_line(tmp_path):
    store = RunStore(tmp_path / "r")
    store.append(SampleRecord(variant="v", question_id="q1", letter="A"))
    with open(store.samples_path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"variant": "v", "letter": "B"}) + "\n")  # no question_id
    with pytest.raises(ConfigError, match=r"samples\.jsonl:2: question_id: Field required"):
        store.samples()


def test_a_newer_record_asks_for_a_newer_ragsafe():
    with pytest.raises(ConfigError, match="newer than this ragsafe"):
        records.as_sample({"schema_version": 99, "variant": "v", "question_id": "q"})


def test_migrations_run_in_order_from_the_stored_version(monkeypatch):
    """A future format change: v1 -> v2 renames a key; a v1 line is read as v2, a v2 line untouched."""
    calls = []

    def m001_rename(rec):
        calls.append(rec["schema_version"])
        out = {k: v for k, v in rec.items() if k != "old_name"}
        return {**out, "new_name": rec.get("old_name")}

    monkeypatch.setattr(records, "MIGRATIONS", [records.Migration("sample", 1, "m001_rename", m001_rename)])
    monkeypatch.setitem(records.CURRENT, "sample", 2)
    old = records.as_sample({"schema_version": 1, "variant": "v", "question_id": "q", "old_name": 5})
    assert old.schema_version == 2 and old.get("new_name") == 5 and "old_name" not in old and calls == [1]
    new = records.as_sample({"schema_version": 2, "variant": "v", "question_id": "q", "new_name": 7})
    assert new.get("new_name") == 7 and calls == [1]
    monkeypatch.setitem(records.CURRENT, "sample", 3)
    with pytest.raises(ConfigError, match="no migration from schema_version 2"):
        records.as_sample({"schema_version": 2, "variant": "v", "question_id": "q"})


def test_unknown_keys_survive_and_dict_reads_see_present_keys_only():
    rec = records.as_sample({"variant": "v", "question_id": "q", "plugin_field": [1, 2]})
    assert rec["plugin_field"] == [1, 2] and "sc" not in rec and rec.get("sc", "absent") == "absent"
    assert rec.sc is None  # the attribute is typed and defaults
    assert json.loads(records.dump_sample_line(rec))["plugin_field"] == [1, 2]


def test_done_keys_read_lightly_agree_with_the_full_reader(tmp_path):
    """done_keys skips whole-record validation for current lines; its answer is the one iter_samples
    gives (errors superseded by later answers, old-version lines migrated, torn tail and garbage skipped),
    and a line that is not a sample record still fails with its file and line."""
    store = RunStore(tmp_path / "run")
    store.append(SampleRecord(variant="v", question_id="q1", letter="A"))
    store.append(SampleRecord(variant="v", question_id="q2", error={"type": "Timeout", "message": "slow"}))
    store.append(SampleRecord(variant="w", question_id="q2", letter="B"))
    store.append(SampleRecord(variant="v", question_id="q3", error={"type": "Timeout", "message": "slow"}))
    store.append(SampleRecord(variant="v", question_id="q3", letter="C"))  # supersedes the error
    store.append(SampleRecord(variant="v", question_id="q1", error={"type": "Timeout", "message": "late"}))
    with open(store.samples_path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"variant": "old", "question_id": "q9", "letter": "D"}) + "\n")  # unversioned: v1
        f.write("{not json\n")
        f.write(json.dumps({"schema_version": records.CURRENT["sample"], "variant": "v", "question_id": "q7"}))
    for errors in (True, False):
        want = {r.key for r in store.iter_samples() if errors or not r.error}
        assert store.done_keys(include_errors=errors) == want
    assert store.done_keys(include_errors=False) == {("v", "q1"), ("w", "q2"), ("v", "q3"), ("old", "q9")}
    with open(store.samples_path, "a", encoding="utf-8") as f:
        f.write("\n" + json.dumps({"schema_version": records.CURRENT["sample"], "variant": 3, "question_id": "q"}) + "\n")
    with pytest.raises(ConfigError, match=r"samples.jsonl:\d+"):
        store.done_keys()
