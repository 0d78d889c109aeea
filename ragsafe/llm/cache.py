"""Content-addressed LLM response cache in SQLite (WAL).

The key is the sha256 of the exact request (endpoint model id, messages, decoding params, seed;
see :func:`ragsafe.llm.client.cache_key`), never the API key or the URL: replicas of one model share
entries, and a variant that repeats a step of an earlier one (same prompt, same params) gets that
step's answer without a call. Self-consistency samples differ by seed, so each is its own entry.

Modes (``--no-cache`` / ``--refresh-cache``): "use" reads and writes, "refresh" writes only
(every request goes to the server and its answer replaces the entry), "off" neither.
``RAGSAFE_NO_CACHE=1`` means "off" everywhere.

Writes commit at once: in WAL mode a committed entry survives the process being killed, so a
run killed mid-way and restarted repeats no request that had been answered and cached.

A damaged database (truncated, overwritten, not SQLite) is moved aside to
``responses.sqlite.corrupt-<time>`` with a warning, and the run goes on with an empty cache (its
answers are requested again). A full disk raises :class:`~ragsafe.config.DiskFull`: the run stops
instead of recording every later answer as an error.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ragsafe import config
from ragsafe.config import DiskFull, is_disk_full

MODES = ("use", "refresh", "off")


_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


def _damaged(e: BaseException) -> bool:
    if not isinstance(e, sqlite3.DatabaseError):
        return False
    code = getattr(e, "sqlite_errorcode", None)
    return code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or (code is None and any(
        w in str(e).lower() for w in ("malformed", "not a database", "corrupt")))


class SQLiteCache:
    """A key -> completion-record store shared by processes (shards on one machine) and threads."""

    def __init__(self, path: str | Path, *, warn: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.warn = warn or _stderr
        self.set_aside: list[Path] = []
        """Damaged database files moved out of the way by this object."""
        self._lock = threading.Lock()
        self.reads = self.hits = self.writes = 0
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except sqlite3.DatabaseError as e:
            if is_disk_full(e):
                raise DiskFull(self.path, "the response cache") from None
            if not _damaged(e):
                raise
            self._replace(e)

    def _open(self) -> None:
        db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
                       " created TEXT DEFAULT CURRENT_TIMESTAMP)")
            db.commit()
            db.execute("SELECT key FROM responses LIMIT 1").fetchall()
        except BaseException:
            db.close()
            raise
        self._db = db

    def _replace(self, e: BaseException) -> None:
        """Move the damaged database (and its WAL files) aside and start an empty one."""
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                os.replace(src, Path(str(target) + suffix))
        self.set_aside.append(target)
        self.warn(f"warning: the response cache {self.path} is damaged ({e}); moved it to {target} and "
                  "continuing with an empty cache (its answers will be requested again)")
        self._open()

    def _run(self, op: Callable[[sqlite3.Connection], Any], what: str) -> Any:
        """Run ``op`` on the database under the lock: a damaged file is replaced once, a full disk stops."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    return op(self._db)
                except sqlite3.DatabaseError as e:
                    if is_disk_full(e):
                        raise DiskFull(self.path, what) from None
                    if attempt == 2 or not _damaged(e):
                        raise
                    self._replace(e)
                except OSError as e:
                    if is_disk_full(e):
                        raise DiskFull(self.path, what) from None
                    raise

    def get(self, key: str) -> dict | None:
        self.reads += 1
        row = self._run(lambda db: db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone(),
                        "a cache lookup")
        if not row:
            return None
        try:
            value = json.loads(row[0])
        except ValueError:
            return None  # a damaged entry is a miss; the next answer overwrites it
        self.hits += 1
        return value

    def put(self, key: str, value: dict) -> None:
        blob = json.dumps(value, default=str)

        def op(db: sqlite3.Connection) -> None:
            try:
                db.execute("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", (key, blob))
                db.commit()
            except BaseException:
                db.rollback()
                raise

        self._run(op, "a response cache entry")
        self.writes += 1

    def __contains__(self, key: str) -> bool:
        return self._run(lambda db: db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone(),
                         "a cache lookup") is not None

    def __len__(self) -> int:
        return self._run(lambda db: db.execute("SELECT COUNT(*) FROM responses").fetchone()[0], "a cache count")

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def default_path() -> Path:
    return config.home() / "cache" / "responses.sqlite"


def cache_disabled() -> bool:
    return (config.env("RAGSAFE_NO_CACHE") or "").lower() in ("1", "true", "yes")


def open_cache(mode: str = "use") -> SQLiteCache | None:
    """The shared response cache, or None when ``mode`` is "off" or ``RAGSAFE_NO_CACHE`` is set."""
    if mode not in MODES:
        raise ValueError(f"cache mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "off" or cache_disabled():
        return None
    return SQLiteCache(default_path())
