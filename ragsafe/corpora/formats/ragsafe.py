"""The ragsafe JSONL schema (``corpora/data/AUTHORING.md``): one question per line."""

from __future__ import annotations

from pathlib import Path

from ragsafe.corpora.formats.base import Loader, loaders
from ragsafe.corpora.formats.common import RAGSAFE_ALL_KEYS, UnknownKeys, read_jsonl_counted
from ragsafe.corpora.schema import Benchmark, Problem, Question, finish, question_from_record


def load_ragsafe_jsonl(paths: list[Path] | Path, name: str | None = None) -> Benchmark:
    """ragsafe-schema JSONL file(s) (one question per line)."""
    paths = [paths] if isinstance(paths, Path) else list(paths)
    problems: list[Problem] = []
    questions: list[Question] = []
    n = 0
    unknown = UnknownKeys(RAGSAFE_ALL_KEYS, flags=False)
    for p in paths:
        records, unreadable = read_jsonl_counted(p, problems)
        n += unreadable  # unparseable lines are records too: refused, and named in problems
        for lineno, rec in records:
            n += 1
            unknown.check(rec, str(p), lineno)
            q = question_from_record(rec, str(p), lineno, problems)
            if q is not None:
                questions.append(q)
    problems.extend(unknown.problems())
    return finish(name or paths[0].stem, questions, [str(p) for p in paths], problems, n)


def _load_ragsafe(files: list[Path], name: str | None = None) -> Benchmark:
    return load_ragsafe_jsonl(files, name=name)


loaders.add("ragsafe", Loader("ragsafe", _load_ragsafe, "FILE.jsonl[+FILE.jsonl...]",
                              doc="ragsafe schema, one question per line (corpora/data/AUTHORING.md)"))
