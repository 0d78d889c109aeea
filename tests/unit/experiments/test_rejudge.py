"""The LLM judge re-reads stored raw outputs: letters beside the strict ones, resumable, scored, compared."""

from __future__ import annotations

import json
import re

import pytest

from ragsafe.cli.main import main
from ragsafe.config import AnswerPolicy, ConfigError, EndpointConfig
from ragsafe.evals.agreement import cohen_kappa, counts
from ragsafe.evals.reports.text import text_table
from ragsafe.evals.score import score_run_dir
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.execute import run
from ragsafe.experiments.rejudge import judge_path, read_judge, rejudge
from ragsafe.experiments.store import RunStore
from ragsafe.llm.client import LLM
from tests.fault_server import FaultServer

RAWS = ["B", "The answer is (C).", "Subdural haematoma", "I'd go with D", "A or B", "(A) Pneumothorax"]


def answerer(body: dict) -> str:
    """The model under test: a mix of explicit letters, a diagnosis name, a hedge, an implicit choice."""
    text = body["messages"][-1]["content"]
    return RAWS[(sum(map(ord, text)) + (body.get("seed") or 0)) % len(RAWS)]


def rule_judge(body: dict) -> str:
    """A judge model in miniature: the last standalone valid capital letter of the reply, unless two differ."""
    user = body["messages"][-1]["content"]
    letters = re.search(r"Valid letters: (.*)", user).group(1).split(", ")
    reply = user.split("<<<\n", 1)[1].rsplit("\n>>>", 1)[0]
    found = [x for x in re.findall(r"(?<![A-Za-z])([A-Z])(?![a-z])", reply) if x in letters]
    return json.dumps({"letter": found[-1] if len(set(found)) == 1 else "none"})


def make_run(tmp_path, srv) -> str:
    cfg = RunConfig(graphs=["closed_book", "self_consistency[n=3]"], limit=8, out=str(tmp_path / "runs"), cache="off",
                    endpoint=EndpointConfig(base_url=srv.base_url, model="fake"), answer=AnswerPolicy())
    return str(run(cfg, progress=lambda m: None))


def test_rejudge_stores_letters_beside_the_strict_ones_resumes_and_scores(tmp_path):
    with FaultServer(reply=answerer) as model_srv:
        d = make_run(tmp_path, model_srv)
    samples_before = (RunStore(d).samples_path).read_bytes()
    with FaultServer(flavor="llamacpp", reply=rule_judge) as judge_srv:
        ident = {"model": "judge-fake", "endpoint": "remote", "base_url": judge_srv.base_url}
        stats = rejudge(d, LLM(judge_srv.base_url, "judge-fake"), judge_id=ident, progress=lambda m: None)
        assert stats["judged"] == 16 and stats["failed"] == 0
        judged = read_judge(d)
        assert len(judged) == 16
        sc = next(j for (v, _), j in judged.items() if v.startswith("self_consistency"))
        assert len(sc["sc_ballots"]) == 3 and sc["structured_form"] == ["json_object_schema"]
        # the rules: explicit letters kept, a diagnosis name is null, two letters are null
        for j in judged.values():
            want = {"B": "B", "The answer is (C).": "C", "Subdural haematoma": None, "I'd go with D": "D",
                    "A or B": None, "(A) Pneumothorax": "A"}[j["raw_output"]]
            assert j["letter"] == want, j["raw_output"]
        assert RunStore(d).samples_path.read_bytes() == samples_before  # originals never rewritten

        # an interrupted rejudge: half the lines kept plus a torn one; the same call finishes the rest only
        lines = judge_path(d).read_text().splitlines(keepends=True)
        judge_path(d).write_text("".join(lines[:7]) + lines[7][:20])
        judge_srv.reset_counts()
        stats = rejudge(d, LLM(judge_srv.base_url, "judge-fake"), judge_id=ident, progress=lambda m: None)
        assert stats["judged"] == 9
        assert read_judge(d).keys() == judged.keys()
        with pytest.raises(ConfigError, match="holds the letters of judge"):
            rejudge(d, LLM(judge_srv.base_url, "other"), judge_id={**ident, "model": "other"}, progress=lambda m: None)

    strict = score_run_dir(d)
    judge = score_run_dir(d, letters="judge")
    assert (tmp_path / "runs").exists() and (RunStore(d).path / "summary.judge.json").exists()
    recs = {r["question_id"]: r for r in RunStore(d).samples() if r["variant"] == "closed_book"}
    want_acc = sum(judged[("closed_book", q)]["letter"] == r["answer_key"] for q, r in recs.items()) / len(recs)
    assert judge["variants"]["closed_book"]["metrics"]["accuracy"]["mean"] == pytest.approx(want_acc)
    agree = strict["judge_agreement"]["variants"]["closed_book"]["greedy"]
    s = [recs[q]["letter"] for q in sorted(recs)]
    g = [judged[("closed_book", q)]["letter"] for q in sorted(recs)]
    assert agree["kappa"] == pytest.approx(cohen_kappa(s, g)) and agree["n"] == 8
    assert {k: agree[k] for k in counts(s, g)} == counts(s, g)
    dis = strict["judge_agreement"]["variants"]["closed_book"]["disagreements"]
    assert len(dis) == sum(a != b for a, b in zip(s, g))
    assert all(d_["strict"] != d_["judge"] and d_["raw_output"] for d_ in dis)
    sc_agree = strict["judge_agreement"]["variants"]["self_consistency[n=3]"]
    assert sc_agree["sc_samples"]["n"] == 8 * 3
    assert sc_agree["sc_samples"]["different"] + sc_agree["sc_samples"]["judge_only"] > 0  # "I'd go with D" etc.
    text = text_table(strict)
    assert "Strict parser vs judge" in text and "kappa" in text


def test_score_with_judge_letters_needs_a_judge_file(tmp_path):
    with FaultServer(reply=answerer) as srv:
        d = make_run(tmp_path, srv)
    with pytest.raises(ConfigError, match="rejudge"):
        score_run_dir(d, letters="judge")


def test_kappa_and_counts():
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["A", None], ["A", None]) == 1.0
    assert cohen_kappa(["A", "A"], ["A", "A"]) == 1.0  # one category: total agreement
    c = counts(["A", None, "B", "C", None], ["A", "B", None, "D", None])
    assert c == {"n": 5, "same_letter": 1, "both_null": 1, "strict_only": 1, "judge_only": 1, "different": 1}


def test_cli_rejudge_score_and_report_with_judge_letters(tmp_path, capsys):
    from ragsafe.cli.main import main

    with FaultServer(reply=answerer) as model_srv:
        d = make_run(tmp_path, model_srv)
    with FaultServer(flavor="vllm", reply=lambda b: rule_judge(b) if b.get("_enforced_schema") else "?") as srv:
        assert main(["rejudge", d, "--judge-base-url", srv.base_url, "--judge-model", "fake"]) == 0
        assert srv.bodies[0]["response_format"]["type"] == "json_schema"
    out = capsys.readouterr().out
    assert "Strict parser vs judge" in out and "--letters judge" in out
    assert main(["score", d, "--letters", "judge"]) == 0
    md = tmp_path / "r.md"
    assert main(["report", d, "--letters", "judge", "--md", str(md)]) == 0
    text = md.read_text()
    summary = score_run_dir(d, letters="judge", write=False)
    n_dis = sum(len(c["disagreements"]) for c in summary["judge_agreement"]["variants"].values())
    assert "Strict parser vs judge" in text
    assert ("Where strict parser and judge disagree" in text) == (n_dis > 0)
    # the sample browser shows both letters, whichever letters the report scores
    judged = read_judge(d)
    strict = {(r["variant"], r["question_id"]): r["letter"] for r in RunStore(d).samples()}
    for letters in ("strict", "judge"):
        html = tmp_path / f"r-{letters}.html"
        assert main(["report", d, "--letters", letters, "--html", str(html)]) == 0
        blob = re.search(r'id="samples-data">(.*?)</script>', html.read_text(), re.S).group(1)
        rows = json.loads(blob.replace("<\\/", "</"))
        assert len(rows) == len(judged) == 16
        for r in rows:
            key = (r["arm"], r["qid"])
            assert r["letter"] == strict[key] and r["judge"] == judged[key]["letter"]
            scored = judged[key]["letter"] if letters == "judge" else strict[key]
            assert r["wrong"] == (scored != judged[key].get("answer_key", r["answer"]))
    assert main(["score", str(tmp_path / "nope")]) == 2


def test_a_sweep_with_parser_judge_rejudges_each_run_and_scores_the_judges_letters(tmp_path, capsys):
    import yaml

    with FaultServer(reply=answerer) as model_srv, FaultServer(flavor="llamacpp", reply=rule_judge) as judge_srv:
        sweep = {"name": "j", "benchmark": "demo", "limit": 6, "out": str(tmp_path / "runs"), "seeds": [0, 1],
                 "endpoints": [{"model": "fake", "base_url": model_srv.base_url, "concurrency": 2}],
                 "graphs": ["closed_book"], "parser": "judge",
                 "judge": {"model": "judge-fake", "base_url": judge_srv.base_url}}
        f = tmp_path / "s.yaml"
        f.write_text(yaml.safe_dump(sweep))
        assert main(["sweep", str(f), "--no-cache"]) == 0
        out = capsys.readouterr().out
        dirs = sorted((tmp_path / "runs").glob("run-*"))
        assert len(dirs) == 2 and out.count("(the judge's letters)") == 2
        for d in dirs:
            judged = read_judge(d)
            recs = {r["question_id"]: r for r in RunStore(d).samples()}
            assert {q for _, q in judged} == set(recs)
            summary = json.loads((d / "summary.judge.json").read_text())
            want = sum(judged[("closed_book", q)]["letter"] == r["answer_key"] for q, r in recs.items()) / 6
            assert summary["variants"]["closed_book"]["metrics"]["accuracy"]["mean"] == pytest.approx(want)
        # run again: the runs and their judge lines are complete, nothing is asked of either server
        assert len(judge_srv.bodies) == 12  # 2 runs x 6 questions, one greedy raw output each
        model_srv.reset_counts()
        judge_srv.reset_counts()
        assert main(["sweep", str(f), "--no-cache"]) == 0
        assert model_srv.bodies == [] and judge_srv.bodies == []


def test_a_judge_without_a_judging_parser_is_refused(tmp_path):
    import yaml

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"endpoints": [{"model": "m", "base_url": "http://127.0.0.1:1/v1"}],
                                 "graphs": ["closed_book"], "judge": {"model": "j"}}))
    assert main(["sweep", str(f), "--dry-run"]) == 2
