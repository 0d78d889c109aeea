"""Content-addressed LLM response cache in SQLite (WAL).

Keyed on the exact request (endpoint model id, messages, decoding params, seed); never on the API
key. Re-running an unchanged run makes no LLM call. ``RAGSAFE_NO_CACHE=1`` switches it off.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from .. import config


class SQLiteCache:
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

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)",
                             (key, json.dumps(value, default=str)))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def open_cache() -> SQLiteCache | None:
    if (config.env("RAGSAFE_NO_CACHE") or "").lower() in ("1", "true", "yes"):
        return None
    return SQLiteCache(config.home() / "cache" / "responses.sqlite")
