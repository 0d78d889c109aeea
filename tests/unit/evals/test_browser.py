"""The report's sample browser: rows built from stored records, and the page working in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from ragsafe.evals.reports.browser import browser_section, sample_rows
from ragsafe.evals.reports.html import render_html
from ragsafe.evals.score import summarize
from ragsafe.experiments.runs import combine_runs, load_run
from tests.fixtures.evals import fixture_runs as fx

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def m1(tmp_path):
    lr = load_run(fx.write_run(tmp_path, "m1"))
    arms, questions = combine_runs([lr], text=False)
    return lr, arms, questions


def test_rows_carry_the_sample_and_its_flags(m1):
    lr, arms, questions = m1
    rows = sample_rows(arms, questions)
    assert len(rows) == sum(len(v) for v in fx.M1.values())
    by = {(r["arm"], r["qid"]): r for r in rows}
    for variant, letters in fx.M1.items():
        for qid, letter in zip(fx.QIDS, letters):
            r = by[(variant, qid)]
            lab = next(b for b in fx.BENCHMARK if b["id"] == qid)["labels"]
            wrong = letter != fx.ANSWERS[qid]
            assert r["letter"] == letter and r["wrong"] == wrong
            assert r["high_risk"] == bool(wrong and letter and lab[letter]["high_risk"])
            answers = {fx.M1[v][fx.QIDS.index(qid)] for v in fx.M1}
            assert r["changed"] == (len(answers) > 1)
    rag = by[("standard_rag[k=2]", "q1")]
    assert [h["rank"] for h in rag["context"]["chunks"]] == [1, 2] and rag["context"]["chunks"][0]["text"]
    assert by[("clean_evidence", "q1")]["context"]["evidence"]["evidence_clean"].startswith("A widened mediastinum")
    assert by[("self_consistency", "q1")]["ballots"] == fx.M1_BALLOTS["q1"]
    assert rag["trace"][0]["node"] == "retrieve" and rag["trace"][1]["ptok"] == 400


def test_data_cannot_close_its_script_tag():
    rows = [{"arm": "a", "qid": "q</script><script>alert(1)</script>", "options": [], "context":
             {"evidence": {}, "chunks": [], "messages": []}, "trace": []}]
    section = browser_section(rows)
    blob = re.search(r'id="samples-data">(.*?)</script>', section, re.S).group(1)
    assert "</script" not in blob and json.loads(blob)[0]["qid"].startswith("q</script>")


PROBE = """<script>
window.addEventListener('load', function(){
  function n(){ return document.querySelectorAll('#samples-body tr.row').length; }
  var out = {all: n(), count: document.getElementById('samples-count').textContent};
  var hr = document.getElementById('f-hr'); hr.checked = true; hr.dispatchEvent(new Event('change'));
  out.high_risk = n();
  hr.checked = false; hr.dispatchEvent(new Event('change'));
  var arm = document.getElementById('f-arm'); arm.value = 'closed_book'; arm.dispatchEvent(new Event('change'));
  out.closed_book = n();
  document.querySelector('#samples-body tr.row').click();
  out.detail = document.querySelectorAll('#samples-body tr.detail .sb-detail').length;
  document.body.setAttribute('data-probe', JSON.stringify(out));
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package `chromium`)")
def test_browser_filters_in_headless_chromium(m1, tmp_path):
    lr, arms, questions = m1
    rows = sample_rows(arms, questions)
    page = render_html(summarize(lr.samples, lr.questions, lr.variants, B=20), samples=rows)
    assert not re.search(r"(src|href)=\"https?:", page)  # nothing from the network
    f = tmp_path / "report.html"
    f.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run",
                        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
                        "--virtual-time-budget=5000", "--dump-dom", f.as_uri()],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [line for line in r.stderr.splitlines() if ":CONSOLE" in line] == []
    probe = json.loads(re.search(r"data-probe=\"([^\"]*)\"", r.stdout).group(1).replace("&quot;", '"'))
    total = len(rows)
    assert probe["all"] == min(total, 50) and probe["count"] == f"{total} of {total} samples"
    assert probe["high_risk"] == sum(r["high_risk"] for r in rows)
    assert probe["closed_book"] == sum(r["arm"] == "closed_book" for r in rows)
    assert probe["detail"] == 1
