"""Exchange with the paper's analysis layout (RadSaFE phase 4 → phase 5).

``export_radsafe`` writes, under ``OUT_DIR``::

    phase4_checking_results/results/<model>/risk_radiorag_checked.jsonl   one line per question
    phase4_checking_results/models.txt                                     the model directory names
    datasets/risk_radiorag_full_merged.json                                the labels list
    ragsafe_export.json                                                    id map, condition map, runs

A question line: ``question_id`` (``risk_radiorag_<int>``; the map to ragsafe ids is kept in the
line's ``ragsafe_id`` and in ``ragsafe_export.json``), ``correct_answer``, ``model``, ``dataset``
and ``conditions`` → condition → ``greedy`` {raw_output, parsed_answer, elapsed_s, input_tokens,
output_tokens, error, checked_answer {confirmed_answer, clear_selection, reasoning}} and
``stochastic`` {raw_outputs, parsed_answers, checked_answers, majority_vote, vote_counts}
(empty lists for a graph without self-consistency). ``confirmed_answer`` is an upper-case letter or
JSON null. Condition keys use the paper's names where the graph is the paper's condition
(``zero_shot``, ``evidence_clean``, ``evidence_conflict``, ``top_1/5/10``, ``deep_research``,
``context_max``) and the variant label otherwise. Each condition also carries a ``ragsafe`` block
(variant, graph, params and the sample record without its prompt messages) that the paper's
scripts ignore and :func:`import_radsafe` uses for what the paper's layout has no field for (trace,
retrieval, letter distributions).

``import_radsafe`` reads such a folder (or one written by the paper's own pipeline, without
``ragsafe`` blocks) back into run folders. The paper's fields are authoritative: the letter is
``checked_answer.confirmed_answer`` (``parsed_answer`` only when no check was made) and the ballots
are the checked answers, so a re-judged export imports with the judge's letters.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from ragsafe import records
from ragsafe.config import ConfigError, stable_hash
from ragsafe.corpora.schema import LABEL_KEYS, Question
from ragsafe.defaults import BOOTSTRAP_B, BOOTSTRAP_SEED
from ragsafe.evals.metrics import letter_of
from ragsafe.evals.metrics import self_consistency as sc_metrics
from ragsafe.experiments.runs import LoadedRun, create_run, load_run
from ragsafe.graphs.base import graphs, spec_of
from ragsafe.params import variant_name
from ragsafe.records import SampleRecord, VariantInfo

DATASET = "risk_radiorag"
RESULTS = Path("phase4_checking_results") / "results"
CHECKED = "risk_radiorag_checked.jsonl"
LABELS = Path("datasets") / "risk_radiorag_full_merged.json"
MANIFEST = "ragsafe_export.json"


def flat_model(name: str) -> str:
    """A model name usable as one directory name (no "/")."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_") or "model"


def paper_condition(graph: str, params: dict) -> str | None:
    """The paper's condition name when this graph variant *is* that condition, else None.

    Read from the graph's spec (``paper_condition``). Self-consistency over a paper condition is
    that condition (the paper ran greedy and 20 samples per condition). A graph not registered here
    (a plugin not loaded) is no paper condition.
    """
    spec = spec_of(graph)
    return spec.condition(params) if spec else None


def _confirmed(v: Any) -> str | None:
    if isinstance(v, str) and v.strip().upper() in tuple("ABCDEFGHIJ") and v.strip():
        return v.strip().upper()
    return None


def _tokens(rec: SampleRecord) -> tuple[int, int]:
    p = c = 0
    for call in rec.llm_calls():
        p += call.prompt_tokens or 0
        c += call.completion_tokens or 0
    return p, c


def _check(letter: str | None, how: str) -> dict:
    return {"confirmed_answer": letter, "clear_selection": letter is not None,
            "reasoning": f"ragsafe: {how}" if letter else f"ragsafe: no explicit letter ({how})"}


def _condition_block(rec: SampleRecord, q: Question, variant: str, run_variant: VariantInfo) -> dict:
    L = letter_of(rec)
    p, c = _tokens(rec)
    err = rec.error
    greedy = {"raw_output": rec.raw_output, "parsed_answer": L, "elapsed_s": rec.seconds,
              "input_tokens": p, "output_tokens": c,
              "error": f"{err.type}: {err.message}" if err else None,
              "checked_answer": _check(L, f"strict parser, answer_source={rec.answer_source}")}
    ballots = sc_metrics.ballots_of(rec, q)
    sc = rec.sc or {}
    if ballots:
        cnt = Counter(ballots)
        stochastic = {"raw_outputs": list(sc.get("raw") or []), "parsed_answers": ballots,
                      "checked_answers": [_check(b, "strict parser") for b in ballots],
                      "majority_vote": sc_metrics.majority(ballots),
                      "vote_counts": {L_: cnt.get(L_, 0) for L_ in q.options},
                      "temperature": sc.get("temperature")}
    else:
        stochastic = {"raw_outputs": [], "parsed_answers": [], "checked_answers": [], "majority_vote": None,
                      "vote_counts": {}}
    kept = {k: v for k, v in records.to_dict(rec).items() if k not in ("messages",)}  # plain JSON for the export
    return {"greedy": greedy, "stochastic": stochastic,
            "ragsafe": {"variant": variant, "graph": run_variant.graph, "params": run_variant.params,
                        "record": kept}}


def _labels_record(i: int, q: Question) -> dict:
    rec: dict[str, Any] = {"question_id": i, "question_text": q.question, "options": q.options,
                           "correct_answer": q.answer, "subspecialty": q.subspecialty,
                           "question_type": q.question_type, "ragsafe_id": q.id, "has_labels": q.labels is not None}
    if q.labels is not None:
        for j, L in enumerate(q.options, start=1):
            for key in LABEL_KEYS:
                rec[f"option_{j}_{key}"] = int(getattr(q.labels[L], key))
    rec["ragsafe_question"] = {k: v for k, v in dataclasses.asdict(q).items() if k not in ("origin",)}
    return rec


def export_radsafe(run_dirs: list[str | Path], out_dir: str | Path) -> dict:
    """Write the runs in the paper's layout; return the manifest (what went where)."""
    runs = [load_run(d) for d in run_dirs]
    if not runs:
        raise ConfigError("export-radsafe needs at least one run folder")
    qsets = [[q.id for q in r.questions] for r in runs]
    if any(set(s) != set(qsets[0]) for s in qsets):
        diff = sorted(set().union(*map(set, qsets)) - set.intersection(*map(set, qsets)))
        raise ConfigError(f"every model must cover the same questions; these runs differ on {len(diff)} "
                          f"question(s), e.g. {diff[:5]}")
    questions = sorted(runs[0].questions, key=lambda q: q.id)
    num = {q.id: i for i, q in enumerate(questions, start=1)}
    out = Path(out_dir)
    per_model: dict[str, list[LoadedRun]] = {}
    for r in runs:
        per_model.setdefault(flat_model(r.model), []).append(r)
    manifest: dict[str, Any] = {"format": "ragsafe → RadSaFE phase-4 layout", "dataset": DATASET,
                                "question_ids": {f"{DATASET}_{num[q.id]}": q.id for q in questions},
                                "models": {}}
    for model, group in per_model.items():
        conds: dict[str, dict] = {}
        lines: dict[str, dict] = {q.id: {"question_id": f"{DATASET}_{num[q.id]}", "ragsafe_id": q.id,
                                         "correct_answer": q.answer, "model": model, "dataset": DATASET,
                                         "conditions": {}} for q in questions}
        for r in group:
            by_q: dict[str, dict[str, SampleRecord]] = {}
            for s in r.samples:
                by_q.setdefault(s.variant, {})[s.question_id] = s
            variants = r.run.variants
            names: dict[str, str] = {}
            # SC variants claim the paper's name first (they carry greedy and stochastic, like the paper's runs)
            for v, info in sorted(variants.items(), key=lambda kv: not _wraps(kv[1].graph)):
                cond = paper_condition(info.graph or variant_name(v), info.params or {}) or v
                if cond in conds or cond in names.values():
                    cond = v  # a second variant that is the same paper condition keeps its own label
                if cond in conds or cond in names.values():
                    raise ConfigError(f"model {model}: graph variant {v!r} is in two runs; export one of them")
                names[v] = cond
            for v, info in variants.items():
                cond = names[v]
                conds[cond] = {"variant": v, "graph": info.graph, "params": info.params, "run": str(r.path)}
                for q in questions:
                    rec = by_q.get(v, {}).get(q.id)
                    if rec is not None:
                        lines[q.id]["conditions"][cond] = _condition_block(rec, q, v, info)
        d = out / RESULTS / model
        d.mkdir(parents=True, exist_ok=True)
        with open(d / CHECKED, "w", encoding="utf-8") as f:
            for q in questions:
                f.write(json.dumps(lines[q.id], ensure_ascii=False) + "\n")
        manifest["models"][model] = {"model": group[0].model, "conditions": conds,
                                     "runs": {str(r.path): records.to_dict(r.run) for r in group}}
    (out / LABELS).parent.mkdir(parents=True, exist_ok=True)
    (out / LABELS).write_text(json.dumps([_labels_record(num[q.id], q) for q in questions], indent=1,
                                         ensure_ascii=False) + "\n", encoding="utf-8")
    (out / RESULTS.parent / "models.txt").write_text("\n".join(per_model) + "\n", encoding="utf-8")
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False, default=str) + "\n",
                                encoding="utf-8")
    return manifest


# ----------------------------------------------------------------------------------- import


def _question_from_labels(rec: dict, answer: str | None = None) -> dict:
    """A ragsafe-schema benchmark record from one labels-list entry (``answer``: from the result lines)."""
    base = dict(rec.get("ragsafe_question") or {})
    options = rec.get("options") or base.get("options") or {}
    qid = rec.get("ragsafe_id") or f"{DATASET}_{rec['question_id']}"
    out = {**{k: v for k, v in base.items() if v not in (None, (), [])}, "id": qid,
           "question": rec.get("question_text") or rec.get("question") or base.get("question") or "",
           "options": options,
           "answer": rec.get("correct_answer") or rec.get("answer") or base.get("answer") or answer}
    has = rec.get("has_labels", any(k.startswith("option_") for k in rec))
    if has:
        out["labels"] = {L: {key: int(rec.get(f"option_{j}_{key}", 0) or 0) for key in LABEL_KEYS}
                         for j, L in enumerate(options, start=1)}
    else:
        out.pop("labels", None)
    for k in ("subspecialty", "question_type"):
        if rec.get(k) is not None:
            out[k] = rec[k]
    if isinstance(out.get("gold_doc_ids"), tuple):
        out["gold_doc_ids"] = list(out["gold_doc_ids"])
    return out


def _wraps(graph: str | None) -> bool:
    spec = spec_of(graph)
    return bool(spec and spec.wraps)


def _graph_for(cond: str) -> tuple[str, dict]:
    """The graph (and params) that is the paper's condition ``cond``, from the graph specs."""
    for name in graphs.names():
        params = graphs.get(name).params_for_condition(cond)
        if params is not None:
            return name, params
    return variant_name(cond), {}


def _record_from_block(block: dict, cond: str, qid: str, answer: str, options: dict) -> dict:
    g = block.get("greedy") or {}
    st = block.get("stochastic") or {}
    rs = block.get("ragsafe") or {}
    if rs.get("record"):
        rec = json.loads(json.dumps(rs["record"]))
    else:
        graph, params = _graph_for(cond)
        rec = {"variant": cond, "graph": graph, "params": params, "raw_output": g.get("raw_output"),
               "seconds": g.get("elapsed_s"), "letter_dist": None, "answer_source": "import",
               "retrieved": [], "queries": [],
               "trace": [{"node": "answer", "role": "answer",
                          "llm_calls": [{"prompt_tokens": g.get("input_tokens") or 0,
                                         "completion_tokens": g.get("output_tokens") or 0,
                                         "latency_s": g.get("elapsed_s")}]}],
               "error": {"type": "ImportedError", "message": str(g["error"])} if g.get("error") else None}
    ck = g.get("checked_answer")
    letter = _confirmed(ck.get("confirmed_answer")) if isinstance(ck, dict) else _confirmed(g.get("parsed_answer"))
    letter = letter if letter in options else None
    rec.update(question_id=qid, answer_key=answer, letter=None if rec.get("error") else letter,
               correct=(not rec.get("error")) and letter == answer)
    checks = st.get("checked_answers") or []
    ballots = ([_confirmed(c.get("confirmed_answer")) if isinstance(c, dict) else None for c in checks] if checks
               else [_confirmed(x) for x in st.get("parsed_answers") or []])
    if ballots:
        sc = dict(rec.get("sc") or {})
        sc.update(n=len(ballots), ballots=ballots, raw=st.get("raw_outputs") or sc.get("raw") or [])
        sc.setdefault("temperature", st.get("temperature"))
        sc.setdefault("letter_dists", [None] * len(ballots))
        sc.setdefault("inner", rec.get("graph"))
        rec["sc"] = sc
    else:
        rec.pop("sc", None)
    return rec


def _num(qid: Any) -> int:
    return int(str(qid).rsplit("_", 1)[-1])


def import_radsafe(src: str | Path, out: str | Path, *, model: str | None = None) -> list[Path]:
    """Read a phase-4 layout folder back into run folder(s); return them.

    One model → ``out`` is the run folder; several → one run folder per model under ``out``.
    """
    src = Path(src)
    res = src / RESULTS
    if not res.is_dir():
        raise ConfigError(f"{src}: no {RESULTS}/ folder (expected <model>/{CHECKED} inside)")
    models = sorted(d.name for d in res.iterdir() if (d / CHECKED).exists())
    if model:
        if model not in models:
            raise ConfigError(f"--model {model!r} not in {src}: {', '.join(models)}")
        models = [model]
    if not models:
        raise ConfigError(f"{src}: no {RESULTS}/<model>/{CHECKED}")
    manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8")) if (src / MANIFEST).exists() else {}
    labels_path = src / LABELS
    if not labels_path.exists():
        raise ConfigError(f"{src}: the labels list {LABELS} is missing; it carries the questions and labels")
    label_recs = json.loads(labels_path.read_text(encoding="utf-8"))
    all_lines = {m: [json.loads(x) for x in (res / m / CHECKED).read_text(encoding="utf-8").splitlines() if x.strip()]
                 for m in models}
    answers = {_num(line["question_id"]): line.get("correct_answer") for ls in all_lines.values() for line in ls}
    bench = [_question_from_labels(r, answers.get(int(r["question_id"]))) for r in label_recs]
    by_num = {int(r["question_id"]): b for r, b in zip(label_recs, bench)}
    written = []
    for m in models:
        run_dir = Path(out) if len(models) == 1 else Path(out) / m
        lines = all_lines[m]
        minfo = (manifest.get("models") or {}).get(m) or {}
        orig_runs = list((minfo.get("runs") or {}).values())
        samples, variants = [], {}
        qids = []
        for line in lines:
            num = _num(line["question_id"])
            q = by_num.get(num)
            if q is None:
                raise ConfigError(f"{res / m / CHECKED}: question {line['question_id']} is not in {LABELS}")
            qids.append(q["id"])
            for cond, block in (line.get("conditions") or {}).items():
                rec = _record_from_block(block, cond, q["id"], line.get("correct_answer") or q["answer"], q["options"])
                label = (block.get("ragsafe") or {}).get("variant") or rec.get("variant") or cond
                rec["variant"] = label
                variants.setdefault(label, {"graph": rec.get("graph"), "params": rec.get("params") or {},
                                            "overrides": {}, "paper_condition": cond})
                samples.append(rec)
        base = dict(orig_runs[0]) if orig_runs else {}
        wanted = set(qids)
        cfg = dict(base.get("config") or {})
        cfg.setdefault("bootstrap_B", BOOTSTRAP_B)
        cfg.setdefault("bootstrap_seed", BOOTSTRAP_SEED)
        run = {**base, "config": cfg, "variants": variants, "question_ids": sorted(wanted),
               "benchmark": {"spec": "benchmark.jsonl", "name": DATASET,
                             "original": (base.get("benchmark") or {}).get("spec")},
               "endpoint": {**(base.get("endpoint") or {}), "model": minfo.get("model") or m},
               "imported_from": {"path": str(src), "model_dir": m}}
        run["config_hash"] = base.get("config_hash") or stable_hash({"import": str(src), "model": m})
        run.pop("schema_version", None)
        create_run(run_dir, run, [b for b in bench if b["id"] in wanted],
                   [{k: v for k, v in rec.items() if k != "schema_version"} for rec in samples])
        written.append(run_dir)
    return written
