"""The eval layer reads run records by attribute, never through their dict-style shim.

``Record`` keeps ``rec["key"]``, ``rec.get("key")``, ``"key" in rec`` and the mapping methods for plugin
code written against dict records (README, "Add your own metric"). ragsafe's own scoring, reports,
export and data frames must not need them: with every one of those methods made to raise, the frozen
run and the three fixture runs still score, report, export and tabulate, to the same bytes as with
the shim in place.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ragsafe.evals.radsafe import export_radsafe
from ragsafe.evals.reports.browser import sample_rows
from ragsafe.evals.reports.csv import csv_rows
from ragsafe.evals.reports.html import sections
from ragsafe.evals.reports.markdown import markdown_report
from ragsafe.evals.reports.safety import safety_text
from ragsafe.evals.reports.text import text_table
from ragsafe.evals.score import analyze, score_run_dir
from ragsafe.experiments.runs import combine_runs, load_run
from ragsafe.records import Record
from tests.fixtures.evals import fixture_runs as fx
from tests.paths import FIXTURES

FROZEN = FIXTURES / "runs" / "v1" / "run-adb313d26ae8"
SHIM = ("__getitem__", "__contains__", "get", "keys", "items", "values", "__iter__")


def _everything(work: Path) -> dict[str, str]:
    """Every output of the eval layer over the runs under ``work``, as text."""
    frozen = work / "frozen"
    dirs = [work / "runs" / f"run-{m}" for m in ("m1", "m2", "m3")]
    out: dict[str, str] = {}
    for d in [frozen, *dirs]:
        score_run_dir(d, allow_errors=True)
        out[f"{d.name}/summary.json"] = (d / "summary.json").read_text(encoding="utf-8")
    export_radsafe(dirs, work / "export")
    out |= {str(p.relative_to(work)): p.read_text(encoding="utf-8") for p in sorted((work / "export").rglob("*"))
            if p.is_file()}
    for name, run_dirs in (("multi", dirs), ("frozen", [frozen])):
        runs = [load_run(d) for d in run_dirs]
        arms, questions = combine_runs(runs)
        summary = analyze(arms, questions, B=50, allow_errors=True)
        out[f"{name}.txt"] = text_table(summary, full=True) + safety_text(summary)
        out[f"{name}.md"] = markdown_report(summary)
        out[f"{name}.csv"] = json.dumps(csv_rows(summary), default=str)
        out[f"{name}.html"] = "".join(sections(summary))
        out[f"{name}.samples"] = json.dumps(sample_rows(arms, questions), default=str)
    try:
        from ragsafe.experiments.frames import load_runs

        frames = load_runs([frozen, *dirs])
        for table in ("samples_df", "summary_df", "comparisons_df", "question_df"):
            out[table] = getattr(frames, table)().to_csv()
    except Exception as e:  # noqa: BLE001  (pandas is an optional extra: the frames part is then skipped)
        if "pandas" not in str(e):
            raise
    return out


def _copy(tmp: Path) -> Path:
    shutil.copytree(FROZEN, tmp / "frozen")
    for m in ("m1", "m2", "m3"):
        fx.write_run(tmp / "runs", m)
    return tmp


def test_scoring_reports_export_and_frames_never_read_a_record_as_a_dict(tmp_path, monkeypatch):
    with_shim = _everything(_copy(tmp_path / "a"))

    def refuse(self, *a, **kw):
        raise AssertionError(f"a dict-style read of a {type(self).__name__}: read its attributes")

    for name in SHIM:
        monkeypatch.setattr(Record, name, refuse)
    with pytest.raises(AssertionError, match="dict-style read of a SampleRecord"):
        load_run(tmp_path / "a" / "frozen").samples[0].get("letter")  # the switch works
    without = _everything(_copy(tmp_path / "b"))
    assert without.keys() == with_shim.keys()
    for key in with_shim:
        assert without[key].replace(str(tmp_path / "b"), "") == with_shim[key].replace(str(tmp_path / "a"), ""), key
