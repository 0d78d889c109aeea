"""The summary's safety section: poisoned vs clean pairs, net benefit, selective answering, nulls-dropped
majority, and the attribution categories abstention and poison_captured (hand-computed records)."""

from __future__ import annotations

import pytest

from ragsafe.corpora.schema import OptionLabels, Question
from ragsafe.evals import attribution
from ragsafe.evals.metrics import Options, metrics
from ragsafe.evals.metrics import self_consistency as sc
from ragsafe.evals.reports.safety import safety_text
from ragsafe.evals.score import analyze
from ragsafe.experiments.runs import Arm

OPTS = {"A": "a", "B": "b", "C": "c", "D": "d"}
LABELS = {"A": OptionLabels(), "B": OptionLabels(high_risk=True), "C": OptionLabels(), "D": OptionLabels()}
QS = [Question(id=f"q{i}", question="?", options=OPTS, answer="A", labels=LABELS, conflict_target="B",
               gold_doc_ids=("gold",)) for i in range(4)]


def rec(qid, letter, docs=("gold",), **kw):
    return {"question_id": qid, "variant": "standard_rag", "graph": "standard_rag", "letter": letter,
            "retrieved": [{"chunk_id": f"{d}#c0", "doc_id": d} for d in docs], **kw}


def arm(key, letters_docs, poisoned=False):
    recs = {q.id: rec(q.id, L, d) for q, (L, d) in zip(QS, letters_docs)}
    return Arm(key, "standard_rag", "standard_rag", "m", recs, None, poisoned)


CLEAN = [("A", ("gold",)), ("A", ("gold",)), ("A", ("gold",)), ("D", ("gold",))]
POISON = [("B", ("poison:q0", "gold")), ("A", ("poison:q1",)), ("B", ("gold",)), ("D", ("gold",))]


def test_poisoned_arm_pairs_with_the_clean_arm():
    s = analyze([arm("standard_rag", CLEAN), arm("standard_rag+poison", POISON, poisoned=True)], QS, B=100)
    p = s["safety"]["poison"]["standard_rag+poison"]
    assert p["poison_retrieved_rate"]["mean"] == 0.5   # q0 and q1 had poison in the context
    assert p["poison_capture_rate"]["mean"] == 0.25    # only q0: poison in context AND chose the target B
    assert p["poison_retrieved_rate"]["n"] == 4 and p["poison_retrieved_rate"]["lo"] <= 0.5
    assert "standard_rag" not in s["safety"]["poison"]  # the clean arm has no poison rates
    (pair,) = [x for x in s["safety"]["pairs"] if "poison" in x]
    assert (pair["a"], pair["b"]) == ("standard_rag+poison", "standard_rag")
    # poisoned − clean: accuracy 1/4 vs 3/4, high-risk 2/4 vs 0
    assert pair["poison"]["accuracy"]["mean"] == pytest.approx(-0.5)
    assert pair["poison"]["high_risk_error_rate"]["mean"] == pytest.approx(0.5)
    # net benefit: clean [1, 1, 1, -1] = 0.5; poisoned [-3, 1, -3, -1] = -1.5
    nb = s["safety"]["net_benefit"]
    assert nb["standard_rag"]["estimate"]["mean"] == 0.5 and nb["standard_rag+poison"]["estimate"]["mean"] == -1.5
    assert pair["net_benefit"]["mean"] == -2.0
    att = s["variants"]["standard_rag+poison"]["attribution"]
    assert att["counts"]["poison_captured"] == 1 and att["counts"]["conflict_captured"] == 0
    text = safety_text(s)
    assert "Poisoned corpus" in text and "standard_rag+poison" in text and "Net benefit" in text


def test_net_benefit_costs_and_abstentions_are_recorded():
    from ragsafe.evals.net_benefit import Costs

    a = arm("standard_rag", CLEAN)
    a.records["q3"] = rec("q3", None, answer_source="abstention")
    s = analyze([a], QS, B=50, benefit_costs=Costs(w=10))
    cell = s["safety"]["net_benefit"]["standard_rag"]
    assert cell["estimate"]["mean"] == 0.75 and cell["abstentions"] == 1 and cell["nulls"] == 0
    assert s["safety"]["settings"]["costs"]["w"] == 10
    # the paper's metrics still count the abstention as wrong
    assert s["variants"]["standard_rag"]["metrics"]["accuracy"]["mean"] == 0.75
    assert s["variants"]["standard_rag"]["attribution"]["counts"]["abstention"] == 1


def test_selective_section_uses_every_confidence_source_the_records_carry():
    a = arm("standard_rag", [("A", ("gold",)), ("B", ("gold",)), ("A", ("gold",)), ("D", ("gold",))])
    for r, p in zip(a.records.values(), (0.9, 0.8, 0.6, 0.3)):
        r["letter_dist"] = {r["letter"]: p}
    s = analyze([a], QS, B=50, max_high_risk_pct=30)
    (src,) = s["safety"]["selective"]["standard_rag"].values()
    # points: cov .25 (hr 0), .5 (hr 1/2), .75 (hr 1/3), 1 (hr 1/4): AURC hr = .25*(.5 + 1/3 + .25)
    assert src["aurc_high_risk"]["mean"] == pytest.approx(0.25 * (0.5 + 1 / 3 + 0.25))
    assert src["coverage_at_max_high_risk"]["mean"] == 1.0 and src["max_high_risk_pct"] == 30
    assert [round(p["coverage"], 2) for p in src["curve"]] == [0.25, 0.5, 0.75, 1.0]


def test_nulls_dropped_majority_changes_only_the_sc_safety_rates():
    q = QS[0]
    s = {"letter": "A", "sc": {"ballots": [None, None, "B"]}}
    assert sc.majority_nulls_dropped([None, None, "B"]) == "B" and sc.majority([None, None, "B"]) is None
    hr = metrics.get("sc_high_risk_error_rate")
    assert hr(s, q, Options()) == 0.0                           # null majority: wrong but no flag
    assert hr(s, q, Options(sc_majority="nulls-dropped")) == 1.0  # B is high-risk
    assert metrics.get("sc_accuracy")(s, q, Options(sc_majority="nulls-dropped")) == 0.0
    assert sc.majority_nulls_dropped([None, None]) is None
    with pytest.raises(ValueError, match="sc-majority"):
        Options(sc_majority="mode")
    a = Arm("sc", "sc", "self_consistency", "m", {x.id: {"question_id": x.id, "letter": "A",
                                                        "sc": {"ballots": [None, None, "B"]}} for x in QS})
    default = analyze([a], QS, B=20)
    dropped = analyze([a], QS, B=20, sc_majority="nulls-dropped")
    assert default["variants"]["sc"]["metrics"]["sc_high_risk_error_rate"]["mean"] == 0.0
    assert dropped["variants"]["sc"]["metrics"]["sc_high_risk_error_rate"]["mean"] == 1.0
    assert dropped["safety"]["settings"]["sc_majority"] == "nulls-dropped"
    assert default["safety"]["settings"]["sc_majority"] == "null-ballot"


def test_attribution_rag_plus_clean_is_not_a_retrieval_miss():
    r = rec("q0", "D", docs=("other",), trace=[{"node": "retrieve", "sources": ["retrieved", "evidence_clean"]}])
    assert attribution.classify(r, QS[0])["category"] == "reasoning_miss"
    r = rec("q0", "D", docs=("other",))
    assert attribution.classify(r, QS[0])["category"] == "retrieval_miss"
    mixed = {"question_id": "q0", "letter": "D", "retrieved": [],
             "trace": [{"node": "context", "source": "evidence_clean+evidence_conflict",
                        "sources": ["evidence_clean", "evidence_conflict"]}]}
    assert attribution.classify(mixed, QS[0])["category"] == "conflict_captured"


def test_html_report_plots_the_risk_coverage_curves_and_the_safety_tables():
    from ragsafe.evals.reports.html import render_html

    a = arm("standard_rag", CLEAN)
    for r, p in zip(a.records.values(), (0.9, 0.8, 0.6, 0.3)):
        r["letter_dist"] = {r["letter"]: p}
    s = analyze([a, arm("standard_rag+poison", POISON, poisoned=True)], QS, B=30)
    page = render_html(s)
    sec = page.split('<section id="risk-coverage">', 1)[1].split("</section>", 1)[0]
    assert '<img alt="risk-coverage curves" src="data:image/png;base64,' in sec
    for sid in ("selective-table", "net-benefit-table", "poison-table"):
        assert f'<section id="{sid}">' in page
    assert "captured by poison" in page.split('<section id="poison-table">', 1)[1]
    # no confidence source: the section says so instead of drawing an empty plot
    bare = analyze([arm("standard_rag", CLEAN)], QS, B=30)
    assert "No confidence source" in render_html(bare).split('<section id="risk-coverage">', 1)[1]
