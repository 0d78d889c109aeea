"""A SQLite index over the run folders under one root, for `ragsafe runs list` and `runs show`.

The folders stay the truth: the index is rebuilt from them on every refresh (only folders whose
``run.json`` or ``samples.jsonl`` changed are read again), so deleting it loses nothing and a
folder copied in from another machine appears at the next listing.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

from ragsafe.config import ConfigError
from ragsafe.experiments.store import RunStore
from ragsafe.params import variant_name

INDEX_NAME = ".ragsafe-index.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    folder TEXT PRIMARY KEY, path TEXT NOT NULL, config_hash TEXT, model TEXT, base_url TEXT,
    benchmark TEXT, split TEXT, seed INTEGER, n_questions INTEGER, n_variants INTEGER, expected INTEGER,
    records INTEGER, errors INTEGER, started_at TEXT, finished_at TEXT, shard TEXT, sweep TEXT,
    status TEXT, stamp TEXT);
CREATE TABLE IF NOT EXISTS run_variants (
    folder TEXT NOT NULL, label TEXT NOT NULL, graph TEXT NOT NULL, PRIMARY KEY (folder, label));
CREATE INDEX IF NOT EXISTS run_variants_graph ON run_variants (graph);
"""

COLUMNS = ["folder", "started_at", "model", "graphs", "seed", "benchmark", "records", "errors", "status"]


class RunIndex:
    """Index of the run folders directly under ``root``.

    Example:
        >>> idx = RunIndex("runs"); idx.refresh()  # doctest: +SKIP
        >>> idx.list(graph="standard_rag", since="2025-01-01")  # doctest: +SKIP
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.path = self.root / INDEX_NAME

    def _db(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), timeout=30)
        db.row_factory = sqlite3.Row
        db.executescript(_SCHEMA)
        return db

    def refresh(self) -> int:
        """Re-read changed folders, drop vanished ones; return how many folders were (re)read."""
        if not self.root.exists():
            return 0
        db = self._db()
        try:
            known = {r["folder"]: r["stamp"] for r in db.execute("SELECT folder, stamp FROM runs")}
            seen, changed = set(), 0
            for d in sorted(self.root.iterdir()):
                if not (d / "run.json").is_file():
                    continue
                seen.add(d.name)
                stamp = _stamp(d)
                if known.get(d.name) == stamp:
                    continue
                try:
                    row, variants = _describe(d)
                except (ValueError, KeyError, OSError, TypeError):
                    continue  # a half-written or foreign folder: listed once it is whole
                row["stamp"] = stamp
                db.execute("DELETE FROM run_variants WHERE folder = ?", (d.name,))
                db.execute(f"INSERT OR REPLACE INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                           list(row.values()))
                db.executemany("INSERT INTO run_variants (folder, label, graph) VALUES (?, ?, ?)",
                               [(d.name, label, graph) for label, graph in variants])
                changed += 1
            for gone in set(known) - seen:
                db.execute("DELETE FROM runs WHERE folder = ?", (gone,))
                db.execute("DELETE FROM run_variants WHERE folder = ?", (gone,))
            db.commit()
            return changed
        finally:
            db.close()

    def list(self, *, graph: str | None = None, model: str | None = None, since: str | None = None,
             until: str | None = None, refresh: bool = True) -> list[dict[str, Any]]:
        """Runs newest first, filtered by graph name (or variant label), model id and start date."""
        if refresh:
            self.refresh()
        if not self.path.exists():
            return []
        where, args = [], []
        if graph:
            where.append("folder IN (SELECT folder FROM run_variants WHERE graph = ? OR label = ?)")
            args += [graph, graph]
        if model:
            where.append("model = ?")
            args.append(model)
        if since:
            where.append("started_at >= ?")
            args.append(_date(since, "--since"))
        if until:
            where.append("started_at < ?")
            args.append(_date(until, "--until", end=True))
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "") + \
              " ORDER BY started_at DESC, folder"
        db = self._db()
        try:
            rows = [dict(r) for r in db.execute(sql, args)]
            for r in rows:
                r["graphs"] = ",".join(sorted({g for (g,) in db.execute(
                    "SELECT graph FROM run_variants WHERE folder = ?", (r["folder"],))}))
            return rows
        finally:
            db.close()

    def find(self, ref: str) -> Path:
        """A run folder from a path, a folder name, or a unique prefix of its name or config hash."""
        p = Path(ref)
        if (p / "run.json").exists():
            return p
        if (self.root / ref / "run.json").exists():
            return self.root / ref
        rows = self.list()
        hits = [r for r in rows if r["folder"].startswith(ref) or r["folder"].startswith(f"run-{ref}")
                or (r["config_hash"] or "").startswith(ref)]
        if len(hits) == 1:
            return Path(hits[0]["path"])
        if not hits:
            raise ConfigError(f"no run {ref!r} under {self.root}; `ragsafe runs list --root {self.root}` shows them")
        raise ConfigError(f"{ref!r} matches {len(hits)} runs under {self.root}: "
                          f"{', '.join(r['folder'] for r in hits[:5])}; give more of the name")


def _stamp(d: Path) -> str:
    parts = []
    for name in ("run.json", "samples.jsonl", "summary.json"):
        f = d / name
        if f.exists():
            st = f.stat()
            parts.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
    return "|".join(parts)


def _describe(d: Path) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    store = RunStore(d)
    run = store.read_run()
    samples = store.samples()
    variants = [(label, v.graph or variant_name(label)) for label, v in run.variants.items()]
    shard = run.shard
    n_q = len(shard.question_ids) if shard else len(run.question_ids)
    expected = n_q * len(variants)
    errors = sum(1 for s in samples if s.error)
    if len(samples) < expected:
        status = f"incomplete {len(samples)}/{expected}"
    elif errors:
        status = f"{errors} errors"
    else:
        status = "complete"
    if shard:
        status = f"shard {shard.index}/{shard.count}, {status}"
    row = {"folder": d.name, "path": str(d), "config_hash": run.config_hash, "model": run.endpoint.model,
           "base_url": run.endpoint.base_url, "benchmark": run.benchmark.get("spec"),
           "split": run.config.get("split"), "seed": run.seeds.get("llm"),
           "n_questions": n_q, "n_variants": len(variants), "expected": expected, "records": len(samples),
           "errors": errors, "started_at": run.started_at, "finished_at": run.finished_at,
           "shard": f"{shard.index}/{shard.count}" if shard else None,
           "sweep": (run.sweep or {}).get("name"), "status": status}
    return row, variants


def _date(text: str, flag: str, end: bool = False) -> str:
    """A date or ISO time as the ISO text run records hold; a bare date --until includes that day."""
    try:
        if len(text) == 10:
            d = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
            if end:
                d += dt.timedelta(days=1)
        else:
            d = dt.datetime.fromisoformat(text)
            if d.tzinfo is None:
                d = d.replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected a date YYYY-MM-DD or an ISO time") from None
    return d.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no runs"
    body = [[str(r.get(c) if r.get(c) is not None else "") for c in COLUMNS] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(COLUMNS, *body)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in [COLUMNS] + body)


def show(run_dir: str | Path) -> str:
    """A readable account of one run folder: what ran, where, how far, and its summary table."""
    store = RunStore(run_dir)
    run = store.read_run()
    row, variants = _describe(Path(run_dir))
    ep = run.endpoint
    lines = [f"run {Path(run_dir)}",
             f"  config hash   {run.config_hash}",
             f"  model         {ep.model} at {ep.base_url}" + (f" (+{len(ep.replicas)} replicas)" if ep.replicas else ""),
             f"  benchmark     {row['benchmark']} (split {row['split'] or 'all'}), {row['n_questions']} questions",
             f"  seed          {row['seed']}",
             f"  started       {run.started_at}   finished {run.finished_at or '-'}",
             f"  records       {row['records']}/{row['expected']} ({row['errors']} errors)   status: {row['status']}"]
    if run.sweep:
        lines.append(f"  sweep         {run.sweep.get('name')} ({run.sweep.get('file')})")
    if run.merged_from:
        lines.append(f"  merged from   {', '.join(m['path'] for m in run.merged_from)}")
    if run.llm_calls_last_session is not None:
        lines.append(f"  last session  {run.llm_calls_last_session} LLM calls, {run.cache_hits_last_session or 0} "
                     f"cache hits, {run.failed_attempts_last_session or 0} failed attempts, "
                     f"{run.wall_seconds_last_session} s")
    lines.append("  variants      " + ", ".join(label for label, _ in variants))
    summary = store.read_summary()
    if summary:
        from ragsafe.evals.reports.text import text_table

        lines += ["", text_table(summary)]
    return "\n".join(lines)


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2, default=str)
