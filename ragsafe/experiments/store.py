"""A run is a folder anyone can open: ``run.json``, ``samples.jsonl``, ``summary.json``.

Samples are appended one line per (variant, question) as each finishes, flushed and fsynced, so
a crash loses at most the lines being written. On reopen a torn last line is cut off and every
complete record is kept; a record is never written twice for the same key, except that an error
record may be followed by the answer of a later retry (``--retry-errors``). :meth:`RunStore.compact`
then rewrites the file (atomically) with exactly one line per key.

One process writes a run folder at a time: :meth:`RunStore.lock` takes an exclusive ``flock`` on
``.lock`` (released by the kernel when the process dies, however it dies).
"""

from __future__ import annotations

import os
import threading

try:
    import fcntl
except ImportError:  # not on Windows: no cross-process lock there
    fcntl = None
from pathlib import Path
from typing import Any, Iterator

from ragsafe import records
from ragsafe.config import ConfigError, DiskFull, is_disk_full
from ragsafe.records import RunManifest, SampleRecord, Summary

SCHEMA_VERSION = records.SAMPLE_VERSION


def sample_key(rec: SampleRecord | dict) -> tuple[str, str]:
    return (rec["variant"], rec["question_id"])


class RunStore:
    """Read/append access to one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.samples_path = self.path / "samples.jsonl"
        self._lock = threading.Lock()

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    def exists(self) -> bool:
        return self.run_json.exists()

    def read_run(self) -> RunManifest:
        if not self.run_json.exists():
            raise FileNotFoundError(f"{self.path} is not a ragsafe run folder (no run.json)")
        return records.read_manifest(self.run_json)

    def write_run(self, run: RunManifest | dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        records.write_json(self.run_json, run, records.MANIFEST_VERSION)

    def write_summary(self, summary: Summary | dict) -> None:
        records.write_json(self.path / "summary.json", summary, records.SUMMARY_VERSION)

    def read_summary(self) -> Summary | None:
        p = self.path / "summary.json"
        return records.read_summary(p) if p.exists() else None

    def repair(self) -> int:
        """Cut a torn last line (no trailing newline or invalid JSON); return bytes removed."""
        p = self.samples_path
        if not p.exists():
            return 0
        data = p.read_bytes()
        good = len(data)
        if data and not data.endswith(b"\n"):
            good = data.rfind(b"\n") + 1
        else:
            # a complete-looking last line can still be garbage if a crash hit mid-buffer
            last_start = data.rfind(b"\n", 0, max(len(data) - 1, 0)) + 1
            try:
                if data[last_start:].strip():
                    records.parse_line(data[last_start:])
            except ValueError:
                good = last_start
        if good < len(data):
            with open(p, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
        return len(data) - good

    def _lines(self) -> Iterator[tuple[str, Any]]:
        """``(where, value)`` of every complete line that is JSON: a torn tail ends the file, garbage
        left by a crash mid-buffer is skipped; ``where`` is "file:line" for messages."""
        if not self.samples_path.exists():
            return
        with open(self.samples_path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.endswith("\n"):
                    return  # torn tail
                try:
                    yield f"{self.samples_path}:{n}", records.parse_line(line)
                except ValueError:
                    continue

    def iter_samples(self) -> Iterator[SampleRecord]:
        """Complete records, one per key: a later answered record supersedes an earlier error record."""
        best: dict[tuple[str, str], SampleRecord] = {}
        for where, data in self._lines():
            rec = records.as_sample(data, where)
            if rec.key not in best or best[rec.key].error:
                best[rec.key] = rec  # a later record supersedes an error record
        yield from best.values()

    def samples(self) -> list[SampleRecord]:
        return list(self.iter_samples())

    def done_keys(self, include_errors: bool = True) -> set[tuple[str, str]]:
        """The (variant, question id) of every complete record (``include_errors=False``: answered ones).

        Planning a resume reads every line, so a current-version record gives its key and error
        without being validated whole; any other line goes through :func:`ragsafe.records.as_sample`
        (migrated, or refused with the file, line and field), as :meth:`iter_samples` reads it.
        """
        current = records.CURRENT["sample"]
        erred: dict[tuple[str, str], bool] = {}
        for where, data in self._lines():
            if (isinstance(data, dict) and data.get("schema_version") == current
                    and isinstance(data.get("variant"), str) and isinstance(data.get("question_id"), str)):
                k, err = (data["variant"], data["question_id"]), bool(data.get("error"))
            else:
                rec = records.as_sample(data, where)
                k, err = rec.key, bool(rec.error)
            if erred.get(k, True):
                erred[k] = err  # a later record supersedes an error record
        return {k for k, err in erred.items() if include_errors or not err}

    def append(self, rec: SampleRecord | dict) -> None:
        self.append_many([rec])

    def append_many(self, recs: list[SampleRecord | dict | str]) -> None:
        """Append complete lines with one write and one fsync (a group commit). A ``str`` is a line
        already serialised (by a worker process of ``--procs``).

        A write that fails part-way (a full disk) is cut back to where the file ended before it, so
        no torn record is left; a full disk raises :class:`~ragsafe.config.DiskFull`.
        """
        if not recs:
            return
        blob = "".join(r if isinstance(r, str) else _line(r) for r in recs).encode("utf-8")
        with self._lock:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.samples_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            start = os.fstat(fd).st_size
            try:
                view = memoryview(blob)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as e:
                try:
                    os.ftruncate(fd, start)
                    os.fsync(fd)
                except OSError:
                    pass  # the next open's repair() cuts the torn tail instead
                if is_disk_full(e):
                    raise DiskFull(self.samples_path, f"{len(recs)} sample record(s)") from None
                raise
            finally:
                os.close(fd)

    def line_count(self) -> int:
        if not self.samples_path.exists():
            return 0
        with open(self.samples_path, "rb") as f:
            return sum(1 for _ in f)

    def compact(self) -> bool:
        """Rewrite ``samples.jsonl`` with one line per key when some lines are superseded.

        The new file is written beside the old one and moved over it, so a crash at any point
        leaves either the old file or the new one. Returns whether it rewrote.
        """
        recs = self.samples()
        if self.line_count() == len(recs):
            return False
        tmp = self.samples_path.with_suffix(f".jsonl.tmp-{os.getpid()}")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                for r in recs:
                    f.write(_line(r))
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            tmp.unlink(missing_ok=True)  # samples.jsonl is untouched (superseded lines are harmless)
            if is_disk_full(e):
                raise DiskFull(self.samples_path, "the compacted samples") from None
            raise
        os.replace(tmp, self.samples_path)
        return True

    def lock(self) -> "RunLock":
        """Hold the folder for writing; raises :class:`RunLocked` when another process holds it."""
        return RunLock(self.path)


class RunLocked(ConfigError):
    """Another process is writing this run folder."""


class RunLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise RunLocked(f"another ragsafe process is writing {self.path}; wait for it to finish "
                                f"(or stop it) and run again") from None
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


_line = records.dump_sample_line
