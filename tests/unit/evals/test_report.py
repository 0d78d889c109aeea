"""Reports: Markdown/CSV tables, the self-contained HTML page, and that it renders in headless Chromium."""

from __future__ import annotations

import csv
import dataclasses
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from ragsafe.cli.main import main
from ragsafe.evals.reports.html import SECTIONS, render_html
from ragsafe.evals.reports.markdown import markdown_report
from ragsafe.evals.reports.text import text_table
from ragsafe.evals.score import analyze, summarize
from ragsafe.experiments.runs import combine_runs, load_run
from tests.fixtures.evals import fixture_runs as fx

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                                                              "(Debian package `chromium`)")
PROBE = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
         "document.body.setAttribute('data-images',i.length);"
         "document.body.setAttribute('data-broken-images',i.filter(x=>!(x.complete&&x.naturalWidth>0)).length)})"
         "</script>")


@pytest.fixture
def three(tmp_path):
    runs = [load_run(fx.write_run(tmp_path, m)) for m in ("m1", "m2", "m3")]
    arms, qs = combine_runs(runs, text=False)
    summary = analyze(arms, qs, B=100)
    from ragsafe.evals.ensemble import analyze_ensemble

    return summary, analyze_ensemble(runs, B=100)


def test_markdown_carries_every_table(three):
    summary, ens = three
    md = markdown_report(summary, ens)
    for title in ("Graphs and conditions", "Self-consistency", "Confidence and calibration by source",
                  "Gap closed between floor and ceiling", "Paired comparisons", "By subspecialty", "By question type",
                  "Step attribution of wrong answers", "Step attribution of high-risk errors",
                  "Worst-case questions", "Ensemble of org/m1, m2, m3"):
        assert f"## {title}" in md, title
    row = next(line for line in md.splitlines() if line.startswith("| standard_rag[k=2]@org/m1 |"))
    assert "20.0% ±" in row and "LLM calls/q" in md  # accuracy 1/5 with its sd, cost beside safety
    assert "| q1 | 4/11 |" in md  # q1: closed book wrong for all 3 models, conflict evidence for m1


def test_html_is_self_contained_and_has_every_section(three):
    summary, ens = three
    page = render_html(summary, ens)
    for sid in SECTIONS + ["sc-table", "gap-table", "breakdown-subspecialty", "ensemble-table"]:
        assert f'<section id="{sid}">' in page, sid
    assert page.count("data:image/png;base64,") >= 4            # scatter, bars, reliability, attribution
    assert "<script" not in page and not re.search(r"(src|href)=\"https?:", page)


def test_empty_sections_say_why(tmp_path):
    lr = load_run(fx.write_run(tmp_path, "m2"))
    bare = [dataclasses.replace(q, labels=None) for q in lr.questions]
    page = render_html(summarize(lr.samples, bare, lr.variants, B=20))
    assert "n/a: the benchmark has no option labels" in page          # no high-risk axis for the scatter
    assert "No confidence source" in page                             # m2 has no ballots and no letter_dist


def _render(html_path: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=5000", *args, html_path.as_uri()],
                          capture_output=True, text=True, timeout=180)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@needs_chromium
def test_console_and_image_checks_catch_a_broken_page(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><img src='data:image/png;base64,AAAA'>"
                   "<script>undefinedFunction()</script>" + PROBE + "</body></html>")
    r = _render(bad, tmp_path, "--dump-dom")
    assert any("undefinedFunction" in line for line in _console(r.stderr))
    assert 'data-broken-images="1"' in r.stdout


@needs_chromium
def test_report_renders_in_headless_chromium(three, tmp_path):
    summary, ens = three
    page = render_html(summary, ens)
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    r = _render(probe, tmp_path, "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    assert _console(r.stderr) == []
    body = re.search(r"<body[^>]*>", r.stdout).group(0)
    assert 'data-broken-images="0"' in body and int(re.search(r'data-images="(\d+)"', body).group(1)) >= 4
    for sid in SECTIONS:
        assert f'id="{sid}"' in r.stdout, sid
    page_file = tmp_path / "report.html"
    page_file.write_text(page, encoding="utf-8")
    shot = tmp_path / "shot.png"
    r = _render(page_file, tmp_path, "--hide-scrollbars", "--window-size=1400,2400", f"--screenshot={shot}")
    assert r.returncode == 0 and _console(r.stderr) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (1400, 2400)


def test_cli_report_writes_every_format(tmp_path, capsys):
    dirs = [str(fx.write_run(tmp_path, m)) for m in ("m1", "m2", "m3")]
    html, md, csv_path = tmp_path / "r.html", tmp_path / "r.md", tmp_path / "r.csv"
    assert main(["report", *dirs, "--html", str(html), "--md", str(md), "--csv", str(csv_path), "--B", "50",
                 "--compare", "closed_book@m2", "closed_book@m3"]) == 0
    out = capsys.readouterr().out
    assert "closed_book@m2" in out and "Graphs and conditions" in out
    assert '<section id="ensemble-table">' in html.read_text() and "## Paired comparisons" in md.read_text()
    assert "| closed_book@m2 | closed_book@m3 |" in md.read_text()
    rows = list(csv.DictReader(open(csv_path)))
    got = {(r["variant"], r["metric"]) for r in rows}
    assert ("self_consistency@org/m1", "ece:sc") in got and ("standard_rag[k=2]@m2", "gap_closed:accuracy") in got
    acc = next(r for r in rows if r["variant"] == "closed_book@org/m1" and r["metric"] == "accuracy")
    assert float(acc["mean"]) == pytest.approx(0.4) and acc["n"] == "5"


def test_cli_score_writes_the_summary(tmp_path, capsys):
    d = fx.write_run(tmp_path, "m1")
    assert main(["score", str(d), "--threshold", "0.5", "--full"]) == 0
    import json

    s = json.loads((d / "summary.json").read_text())
    assert s["threshold"] == 0.5 and s["variants"]["self_consistency"]["metrics"]["sc_accuracy"]["mean"] == 0.2
    assert "Step attribution" in capsys.readouterr().out
    assert "Graphs and conditions" in text_table(s)


def test_html_draws_each_graph_variant_once(three):
    summary, ens = three
    page = render_html(summary, ens)
    section = re.search(r'<section id="graph-diagrams">(.*?)</section>', page, re.S).group(1)
    variants = {c["variant"] for c in summary["variants"].values()}
    drawn = re.findall(r'alt="diagram of ([^"]+)"', section)
    assert sorted(drawn) == sorted(variants)  # one per (graph, params), not one per model
    assert len(drawn) < len(summary["variants"])
