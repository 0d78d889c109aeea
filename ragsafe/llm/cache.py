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
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from ragsafe import config

MODES = ("use", "refresh", "off")


class SQLiteCache:
    """A key -> completion-record store shared by processes (shards on one machine) and threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
                         " created TEXT DEFAULT CURRENT_TIMESTAMP)")
        self._db.commit()
        self.reads = self.hits = self.writes = 0

    def get(self, key: str) -> dict | None:
        with self._lock:
            self.reads += 1
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
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
        with self._lock:
            self.writes += 1
            self._db.execute("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", (key, blob))
            self._db.commit()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


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
