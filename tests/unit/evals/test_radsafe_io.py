"""Export to / import from the paper pipeline's phase-4 layout; a round trip keeps every metric."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ragsafe.cli.main import main
from ragsafe.config import ConfigError
from ragsafe.evals.ensemble import analyze_ensemble
from ragsafe.evals.radsafe import export_radsafe, import_radsafe, paper_condition
from ragsafe.evals.score import analyze, score_run_dir
from ragsafe.experiments.runs import combine_runs, load_run
from tests.fixtures.evals import fixture_runs as fx
from tests.paths import FIXTURES

PAPER = FIXTURES / "evals" / "paper_layout"


@pytest.fixture
def runs(tmp_path):
    return [fx.write_run(tmp_path / "runs", m) for m in ("m1", "m2", "m3")]


def _lines(out: Path, model: str) -> list[dict]:
    p = out / "phase4_checking_results" / "results" / model / "risk_radiorag_checked.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()]


def test_layout_names_and_fields(runs, tmp_path):
    out = tmp_path / "export"
    export_radsafe(runs, out)
    assert (out / "phase4_checking_results" / "models.txt").read_text().split() == ["org_m1", "m2", "m3"]
    lines = _lines(out, "org_m1")  # "org/m1" flattened
    assert [x["question_id"] for x in lines] == [f"risk_radiorag_{i}" for i in range(1, 6)]
    assert [x["ragsafe_id"] for x in lines] == fx.QIDS and all(x["dataset"] == "risk_radiorag" for x in lines)
    first = lines[0]
    assert first["model"] == "org_m1" and first["correct_answer"] == "A"
    # the SC variant over closed_book is the paper's zero_shot; the plain closed_book keeps its label
    assert list(first["conditions"]) == ["closed_book", "evidence_clean", "evidence_conflict", "standard_rag[k=2]",
                                         "zero_shot"]
    g = first["conditions"]["closed_book"]["greedy"]
    assert g["parsed_answer"] == "B" and g["checked_answer"]["confirmed_answer"] == "B"
    assert (g["input_tokens"], g["output_tokens"], g["elapsed_s"]) == (100, 2, 0.5)
    st = first["conditions"]["zero_shot"]["stochastic"]
    assert st["parsed_answers"] == ["A", "A", "A", "A", "B"] and st["majority_vote"] == "A"
    assert st["vote_counts"] == {"A": 4, "B": 1, "C": 0, "D": 0}
    assert first["conditions"]["closed_book"]["stochastic"]["checked_answers"] == []
    # a null answer is JSON null, never the string "NULL"
    q4 = lines[3]["conditions"]["closed_book"]["greedy"]
    assert q4["checked_answer"]["confirmed_answer"] is None and '"NULL"' not in json.dumps(lines)
    q3_sc = lines[2]["conditions"]["zero_shot"]["stochastic"]
    assert q3_sc["majority_vote"] is None and [c["confirmed_answer"] for c in q3_sc["checked_answers"]][3:] == [None, None]
    labels = json.loads((out / "datasets" / "risk_radiorag_full_merged.json").read_text())
    assert labels[0]["question_id"] == 1 and labels[0]["option_2_high_risk"] == 1 and labels[0]["option_3_unsafe"] == 0
    assert labels[2]["option_3_high_risk"] == 1  # q3's negated correct option keeps its flag
    assert json.loads((out / "ragsafe_export.json").read_text())["question_ids"]["risk_radiorag_4"] == "q4"


def test_paper_condition_names():
    assert paper_condition("closed_book", {}) == "zero_shot"
    assert paper_condition("standard_rag", {"k": 5, "query": "question"}) == "top_5"
    assert paper_condition("standard_rag", {"k": 3, "query": "question"}) is None
    assert paper_condition("standard_rag", {"k": 5, "query": "question+options"}) is None
    assert paper_condition("precomputed_report", {}) == "deep_research"
    assert paper_condition("max_context", {}) == "context_max"
    assert paper_condition("self_consistency", {"inner": "standard_rag", "inner_params": "k=10"}) == "top_10"
    assert paper_condition("corrective_rag", {}) is None


def _strip(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "run"}


def test_round_trip_reproduces_every_metric(runs, tmp_path):
    out = tmp_path / "export"
    export_radsafe(runs, out)
    back = import_radsafe(out, tmp_path / "imported")
    assert [p.name for p in back] == ["m2", "m3", "org_m1"]
    for orig, imp in zip(runs, [tmp_path / "imported" / n for n in ("org_m1", "m2", "m3")]):
        a, b = score_run_dir(orig, write=False), score_run_dir(imp, write=False)
        assert set(a["variants"]) == set(b["variants"]) and a["variants"]
        assert _strip(a) == _strip(b)
    # several models at once: paired analysis and ensembles are identical too
    o = [load_run(p) for p in runs]
    i = [load_run(tmp_path / "imported" / n) for n in ("org_m1", "m2", "m3")]
    assert analyze(*combine_runs(o), B=100) == analyze(*combine_runs(i), B=100)
    assert analyze_ensemble(o, B=100) == analyze_ensemble(i, B=100)


def test_imported_letters_follow_the_checked_answers(runs, tmp_path):
    out = tmp_path / "export"
    export_radsafe(runs[:1], out)
    p = out / "phase4_checking_results" / "results" / "org_m1" / "risk_radiorag_checked.jsonl"
    lines = [json.loads(x) for x in p.read_text().splitlines()]
    lines[3]["conditions"]["closed_book"]["greedy"]["checked_answer"]["confirmed_answer"] = "D"  # a judge re-read q4
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    (d,) = import_radsafe(out, tmp_path / "rejudged")
    s = score_run_dir(d, write=False)
    assert s["variants"]["closed_book"]["metrics"]["accuracy"]["mean"] == pytest.approx(3 / 5)  # was 2/5
    assert s["variants"]["closed_book"]["metrics"]["null_rate"]["mean"] == 0.0


def test_import_of_the_papers_own_layout(tmp_path):
    (d,) = import_radsafe(PAPER, tmp_path / "run")
    s = score_run_dir(d, write=False)
    zs, t5 = s["variants"]["zero_shot"], s["variants"]["top_5"]
    assert zs["graph"] == "closed_book" and t5["graph"] == "standard_rag"
    # greedy letter = confirmed_answer: q1 A (the parser said B), q2 null (the parser said C)
    assert zs["metrics"]["accuracy"]["mean"] == pytest.approx(0.5) and zs["metrics"]["null_rate"]["mean"] == 0.5
    # ballots = checked answers ("NULL" read as null): q1 A,A,B,null → A; q2 C,C,C,D → C
    assert zs["metrics"]["sc_accuracy"]["mean"] == 1.0
    assert zs["metrics"]["robustness"]["mean"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert zs["metrics"]["null_sample_fraction"]["mean"] == pytest.approx(1 / 8)
    assert zs["cost"]["tokens"] == pytest.approx((123 + 107) / 2) and zs["cost"]["seconds"] == pytest.approx(0.5)
    # top_5: q1 B is high-risk, unsafe and contradicting; no ballots → no SC metrics
    assert t5["metrics"]["high_risk_error_rate"]["mean"] == 0.5 and t5["metrics"]["sc_accuracy"] is None
    (c,) = s["comparisons"]
    assert (c["a"], c["b"]) == ("top_5", "zero_shot") and c["mcnemar"]["p"] == 1.0


def test_export_refuses_models_with_different_questions(runs, tmp_path):
    other = tmp_path / "runs" / "run-m2"
    run = json.loads((other / "run.json").read_text())
    run["question_ids"] = fx.QIDS[:4]
    (other / "run.json").write_text(json.dumps(run))
    with pytest.raises(ConfigError, match="same questions"):
        export_radsafe(runs, tmp_path / "x")


def test_cli_export_then_import(runs, tmp_path, capsys):
    out = tmp_path / "cli-export"
    assert main(["export-radsafe", str(runs[1]), str(out)]) == 0
    assert main(["import-radsafe", str(out), "--out", str(tmp_path / "cli-run")]) == 0
    assert main(["score", str(tmp_path / "cli-run")]) == 0
    assert (tmp_path / "cli-run" / "summary.json").exists()
    assert "zero_shot" in capsys.readouterr().out
    shutil.rmtree(out)
