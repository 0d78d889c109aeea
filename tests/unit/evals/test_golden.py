"""Frozen outputs of the fixture runs: today's code must reproduce them byte for byte.

``tests/fixtures/evals/golden/`` was written by the code of commit d09fcc0 (the last commit before
the layout refactor of issue 10) from the hand-made runs of ``fixture_runs.py``, with the capture
script's relative paths (``runs/run-<model>``, ``export``), so nothing in them depends on where the
test runs. Compared byte for byte: each run's ``summary.json`` as ``ragsafe score`` writes it and
every file of the RadSaFE export. Compared as parsed JSON (key order is not part of the format):
the three-model analysis behind ``ragsafe report --json`` and the long CSV rows. No field is
dropped: the fixture summaries carry no time or version dependent value (``schema_version`` is the
record format's, ``samples_bytes`` the size of the fixture's samples file).

``golden/smollm2-demo/`` is a real run (smollm2-135m on the demo split, five graphs, made by the
d09fcc0 code; 58 of its 60 records, as the run stood when it was copied, so two graphs are
"incomplete"), with the summary.json d09fcc0's ``score_run_dir("smollm2-demo")`` wrote: re-scored
by today's code it must come out byte-identical too (chunk texts rebuilt from the bundled demo
corpus, so the attribution's conflict-support test runs on real retrieved chunks).

Sections added after the freeze by later issues (``tests/frozen.py``: issue 15's ``safety``
section) are taken out of today's output before the comparison; everything frozen is still compared
in full.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ragsafe.evals.radsafe import export_radsafe
from ragsafe.evals.reports.csv import csv_rows
from ragsafe.evals.score import analyze, score_run_dir
from ragsafe.experiments.runs import combine_runs, load_run
from tests.fixtures.evals import fixture_runs as fx
from tests.frozen import frozen_bytes, frozen_part
from tests.paths import FIXTURES

GOLDEN = FIXTURES / "evals" / "golden"
MODELS = ("m1", "m2", "m3")
_frozen_part, _frozen_bytes = frozen_part, frozen_bytes


@pytest.fixture
def runs(tmp_path, monkeypatch) -> list[Path]:
    monkeypatch.chdir(tmp_path)  # relative run paths, as in the frozen copies
    return [fx.write_run(Path("runs"), m) for m in MODELS]


def _golden_files(sub: str) -> list[Path]:
    files = sorted(p.relative_to(GOLDEN) for p in (GOLDEN / sub).rglob("*") if p.is_file())
    assert files, f"no frozen files under {GOLDEN / sub}"
    return files


def test_summary_json_of_every_fixture_run_is_byte_identical(runs):
    for d in runs:
        score_run_dir(d)
    for rel in _golden_files("runs"):
        got, want = Path(rel).read_bytes(), (GOLDEN / rel).read_bytes()
        if Path(rel).name == "summary.json":
            got = _frozen_bytes(got)
        assert got == want, f"{rel} differs from the frozen copy (first differing byte at " \
                            f"{next(i for i, (a, b) in enumerate(zip(got + b' ', want + b'  ')) if a != b)})"


def test_radsafe_export_is_byte_identical(runs):
    export_radsafe(runs, Path("export"))
    written = sorted(p for p in Path("export").rglob("*") if p.is_file())
    assert [str(p) for p in written] == [str(p) for p in _golden_files("export")]
    for rel in written:
        assert rel.read_bytes() == (GOLDEN / rel).read_bytes(), f"{rel} differs from the frozen copy"


def test_three_model_analysis_and_csv_rows_match(runs):
    arms, questions = combine_runs([load_run(d) for d in runs], text=False)
    summary = analyze(arms, questions, B=200, seed=42)
    want = json.loads((GOLDEN / "report.json").read_text(encoding="utf-8"))
    assert json.loads(json.dumps(_frozen_part(summary), default=str)) == want
    want_rows = json.loads((GOLDEN / "report.csv.json").read_text(encoding="utf-8"))
    assert json.loads(json.dumps(csv_rows(summary), default=str)) == want_rows


def test_real_smollm2_run_rescored_is_byte_identical(tmp_path, monkeypatch):
    shutil.copytree(GOLDEN / "smollm2-demo", tmp_path / "smollm2-demo",
                    ignore=shutil.ignore_patterns("summary.json"))
    monkeypatch.chdir(tmp_path)
    score_run_dir("smollm2-demo")
    got = _frozen_bytes(Path("smollm2-demo/summary.json").read_bytes())
    assert got == (GOLDEN / "smollm2-demo" / "summary.json").read_bytes()
    statuses = {v: c["status"] for v, c in json.loads(got)["variants"].items()}
    assert statuses["closed_book"] == "ok" and "incomplete" in statuses["standard_rag[k=2]"]
