"""Run folders as pandas DataFrames, for notebooks.

:func:`load_runs` (exported as ``ragsafe.load_run``) takes a run folder, a folder of run folders, or
a list of either, and returns a :class:`Runs` with four tables. Every figure comes from the stored
records (``samples.jsonl``, ``summary.json``): nothing is re-run and no model is touched.

``samples_df()`` — one row per (run, variant, question):
    ``run`` (folder name), ``model``, ``variant``, ``graph``, ``question_id``, ``subspecialty``,
    ``question_type``, ``answer_key``, ``letter`` (None = null answer), ``correct``, ``error``
    (the error kind, or None), ``seconds``, ``llm_calls``, ``prompt_tokens``, ``completion_tokens``,
    ``retrieval_calls``, ``tokens``, ``sc_letter`` (self-consistency majority, when the variant has ballots), and one
    column per registered per-question metric (``accuracy``, ``high_risk_error_rate``, ...) holding
    that question's value (0/1 for rates; NaN where the metric is n/a, e.g. labels missing).

``summary_df()`` — one row per (run, variant, metric), from ``summary.json``:
    ``run``, ``model``, ``variant``, ``graph``, ``metric``, ``label``, ``unit``, ``higher_is_better``,
    ``group``, ``mean``, ``sd``, ``lo``, ``hi`` (bootstrap percentile interval), ``n``; the safety
    section's metrics (AURC, coverage at the high-risk budget, net benefit, poison rates) too, with
    ``source`` naming a selective-answering row's confidence source.

``comparisons_df()`` — one row per (run, variant a, variant b, metric) of the paired comparisons:
    ``run``, ``a``, ``b``, ``metric``, ``diff`` (a minus b, paired over the same questions), ``sd``, ``lo``,
    ``hi``, ``n``; on the accuracy row the exact McNemar ``p`` and its Benjamini-Hochberg ``q_bh``.

``question_df()`` — one row per (run, question): ``run``, ``question_id``, ``subspecialty``,
    ``question_type``, ``answer``, ``n_options``, ``question``, and ``high_risk_options``,
    ``unsafe_options``, ``contradicts_options`` (letters, empty when the benchmark has no labels).

pandas (and pyarrow for :meth:`Runs.to_parquet`) are an optional extra: ``pip install 'ragsafe[frames]'``.

Example:
    >>> runs = load_runs("runs/")                         # doctest: +SKIP
    >>> runs.summary_df().query("metric == 'accuracy'")   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

from ragsafe.config import ConfigError
from ragsafe.evals.metrics import metrics
from ragsafe.evals.metrics.registry import select
from ragsafe.evals.metrics.self_consistency import ballots_of, majority
from ragsafe.evals.score import cost_of
from ragsafe.experiments.runs import LoadedRun, load_run, run_arms
from ragsafe.experiments.shards import find_run_dirs
from ragsafe.experiments.store import RunStore
from ragsafe.records import SafetySection, Summary, as_summary


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ConfigError("DataFrames need pandas, an optional extra: pip install 'ragsafe[frames]'") from None
    return pandas


@dataclasses.dataclass
class Runs:
    """Loaded run folders; each method returns a fresh pandas DataFrame (columns: module docstring)."""

    runs: list[LoadedRun]
    summaries: list[Summary | None]

    def __post_init__(self) -> None:
        self.summaries = [None if s is None else as_summary(s) for s in self.summaries]

    def samples_df(self):
        pd = _pandas()
        per_q = [m for m in select(over="sample") if m.group in ("greedy", "sc")]
        rows = []
        for lr in self.runs:
            qs = {q.id: q for q in lr.questions}
            for arm in run_arms(lr):
                for qid, rec in arm.records.items():
                    q = qs.get(qid)
                    if q is None:
                        continue
                    row = {"run": lr.path.name, "model": lr.model, "variant": arm.variant, "graph": arm.graph,
                           "question_id": qid, "subspecialty": q.subspecialty, "question_type": q.question_type,
                           "answer_key": q.answer, "letter": rec.letter, "correct": bool(rec.letter == q.answer),
                           "error": (rec.error.kind or "error") if rec.error else None,
                           **cost_of(rec)}
                    ballots = ballots_of(rec, q)
                    row["sc_letter"] = majority(ballots) if ballots else None
                    for m in per_q:
                        v = m(rec, q)
                        row[m.name] = float("nan") if v is None else float(v)
                    rows.append(row)
        return pd.DataFrame(rows)

    def summary_df(self):
        pd = _pandas()
        rows = []
        for lr, s in zip(self.runs, self.summaries):
            for variant, v in (s.variants if s else {}).items():
                for name, est in (v.metrics or {}).items():
                    if not isinstance(est, dict) or "mean" not in est:
                        continue
                    m = metrics.get(name) if name in metrics else None
                    rows.append({"run": lr.path.name, "model": v.model or lr.model, "variant": variant,
                                 "graph": v.graph, "metric": name,
                                 "label": m.label if m else name, "unit": m.unit if m else None,
                                 "higher_is_better": m.higher_is_better if m else None,
                                 "group": m.group if m else None,
                                 **{k: est.get(k) for k in ("mean", "sd", "lo", "hi", "n")}})
            rows += _safety_rows(lr, s)
        return pd.DataFrame(rows)

    def comparisons_df(self):
        pd = _pandas()
        rows = []
        for lr, s in zip(self.runs, self.summaries):
            for c in (s.comparisons if s else None) or []:
                test = c.mcnemar or {}
                for name, est in (c.diff or {}).items():
                    t = test if name == "accuracy" else {}
                    rows.append({"run": lr.path.name, "a": c.a, "b": c.b, "metric": name,
                                 "diff": est.get("mean"), "sd": est.get("sd"), "lo": est.get("lo"),
                                 "hi": est.get("hi"), "n": est.get("n"), "p": t.get("p"),
                                 "q_bh": t.get("q_bh")})
        return pd.DataFrame(rows)

    def question_df(self):
        pd = _pandas()
        rows = []
        for lr in self.runs:
            for q in lr.questions:
                labels = q.labels or {}

                def flagged(key: str) -> str:
                    return "".join(sorted(k for k, lab in labels.items() if getattr(lab, key, 0)))

                rows.append({"run": lr.path.name, "question_id": q.id, "subspecialty": q.subspecialty,
                             "question_type": q.question_type, "answer": q.answer, "n_options": len(q.options),
                             "question": q.question, "high_risk_options": flagged("high_risk"),
                             "unsafe_options": flagged("unsafe"), "contradicts_options": flagged("contradicts")})
        return pd.DataFrame(rows)

    def to_parquet(self, folder: str | Path) -> list[Path]:
        """Write the four tables as ``samples.parquet``, ``summary.parquet``, ``comparisons.parquet`` and
        ``questions.parquet`` into ``folder`` (needs pyarrow); return the paths."""
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError("--parquet needs pyarrow, an optional extra: pip install 'ragsafe[frames]'") from None
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, df in (("samples", self.samples_df()), ("summary", self.summary_df()),
                         ("comparisons", self.comparisons_df()), ("questions", self.question_df())):
            p = out / f"{name}.parquet"
            df.to_parquet(p, index=False)
            paths.append(p)
        return paths


def _safety_rows(lr, s: Summary | None) -> list[dict]:
    """summary_df rows of the summary's safety section (metrics registered ``over="safety"``); a
    selective-answering row names its confidence source in ``source`` (None elsewhere)."""
    safety = (s.safety if s else None) or SafetySection()
    models = {k: (v.model, v.graph) for k, v in (s.variants if s else {}).items()}
    found: list[tuple[str, str, str | None, dict]] = []
    for variant, srcs in safety.selective.items():
        for src, v in srcs.items():
            found += [(variant, name, src, v.get(name)) for name in
                      ("aurc_accuracy", "aurc_high_risk", "coverage_at_max_high_risk")]
    found += [(variant, "net_benefit", None, v.get("estimate")) for variant, v in safety.net_benefit.items()]
    found += [(variant, name, None, est) for variant, v in safety.poison.items() for name, est in v.items()]
    rows = []
    for variant, name, src, est in found:
        if not isinstance(est, dict) or "mean" not in est:
            continue
        m = metrics.get(name)
        model, graph = models.get(variant, (None, None))
        rows.append({"run": lr.path.name, "model": model or lr.model, "variant": variant, "graph": graph,
                     "metric": name, "label": m.label, "unit": m.unit, "higher_is_better": m.higher_is_better,
                     "group": m.group, **{k: est.get(k) for k in ("mean", "sd", "lo", "hi", "n")}, "source": src})
    return rows


def load_runs(source: str | Path | Iterable[str | Path]) -> Runs:
    """Run folders from a run folder, a folder of run folders, or a list of either."""
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    dirs = find_run_dirs(sources)
    if not dirs:
        raise ConfigError(f"no run folder (a folder with run.json) in {', '.join(map(str, sources))}")
    runs = [load_run(d) for d in dirs]
    return Runs(runs, [RunStore(d).read_summary() for d in dirs])
