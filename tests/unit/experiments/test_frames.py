"""DataFrames of run folders (ragsafe.load_run): rows and values checked against the fixture's letters."""

from __future__ import annotations

import json
import math

import pytest

pd = pytest.importorskip("pandas")

import ragsafe  # noqa: E402
from ragsafe.config import ConfigError  # noqa: E402
from ragsafe.experiments.execute import score_run  # noqa: E402
from tests.fixtures.evals import fixture_runs as fx  # noqa: E402


@pytest.fixture
def two_runs(tmp_path):
    dirs = [fx.write_run(tmp_path, m) for m in ("m1", "m2")]
    for d in dirs:
        score_run(d, B=200, seed=42)
    return tmp_path, dirs


def _labels_of(qid):
    return next(r for r in fx.BENCHMARK if r["id"] == qid)["labels"]


def test_samples_df_one_row_per_sample_with_per_question_metrics(two_runs):
    root, dirs = two_runs
    df = ragsafe.load_run(dirs[0]).samples_df()
    letters = fx.M1
    assert len(df) == sum(len(v) for v in letters.values())
    for variant, ls in letters.items():
        for qid, letter in zip(fx.QIDS, ls):
            row = df[(df.variant == variant) & (df.question_id == qid)].iloc[0]
            assert (row.letter if isinstance(row.letter, str) else None) == letter
            assert row.correct == (letter == fx.ANSWERS[qid])
            assert row.accuracy == float(letter == fx.ANSWERS[qid])
            assert row.null_rate == float(letter is None)
            lab = _labels_of(qid)
            wrong_hr = letter is not None and letter != fx.ANSWERS[qid] and bool(lab[letter]["high_risk"])
            assert row.high_risk_error_rate == float(wrong_hr)
    sc = df[df.variant == "self_consistency"].set_index("question_id")
    assert sc.loc["q1", "sc_letter"] == "A" and sc.loc["q2", "sc_letter"] == "C"
    assert pd.isna(sc.loc["q5", "sc_letter"])  # every ballot null: the majority is null
    assert df[df.variant == "closed_book"].sc_letter.isna().all()
    rag = df[df.variant == "standard_rag[k=2]"]
    assert (rag.retrieval_calls >= 1).all() and (rag.llm_calls >= 1).all()


def test_summary_df_matches_summary_json_and_carries_metadata(two_runs):
    root, dirs = two_runs
    runs = ragsafe.load_run(root)  # a folder of run folders
    df = runs.summary_df()
    assert set(df.run) == {d.name for d in dirs}
    acc = df[(df.metric == "accuracy") & (df.run == dirs[0].name) & (df.variant == "clean_evidence")].iloc[0]
    expected = sum(L == fx.ANSWERS[q] for q, L in zip(fx.QIDS, fx.M1["clean_evidence"])) / len(fx.QIDS)
    assert math.isclose(acc["mean"], expected)
    assert acc["n"] == len(fx.QIDS) and acc["lo"] <= acc["mean"] <= acc["hi"]
    assert acc["higher_is_better"] and acc["unit"] == "%"
    hr = df[df.metric == "high_risk_error_rate"].iloc[0]
    assert not hr["higher_is_better"] and hr["group"] == "greedy"
    # the safety section's metrics are rows like any other, from the same summary.json
    summary = json.loads((dirs[0] / "summary.json").read_text())
    nb = df[(df.metric == "net_benefit") & (df.run == dirs[0].name) & (df.variant == "clean_evidence")].iloc[0]
    assert math.isclose(nb["mean"], summary["safety"]["net_benefit"]["clean_evidence"]["estimate"]["mean"])
    assert nb["group"] == "benefit" and nb["higher_is_better"]
    sel = df[(df.metric == "aurc_high_risk") & (df.run == dirs[0].name)]
    want = {(v, src) for v, srcs in summary["safety"]["selective"].items() for src in srcs}
    assert set(zip(sel.variant, sel.source)) == want and len(want) > 0


def test_comparisons_df_paired_against_floor(two_runs):
    root, dirs = two_runs
    df = ragsafe.load_run([dirs[0]]).comparisons_df()
    row = df[(df.a == "clean_evidence") & (df.b == "closed_book") & (df.metric == "accuracy")].iloc[0]
    acc = {v: sum(L == fx.ANSWERS[q] for q, L in zip(fx.QIDS, fx.M1[v])) / 5 for v in ("clean_evidence", "closed_book")}
    assert math.isclose(row["diff"], acc["clean_evidence"] - acc["closed_book"])
    assert 0.0 <= row["p"] <= 1.0
    assert df[df.metric != "accuracy"]["p"].isna().all()


def test_question_df_and_parquet_round_trip(two_runs, tmp_path):
    pytest.importorskip("pyarrow")
    root, dirs = two_runs
    runs = ragsafe.load_run(dirs[0])
    q = runs.question_df()
    assert list(q.question_id) == fx.QIDS
    q1 = q[q.question_id == "q1"].iloc[0]
    assert q1.high_risk_options == "B" and q1.n_options == 4
    paths = runs.to_parquet(tmp_path / "pq")
    assert sorted(p.name for p in paths) == ["comparisons.parquet", "questions.parquet", "samples.parquet",
                                             "summary.parquet"]
    back = pd.read_parquet(tmp_path / "pq" / "samples.parquet")
    assert len(back) == len(runs.samples_df())


def test_no_run_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no run folder"):
        ragsafe.load_run(tmp_path)


def test_report_parquet_writes_the_same_tables(two_runs, tmp_path):
    pytest.importorskip("pyarrow")
    from ragsafe.cli.main import main

    root, dirs = two_runs
    out = tmp_path / "pq"
    assert main(["report", str(dirs[0]), str(dirs[1]), "--parquet", str(out)]) == 0
    summary = pd.read_parquet(out / "summary.parquet")
    assert set(summary.run) == {d.name for d in dirs}
    assert summary.equals(ragsafe.load_run(dirs).summary_df())


def test_notebook_example_plots_and_lists_changed_answers(two_runs, tmp_path, capsys):
    import runpy
    import sys

    from tests.paths import ROOT

    root, dirs = two_runs
    png = tmp_path / "fig.png"
    argv = sys.argv
    sys.argv = ["notebook.py", str(dirs[0]), str(dirs[1]), "--png", str(png), "--graph", "closed_book"]
    try:
        with pytest.raises(SystemExit) as e:
            runpy.run_path(str(ROOT / "examples" / "notebook.py"), run_name="__main__")
    finally:
        sys.argv = argv
    assert e.value.code == 0 and png.stat().st_size > 1000
    changed = sum(a != b for a, b in zip(fx.M1["closed_book"], fx.M2["closed_book"]))
    assert f"{changed} of {len(fx.QIDS)} questions changed their closed_book answer" in capsys.readouterr().out
