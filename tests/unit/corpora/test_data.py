"""QA of the bundled demo data (written for ragsafe): counts, schema, label conventions, grounding.

``python tests/test_data.py`` prints the evidence sentences least supported by their gold articles.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import yaml

from ragsafe.corpora.benchmark import load_benchmark
from ragsafe.corpora.documents import DATA_DIR
from ragsafe.corpora.loaders import load_any
AREAS = {"neuro", "head_neck", "chest", "cardiac", "abdominal", "gu", "msk", "breast", "paediatric",
         "interventional", "nuclear_medicine", "safety"}
QUESTION_TYPES = {"diagnosis", "imaging_finding", "management", "safety", "technique", "anatomy"}
FLAGS = ("high_risk", "unsafe", "contradicts")


def articles() -> list[dict]:
    out = []
    for path in sorted((DATA_DIR / "demo_corpus").glob("*/*.md")):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("---\n"), f"{path}: must start with front matter"
        head, body = text[4:].split("\n---\n", 1)
        out.append({"path": path, "meta": yaml.safe_load(head), "body": body})
    return out


def questions() -> list[dict]:
    out = []
    for path in sorted((DATA_DIR / "demo_benchmark").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line) | {"_file": path.stem})
    return out


ARTICLES = articles()
QUESTIONS = questions()
DOC_TEXT = {a["meta"]["id"]: f"{a['meta']['title']}\n{a['body']}" for a in ARTICLES}


# --------------------------------------------------------------------------------------------
# corpus


def test_corpus_counts():
    areas = Counter(a["path"].parent.name for a in ARTICLES)
    assert len(ARTICLES) >= 150
    assert len(areas) >= 10 and set(areas) <= AREAS


@pytest.mark.parametrize("art", ARTICLES, ids=lambda a: a["path"].stem)
def test_article(art):
    meta, path = art["meta"], art["path"]
    assert {"id", "title", "area", "license", "source"} <= set(meta), path
    assert meta["area"] == path.parent.name
    assert meta["license"] == "CC-BY-4.0"
    assert "written for ragsafe" in meta["source"]
    assert re.fullmatch(r"[a-z0-9_-]+", meta["id"]), meta["id"]
    assert 150 <= len(art["body"].split()) <= 600, f"{path}: {len(art['body'].split())} words"


def test_article_ids_unique():
    dup = [i for i, n in Counter(a["meta"]["id"] for a in ARTICLES).items() if n > 1]
    assert dup == []


# --------------------------------------------------------------------------------------------
# benchmark


def test_benchmark_counts():
    assert len(QUESTIONS) >= 60
    assert sum(q["negated"] for q in QUESTIONS) >= 6
    assert sum(q["dangerous_is_tempting"] for q in QUESTIONS) >= 15
    assert {q["split"] for q in QUESTIONS} == {"dev", "test"}
    for area in {q["_file"] for q in QUESTIONS}:
        assert {q["split"] for q in QUESTIONS if q["_file"] == area} == {"dev", "test"}, area


@pytest.mark.parametrize("q", QUESTIONS, ids=lambda q: q["id"])
def test_question(q):
    letters = list(q["options"])
    assert letters == list("ABCDE"[: len(letters)]) and len(letters) in (4, 5)
    assert q["answer"] in letters
    assert q["subspecialty"] == q["_file"] and q["question_type"] in QUESTION_TYPES
    assert q["conflict_target"] in letters and q["conflict_target"] != q["answer"]
    assert set(q["labels"]) == set(letters)
    for letter, lab in q["labels"].items():
        assert set(lab) == set(FLAGS) and all(v in (0, 1) for v in lab.values())
        if any(lab.values()):
            assert q["label_rationale"].get(letter, "").strip(), f"rationale missing for flagged option {letter}"
    assert q["gold_doc_ids"] and all(g in DOC_TEXT for g in q["gold_doc_ids"])
    assert q["evidence_clean"].strip() and q["evidence_conflict"].strip()
    assert "written for ragsafe" in q["source"]
    if q["dangerous_is_tempting"]:
        target = q["labels"][q["conflict_target"]]
        assert target["high_risk"] or target["unsafe"], "the tempting option must be the dangerous one"


NEGATION = re.compile(r"\b(NOT|EXCEPT|least likely)\b")


@pytest.mark.parametrize("q", QUESTIONS, ids=lambda q: q["id"])
def test_negated_stems_follow_the_label_convention(q):
    """Labels describe what the option says: the correct option of a 'which is NOT true' stem is the
    false statement (it contradicts the evidence); true-statement distractors carry no flag."""
    assert q["negated"] == bool(NEGATION.search(q["question"]))
    if not q["negated"]:
        assert not any(q["labels"][q["answer"]].values())
        return
    assert q["labels"][q["answer"]]["contradicts"] == 1
    assert [L for L, lab in q["labels"].items() if L != q["answer"] and any(lab.values())] == []


def test_validate_passes_on_all_bundled_data():
    bench = load_benchmark("demo")
    assert bench.problems == [] and bench.n_records == len(bench.questions) == len(QUESTIONS)
    assert bench.has_labels()
    for path in sorted((DATA_DIR / "demo_benchmark").glob("*.jsonl")):
        assert load_any(path).problems == [], path


def test_validate_cli_on_demo(capsys):
    from ragsafe.cli.main import main

    assert main(["validate", "--benchmark", "demo"]) == 0
    out = capsys.readouterr().out
    assert f"{len(QUESTIONS)} loaded, 0 refused, 0 error(s), 0 warning(s)" in out


# --------------------------------------------------------------------------------------------
# grounding: the key facts of each clean evidence appear in its gold articles

STOP = set("""a an the of and or in on to for with by is are be as at that this it its from than then these those
was were has have had not no can may which when who whose into over under after before more most less least also
only any all each both other such their there they them but if so usually often typically include includes including
should must does do while whereas instead because since without within between about very one two""".split())
NUM = re.compile(r"\d+(?:\.\d+)?")


def _stem(t: str) -> str:
    for suf in ("ations", "ation", "ions", "ion", "ness", "ing", "ies", "es", "ed", "ly", "s", "e"):
        if t.endswith(suf) and len(t) - len(suf) >= 4:
            return t[: -len(suf)]
    return t


def _content(text: str) -> list[str]:
    return [_stem(t) for t in re.findall(r"[a-z][a-z0-9]*", text.lower()) if t not in STOP and len(t) > 2]


def grounding(evidence: str, gold_text: str) -> list[tuple[float, list[str], list[str], str]]:
    """Per evidence sentence: (share of content words found in the gold text, words not found,
    numbers not found, sentence). Numbers are the facts most likely to drift, so each must appear."""
    vocab, nums = set(_content(gold_text)), set(NUM.findall(gold_text))
    out = []
    for sent in re.split(r"(?<=[.;])\s+", evidence):
        words = _content(sent)
        if words:
            out.append((sum(w in vocab for w in words) / len(words), sorted({w for w in words if w not in vocab}),
                        sorted(set(NUM.findall(sent)) - nums), sent))
    return out


MIN_SENTENCE_COVERAGE = 0.75


def test_grounding_check_catches_an_unsupported_fact():
    gold = "A simple cyst is anechoic with posterior acoustic enhancement and needs no follow-up. Size 2 cm."
    assert all(c == 1.0 and not n for c, _, n, _ in grounding("A simple cyst is anechoic; size 2 cm.", gold))
    (cov, missing, nums, _), = grounding("Simple cysts need biopsy within 14 days by interventional surgeons.", gold)
    assert cov < MIN_SENTENCE_COVERAGE and nums == ["14"] and "biopsy" in missing


@pytest.mark.parametrize("q", QUESTIONS, ids=lambda q: q["id"])
def test_clean_evidence_is_grounded_in_gold_articles(q):
    gold = "\n".join(DOC_TEXT[g] for g in q["gold_doc_ids"])
    for cov, missing, nums, sent in grounding(q["evidence_clean"], gold):
        assert not nums, f"numbers {nums} not in the gold articles: {sent}"
        assert cov >= MIN_SENTENCE_COVERAGE, f"weakly supported ({cov:.2f}; missing {missing}): {sent}"


# --------------------------------------------------------------------------------------------
# datasheet and retrieval ceiling


def test_datasheet_counts_match_the_data():
    readme = (DATA_DIR.parent / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `?([a-z_]+)`? \| (\d+ \| \d+) \|", readme, flags=re.M))
    arts = Counter(a["path"].parent.name for a in ARTICLES)
    qs = Counter(q["_file"] for q in QUESTIONS)
    assert {area: tuple(map(int, v.split(" | "))) for area, v in rows.items()} == \
        {area: (arts[area], qs[area]) for area in arts}


def test_retrieval_ceiling_on_demo(demo_store, demo_benchmark):
    from ragsafe.evals.metrics.retrieval import evaluate
    rep = evaluate(demo_benchmark.questions, demo_store.query, ks=(10,))
    assert rep.skipped == [] and rep.missing_gold == {}
    assert rep.overall["recall@10"] >= 0.8


if __name__ == "__main__":
    rows = []
    for q in QUESTIONS:
        gold = "\n".join(DOC_TEXT[g] for g in q["gold_doc_ids"])
        rows += [(cov, q["id"], missing, nums, sent)
                 for cov, missing, nums, sent in grounding(q["evidence_clean"], gold)]
    for cov, qid, missing, nums, sent in sorted(rows)[:20]:
        print(f"{cov:.2f} {qid} missing={missing} numbers={nums}\n     {sent}")
