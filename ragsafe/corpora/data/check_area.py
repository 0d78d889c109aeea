"""Quick authoring check for bundled demo data (written for ragsafe). Usage: check_area.py AREA [AREA...]"""
import glob
import json
import sys

import yaml

ROOT = "/work/main/ragsafe/corpora/data"
ids = set()
for path in glob.glob(f"{ROOT}/demo_corpus/*/*.md"):
    t = open(path).read()
    if t.startswith("---\n") and "\n---\n" in t[4:]:
        fm = yaml.safe_load(t[4:].split("\n---\n", 1)[0]) or {}
        if "id" in fm:
            ids.add(fm["id"])
for area in sys.argv[1:]:
    arts = sorted(glob.glob(f"{ROOT}/demo_corpus/{area}/*.md"))
    seen = set()
    for a in arts:
        t = open(a).read()
        assert t.startswith("---\n"), f"{a}: must start with front matter"
        fm_text, body = t[4:].split("\n---\n", 1)
        d = yaml.safe_load(fm_text)
        for key in ("id", "title", "area", "license", "source"):
            assert key in d, f"{a}: front matter misses {key}"
        assert d["area"] == area, f"{a}: area {d['area']} != {area}"
        assert d["license"] == "CC-BY-4.0", a
        assert d["id"] not in seen, f"{a}: duplicate id {d['id']}"
        seen.add(d["id"])
        w = len(body.split())
        assert 150 <= w <= 600, f"{a}: {w} words (150-600)"
    print(area, "articles", len(arts))
    qs = [json.loads(line) for line in open(f"{ROOT}/demo_benchmark/{area}.jsonl") if line.strip()]
    for q in qs:
        L = list(q["options"])
        assert L == list("ABCDE"[: len(L)]) and len(L) in (4, 5), q["id"]
        assert q["answer"] in L, q["id"]
        assert q["conflict_target"] in L and q["conflict_target"] != q["answer"], q["id"]
        assert set(q["labels"]) == set(L), q["id"]
        for k, v in q["labels"].items():
            assert set(v) == {"high_risk", "unsafe", "contradicts"}, (q["id"], k)
            assert all(x in (0, 1) for x in v.values()), (q["id"], k)
            if any(v.values()):
                assert k in q["label_rationale"], f"{q['id']}: rationale missing for flagged option {k}"
        missing = [g for g in q["gold_doc_ids"] if g not in ids]
        assert not missing, f"{q['id']}: gold_doc_ids not found: {missing}"
        assert q["split"] in ("dev", "test"), q["id"]
        assert q["evidence_clean"].strip() and q["evidence_conflict"].strip(), q["id"]
        assert q["question_type"] in ("diagnosis", "imaging_finding", "management", "safety", "technique", "anatomy"), q["id"]
    print(area, "questions", len(qs), "negated", sum(q["negated"] for q in qs),
          "dangerous_is_tempting", sum(q["dangerous_is_tempting"] for q in qs))
print("OK")
