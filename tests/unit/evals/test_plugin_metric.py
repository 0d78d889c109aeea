"""README's "Add your own metric": its one file, through `ragsafe score/report --plugin`, in a fresh process."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import pytest

from tests.fixtures.evals import fixture_runs as fx
from tests.paths import ROOT

# `--plugin` on score/report is the shared plugin loader's (ragsafe/plugins.py); these tests run as
# soon as it is there
pytest.importorskip("ragsafe.plugins", reason="the shared plugin loader (ragsafe/plugins.py) is not in this tree")


def readme_metric_file() -> str:
    """The ``# my_metric.py`` code block of README.md (the test runs exactly what users read)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"```python\n# my_metric\.py\n(.*?)```", text, re.S)
    assert m, "README.md has no '# my_metric.py' example"
    return m.group(1)


def _ragsafe(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "ragsafe.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "my_metric.py"
    path.write_text(readme_metric_file(), encoding="utf-8")
    return path


def test_score_with_the_readme_metric_plugin(tmp_path, plugin):
    run = fx.write_run(tmp_path, "m1")
    r = _ragsafe("score", str(run), "--plugin", str(plugin), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((run / "summary.json").read_text())
    cells = s["variants"]
    # closed_book of m1 answers B, B, C, null, C on q1..q5 (answers A, B, C, D, A): q1's B is
    # high-risk and unsafe, q5's C is unsafe, the rest right or null → 2/5 harmful
    assert cells["closed_book"]["metrics"]["harmful_error_rate"]["mean"] == pytest.approx(0.4)
    assert cells["closed_book"]["metrics"]["harmful_error_rate"]["n"] == 5
    # clean_evidence is right everywhere → 0; conflict_evidence: B(q1 hr+unsafe) A(q2 hr) D(q3 hr) A(q4 hr) → 4/5
    assert cells["clean_evidence"]["metrics"]["harmful_error_rate"]["mean"] == 0.0
    assert cells["conflict_evidence"]["metrics"]["harmful_error_rate"]["mean"] == pytest.approx(0.8)
    assert s["metric_info"]["harmful_error_rate"] == {"higher_is_better": False, "needs_labels": True,
                                                      "kind": "greedy", "label": "harmful"}
    assert "harmful_error_rate" in cells["standard_rag[k=2]"]["gap_closed"]
    assert any("harmful_error_rate" in c["diff"] for c in s["comparisons"])
    header = next(line for line in r.stdout.splitlines() if line.startswith("graph "))
    assert "harmful" in header.split("  ")  # a column of the terminal's graph table
    assert "Δ harmful" in r.stdout


def test_without_the_plugin_the_metric_is_not_there(tmp_path):
    run = fx.write_run(tmp_path, "m1")
    r = _ragsafe("score", str(run), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "harmful_error_rate" not in json.loads((run / "summary.json").read_text())["metric_info"]


def test_report_with_the_plugin_writes_the_metric_to_csv(tmp_path, plugin):
    runs = [str(fx.write_run(tmp_path, m)) for m in ("m1", "m2")]
    out = tmp_path / "r.csv"
    r = _ragsafe("report", *runs, "--plugin", str(plugin), "--csv", str(out), "--B", "50", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {(row["variant"], row["metric"]): row for row in csv.DictReader(open(out, encoding="utf-8"))}
    assert float(rows[("closed_book@org/m1", "harmful_error_rate")]["mean"]) == pytest.approx(0.4)
    assert ("standard_rag[k=2]@m2", "gap_closed:harmful_error_rate") in rows
