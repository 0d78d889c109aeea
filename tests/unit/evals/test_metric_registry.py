"""The metric registry: complete on import, and the only source of every table's metric columns."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ragsafe.evals import stats
from ragsafe.evals.calibration import estimate
from ragsafe.evals.metrics import Metric, get, metric, metric_names, metrics, select
from ragsafe.evals.metrics.calibration import ece_mce, ece_mce_bootstrap
from ragsafe.evals.reports.csv import csv_rows
from ragsafe.evals.reports.tables import comparison_table, gap_table, graph_table, sc_table
from ragsafe.evals.reports.text import text_table
from ragsafe.evals.score import analyze
from ragsafe.experiments.runs import combine_runs, load_run
from tests.fixtures.evals import fixture_runs as fx
from tests.paths import ROOT

FIRST_IMPORTS = ["ragsafe.evals.metrics", "ragsafe.evals.metrics.greedy", "ragsafe.evals.metrics.registry",
                 "ragsafe.evals.metrics.self_consistency", "ragsafe.evals.calibration", "ragsafe.evals.reports.tables"]


@pytest.mark.parametrize("first", FIRST_IMPORTS)
def test_registry_is_complete_whatever_is_imported_first(first):
    code = (f"import {first}\nimport ragsafe.evals.metrics as m\n"
            "import json; print(json.dumps([m.get('sc_accuracy').label, m.get('ece').over, m.metric_names()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    label, over, names = json.loads(out)
    assert label == "SC accuracy" and over == "confidence"
    assert names == metric_names()  # same names, same order, in a fresh interpreter


def test_every_registration_is_consistent():
    for name in metrics:
        m = get(name)
        assert m.name == name and m.label and m.over in ("sample", "confidence", "ranking", "safety")
        assert m.unit in ("%", "")
        if m.gap or m.compare:
            assert m.higher_is_better is not None, f"{name}: a gap or Δ needs a direction"
    assert [m.name for m in select(headline=True)] == ["accuracy", "high_risk_error_rate"]
    assert "ece" not in metric_names() and {"ece", "mce"} <= {m.name for m in select(over="confidence")}


def test_unknown_metric_lists_the_valid_names():
    with pytest.raises(KeyError, match="valid names: .*accuracy"):
        get("acuracy")


def test_a_two_argument_function_registers_and_gets_the_options_dropped():
    @metric("_test_two_args", higher_is_better=None)
    def two(s, q):
        return float(s.get("letter") == "A")

    q = fx.BENCHMARK[0]
    assert get("_test_two_args")({"letter": "A"}, q) == 1.0
    assert get("_test_two_args").fn({"letter": "B"}, q, None) == 0.0
    assert metric_names()[-1] == "_test_two_args"  # a column after the built-in ones


def test_a_metric_reads_attributes_and_an_older_dict_style_metric_still_works(tmp_path):
    """Metric functions get SampleRecords (from a run folder or from dicts): attribute reads are the way,
    and a plugin written against dict records (``s.get``, ``s[...]``, ``in``) scores the same."""
    from ragsafe.evals.metrics import per_question
    from ragsafe.records import SampleRecord

    seen = []

    @metric("_test_attr_null", higher_is_better=False)
    def by_attribute(s, q):
        seen.append(type(s))
        return float(s.letter is None or s.error is not None)

    @metric("_test_dict_null", higher_is_better=False)
    def by_key(s, q):
        return float(s.get("letter") is None or ("error" in s and s["error"] is not None))

    lr = load_run(fx.write_run(tmp_path, "m1"))
    recs = [s for s in lr.samples if s.variant == "closed_book"]
    recs[0] = recs[0].model_copy(update={"letter": None})
    for samples in (recs, [s.to_dict() for s in recs]):
        pq = per_question(samples, lr.questions, ["_test_attr_null", "_test_dict_null", "null_rate"])
        assert pq["_test_attr_null"] == pq["_test_dict_null"] == pq["null_rate"]
        assert pq["_test_attr_null"][[q.id for q in lr.questions].index(recs[0].question_id)] == 1.0
    assert set(seen) == {SampleRecord}


def test_bad_metadata_is_refused_with_the_valid_values():
    with pytest.raises(ValueError, match="valid: sample, confidence, ranking"):
        metric("x", higher_is_better=True, over="per_question")
    with pytest.raises(ValueError, match="'%'"):
        metric("x", higher_is_better=True, unit="percent")


def test_generic_confidence_bootstrap_matches_the_vectorised_ece():
    rng = np.random.default_rng(0)
    conf, correct = rng.random(40), rng.random(40) < 0.6
    idx = stats.bootstrap_indices(40, 200, 7)
    plain = Metric(name="ece_plain", fn=lambda c, k: ece_mce(c, k)[0], higher_is_better=False, label="ECE",
                   over="confidence", unit="")
    generic, fast = estimate(plain, conf, correct, idx), ece_mce_bootstrap(conf, correct, idx)[0]
    assert generic.mean == pytest.approx(fast.mean) and generic.n == fast.n == 40
    assert (generic.lo, generic.hi, generic.sd) == pytest.approx((fast.lo, fast.hi, fast.sd))


@pytest.fixture
def m1_summary(tmp_path):
    runs = [load_run(fx.write_run(tmp_path, "m1"))]
    arms, qs = combine_runs(runs, text=False)
    return analyze(arms, qs, B=50, pairs=None)


def test_tables_take_their_columns_from_the_registrations(m1_summary):
    assert graph_table(m1_summary).header[2:7] == [m.label for m in select(group="greedy")]
    assert sc_table(m1_summary).header[1:] == [m.label for m in select(group="sc")]
    comp = comparison_table(m1_summary)
    assert comp.header[2:5] == [f"Δ {m.label}" for m in select(compare=True) if m.group == "greedy"]
    gap = gap_table(m1_summary)
    assert set(gap.header[1:]) <= {m.label for m in select(gap=True)} and "accuracy" in gap.header
    # sc_table's scores read as scores, rates as percentages (the metric's unit)
    row = sc_table(m1_summary).rows[0]
    shown = select(group="sc")
    assert "%" in row[1 + shown.index(get("sc_accuracy"))] and "%" not in row[1 + shown.index(get("sc_margin"))]
    rows = {(r["variant"], r["metric"]) for r in csv_rows(m1_summary)}
    assert ("self_consistency", "ece:sc") in rows and ("self_consistency", "mce:sc") in rows


def test_no_column_is_empty_in_every_row(m1_summary):
    # m1's default comparisons pair every graph with the greedy floor and ceiling: no SC accuracy on
    # both sides of any pair, so no "Δ SC accuracy" column (it used to print empty)
    comp = comparison_table(m1_summary)
    assert "Δ SC accuracy" not in comp.header
    for t in (graph_table(m1_summary), comp, gap_table(m1_summary), sc_table(m1_summary)):
        for i, h in enumerate(t.header):
            assert any(r[i] not in ("", "n/a") for r in t.rows), f"{t.id}: column {h!r} is empty in every row"
    gap = gap_table(m1_summary)
    assert "SC accuracy" not in gap.header and "Not shown (n/a in every row): SC accuracy" in gap.note


def test_a_column_with_one_figure_stays(tmp_path):
    runs = [load_run(fx.write_run(tmp_path, "m1"))]
    arms, qs = combine_runs(runs, text=False)
    s = analyze(arms, qs, B=50, pairs=[("self_consistency", "closed_book"), ("self_consistency", "self_consistency")])
    comp = comparison_table(s)
    i = comp.header.index("Δ SC accuracy")
    assert [r[i] for r in comp.rows] == ["", "+0.0 pp [+0.0, +0.0]"]


def test_terminal_table_marks_floor_and_ceiling(m1_summary, tmp_path):
    text = text_table(m1_summary)
    assert "closed_book (floor)" in text and "clean_evidence (ceiling)" in text
    assert "standard_rag[k=2] (" not in text
    runs = [load_run(fx.write_run(tmp_path / "two", m)) for m in ("m2", "m3")]
    arms, qs = combine_runs(runs, text=False)
    two = text_table(analyze(arms, qs, B=20))
    assert "closed_book@m2 (floor)" in two and "clean_evidence@m3 (ceiling)" in two
