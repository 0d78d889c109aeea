"""Run folders as analysis input: a run's questions and records, and *arms* (graph variant × model).

A run holds one model; several runs (one per model) combine into one analysis over the questions
they share, with arm keys ``variant@model`` when the models differ.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Iterable

from ragsafe.corpora.schema import Question
from ragsafe.evals import attribution

FLOOR, CEILING = "closed_book", "clean_evidence"


@dataclasses.dataclass
class Arm:
    """One graph variant of one model: its records by question id."""

    key: str
    variant: str
    graph: str
    model: str | None
    records: dict[str, dict]
    chunk_text: attribution.ChunkText | None = None


def graph_of(variant: str, records: Iterable[dict] = ()) -> str:
    for r in records:
        if r.get("graph"):
            return r["graph"]
    return variant.split("[")[0]


@dataclasses.dataclass
class LoadedRun:
    path: Path
    run: dict
    questions: list[Question]
    samples: list[dict]

    @property
    def model(self) -> str:
        return (self.run.get("endpoint") or {}).get("model") or self.path.name

    @property
    def variants(self) -> list[str]:
        """Variant labels, floor and ceiling first, then by label (run.json's key order is not kept)."""
        vs = self.run.get("variants") or {}
        role = {FLOOR: 0, CEILING: 1}
        return sorted(vs, key=lambda v: (role.get((vs[v] or {}).get("graph") or v.split("[")[0], 2), v))


def load_run(run_dir: str | Path) -> LoadedRun:
    """A run folder's record, its benchmark questions (in the run's order) and its samples."""
    from ragsafe.config import ConfigError
    from ragsafe.corpora.benchmark import load_benchmark
    from ragsafe.experiments.store import RunStore

    store = RunStore(run_dir)
    run = store.read_run()
    spec = run["benchmark"]["spec"]
    if not Path(spec).is_absolute() and (Path(run_dir) / spec).exists():
        spec = str(Path(run_dir) / spec)  # a benchmark file kept inside the run folder (imports)
    bench = load_benchmark(spec)
    by_id = {q.id: q for q in bench.questions}
    missing = [i for i in run["question_ids"] if i not in by_id]
    if missing:
        raise ConfigError(f"{run_dir}: questions {missing[:5]} are no longer in benchmark {spec!r}")
    return LoadedRun(Path(run_dir), run, [by_id[i] for i in run["question_ids"]], store.samples())


def run_arms(lr: LoadedRun, key_fmt: Callable[[str, str], str] = lambda v, m: v,
             chunk_text: attribution.ChunkText | None = None) -> list[Arm]:
    recs: dict[str, dict[str, dict]] = {v: {} for v in lr.variants}
    for s in lr.samples:
        if s["variant"] in recs:
            recs[s["variant"]].setdefault(s["question_id"], s)
    return [Arm(key_fmt(v, lr.model), v, (lr.run["variants"][v] or {}).get("graph") or graph_of(v, recs[v].values()),
                lr.model, recs[v], chunk_text) for v in lr.variants]


def combine_runs(runs: list[LoadedRun], *, common_questions: bool = False, text: bool = True
                 ) -> tuple[list[Arm], list[Question]]:
    """Arms of several runs on one question set; arm keys are ``variant@model`` when models differ."""
    from ragsafe.config import ConfigError

    sets = [{q.id for q in r.questions} for r in runs]
    common = set.intersection(*sets) if sets else set()
    if not common_questions and any(s != sets[0] for s in sets):
        diff = sorted(set.union(*sets) - common)
        raise ConfigError(f"the runs cover different questions (e.g. {diff[:5]}); paired statistics need the "
                          f"same questions: pass --common-questions to use the {len(common)} shared ones")
    qs = [q for q in runs[0].questions if q.id in common]
    multi = len({r.model for r in runs}) > 1
    arms: list[Arm] = []
    seen: set[str] = set()
    for r in runs:
        ct = attribution.corpus_chunk_texts(r.run) if text else None
        for a in run_arms(r, (lambda v, m: f"{v}@{m}") if multi else (lambda v, m: v), ct):
            if a.key in seen:
                raise ConfigError(f"graph variant {a.variant!r} of model {a.model!r} appears in two runs; "
                                  f"pass only one of them")
            seen.add(a.key)
            arms.append(a)
    return arms, qs
