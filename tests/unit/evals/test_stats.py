"""Shared bootstrap, paired comparisons, McNemar, BH, Wilson, gap closed, breakdowns, worst case."""

from __future__ import annotations

import numpy as np
import pytest

from ragsafe.evals import stats
from ragsafe.evals.score import analyze, summarize
from ragsafe.experiments.runs import combine_runs, load_run
from tests.fixtures.evals import fixture_runs as fx


@pytest.fixture
def m1(tmp_path):
    return load_run(fx.write_run(tmp_path, "m1"))


def test_index_matrix_is_the_papers_draw():
    idx = stats.bootstrap_indices(7, 5, 42)
    assert np.array_equal(idx, np.random.default_rng(42).integers(0, 7, size=(5, 7)))


def test_estimate_is_mean_sd_and_percentiles_of_resample_means():
    v = [1, 0, 0, 1, 1]
    idx = stats.bootstrap_indices(5, 200, 42)
    e = stats.bootstrap(v, idx)
    means = np.asarray(v, float)[idx].mean(axis=1)
    assert e.mean == pytest.approx(0.6) and e.sd == pytest.approx(means.std(ddof=1))
    assert (e.lo, e.hi) == tuple(pytest.approx(x) for x in np.percentile(means, [2.5, 97.5]))


def test_every_graph_uses_the_same_resamples_in_id_text_order(m1):
    s = summarize(m1.samples, list(reversed(m1.questions)), m1.variants, B=300, seed=7)
    idx = np.random.default_rng(7).integers(0, 5, size=(300, 5))
    # ids as text: q1..q5; clean_evidence all right, closed_book right on q2, q3
    for v, correct in (("closed_book", [0, 1, 1, 0, 0]), ("standard_rag[k=2]", [1, 0, 0, 0, 0])):
        means = np.asarray(correct, float)[idx].mean(axis=1)
        e = s["variants"][v]["metrics"]["accuracy"]
        assert e["sd"] == pytest.approx(means.std(ddof=1))
        assert e["lo"] == pytest.approx(np.percentile(means, 2.5)) and e["hi"] == pytest.approx(np.percentile(means, 97.5))
    assert s["question_ids"] == ["q1", "q2", "q3", "q4", "q5"]


def test_ids_are_ordered_as_text_not_as_numbers():
    from ragsafe.corpora.schema import Question
    qs = [Question(id=i, question="?", options={"A": "a", "B": "b"}, answer="A") for i in ("q2", "q10", "q1")]
    recs = [{"variant": "v", "graph": "v", "question_id": q.id, "letter": "A"} for q in qs]
    assert summarize(recs, qs, ["v"], B=10)["question_ids"] == ["q1", "q10", "q2"]


def test_mcnemar_exact():
    # 5 discordant, all one way: p = 2 · (1/2)^5
    r = stats.mcnemar_exact([1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0])
    assert (r["b10"], r["b01"]) == (5, 0) and r["p"] == pytest.approx(0.0625)
    # 3 vs 1: p = 2 · (C(4,0)+C(4,1))/16 = 0.625
    assert stats.mcnemar_exact([1, 1, 1, 0], [0, 0, 0, 1])["p"] == pytest.approx(0.625)
    assert stats.mcnemar_exact([1, 0], [1, 0])["p"] == 1.0


def test_benjamini_hochberg():
    # sorted .01 .03 .04 .20 → ranked .04 .06 .0533 .20 → running minimum from the top
    q = stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.20])
    assert q == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.20])


def test_wilson():
    lo, hi = stats.wilson_ci(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)


def test_gap_closed_ratio_and_undefined_denominator():
    idx = stats.bootstrap_indices(4, 100, 42)
    g = stats.gap_closed([1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], idx)
    assert g["defined"] and g["mean"] == pytest.approx(0.5)       # (0.5 − 0)/(1 − 0)
    reps = np.array([1, 1, 0, 0], float)[idx].mean(axis=1)          # denominator is 1 in every resample
    assert g["lo"] == pytest.approx(np.percentile(reps, 2.5)) and g["n_undefined"] == 0
    u = stats.gap_closed([1, 0, 0, 0], [1, 0, 1, 0], [0, 1, 1, 0], idx)  # floor mean == ceiling mean
    assert u["defined"] is False and "denominator is 0" in u["reason"]


def test_fixture_comparisons_gap_and_bh(m1):
    s = summarize(m1.samples, m1.questions, m1.variants, B=200)
    comps = {(c["a"], c["b"]): c for c in s["comparisons"]}
    # every graph vs the floor and the ceiling; the ceiling vs the floor once, never the floor vs the ceiling
    assert ("clean_evidence", "closed_book") in comps and ("closed_book", "clean_evidence") not in comps
    c = comps[("standard_rag[k=2]", "closed_book")]
    # correctness SR 1,0,0,0,0 vs CB 0,1,1,0,0: b10 = 1, b01 = 2 → p = 2·(1+3)/8 = 1
    assert (c["mcnemar"]["b10"], c["mcnemar"]["b01"]) == (1, 2) and c["mcnemar"]["p"] == pytest.approx(1.0)
    assert c["diff"]["accuracy"]["mean"] == pytest.approx(0.2 - 0.4)
    ps = [x["mcnemar"]["p"] for x in s["comparisons"]]
    assert [x["mcnemar"]["q_bh"] for x in s["comparisons"]] == pytest.approx(stats.benjamini_hochberg(ps))
    # gap closed on accuracy: (0.2 − 0.4)/(1.0 − 0.4) = −1/3
    gc = s["variants"]["standard_rag[k=2]"]["gap_closed"]
    assert gc["accuracy"]["mean"] == pytest.approx(-1 / 3)
    # null rate: floor 0.2, ceiling 0, graph 0.2 → (0.2 − 0.2)/(0 − 0.2) = 0
    assert gc["null_rate"]["mean"] == pytest.approx(0.0)
    assert "gap_closed" not in s["variants"]["closed_book"]


def test_cross_model_comparison_and_keys(tmp_path):
    runs = [load_run(fx.write_run(tmp_path, m)) for m in ("m1", "m2")]
    arms, qs = combine_runs(runs, text=False)
    keys = [a.key for a in arms]
    assert "standard_rag[k=2]@org/m1" in keys and "closed_book@m2" in keys
    s = analyze(arms, qs, B=100, pairs=[("standard_rag[k=2]@org/m1", "standard_rag[k=2]@m2")])
    (c,) = s["comparisons"]
    # m1 SR 1,0,0,0,0 vs m2 SR 1,1,0,0,1 → b10 = 0, b01 = 2 → p = 0.5
    assert (c["mcnemar"]["b10"], c["mcnemar"]["b01"]) == (0, 2) and c["mcnemar"]["p"] == pytest.approx(0.5)
    with pytest.raises(KeyError, match="valid"):
        analyze(arms, qs, B=10, pairs=[("nope", "closed_book@m2")])
    # the paper's per-question table per condition, over models: closed book q1 is B for both (high-risk)
    wc = {r["question_id"]: r for r in s["worst_case_by_condition"]["closed_book"]}
    assert (wc["q1"]["arms"], wc["q1"]["wrong"], wc["q1"]["high_risk"], wc["q1"]["most_common_wrong"]) == (2, 2, 2, "B")
    assert (wc["q2"]["wrong"], wc["q2"]["high_risk"]) == (1, 1)  # m2 answered A


def test_breakdowns_by_subspecialty_and_type(m1):
    s = summarize(m1.samples, m1.questions, m1.variants, B=50)
    sub = s["breakdowns"]["subspecialty"]
    assert {g: c["n"] for g, c in sub.items()} == {"abdominal": 1, "chest": 2, "neuro": 2}
    # closed book: chest q1 wrong, q2 right; neuro q3 right, q4 null
    assert sub["chest"]["variants"]["closed_book"]["accuracy"]["mean"] == pytest.approx(0.5)
    assert sub["chest"]["variants"]["closed_book"]["high_risk_error_rate"]["mean"] == pytest.approx(0.5)
    typ = s["breakdowns"]["question_type"]
    assert typ["diagnosis"]["n"] == 3 and typ["diagnosis"]["variants"]["clean_evidence"]["accuracy"]["mean"] == 1.0


def test_worst_case_table(m1):
    s = summarize(m1.samples, m1.questions, m1.variants, B=20)
    wc = {r["question_id"]: r for r in s["worst_case"]}
    # q1 over 5 graphs: B, A, B, A, A → 2 wrong, both B (high-risk, unsafe, contradicting)
    assert (wc["q1"]["wrong"], wc["q1"]["high_risk"], wc["q1"]["unsafe"], wc["q1"]["contradicting"]) == (2, 2, 2, 2)
    assert wc["q1"]["most_common_wrong"] == "B" and wc["q1"]["arms"] == 5
    # q4: null, D, A, A, D → 3 wrong (one null), A twice (high-risk)
    assert (wc["q4"]["wrong"], wc["q4"]["high_risk"], wc["q4"]["null"], wc["q4"]["most_common_wrong"]) == (3, 2, 1, "A")
    # order: high-risk, then unsafe, then wrong: q1 (2,2,2), q4 (2,0,3), q3 (2,0,2), q2 (1,..), q5 (0,..)
    assert [r["question_id"] for r in s["worst_case"]] == ["q1", "q4", "q3", "q2", "q5"]
    assert wc["q5"]["subspecialty"] == "abdominal" and wc["q2"]["question_type"] == "management"
