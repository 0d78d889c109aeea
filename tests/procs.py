"""Processes by /proc (Linux), for tests that check what ragsafe leaves running."""

from __future__ import annotations

import time
from pathlib import Path


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def alive(pid: int) -> bool:
    """Running (a zombie holds no memory and no core: it counts as gone)."""
    state = _state(pid)
    return state is not None and state not in ("Z", "X")


def servers_of(parent: int) -> list[int]:
    """Live embedded servers started by process ``parent`` (found by the orphan guard's --parent)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"orphan_guard.py") for a in argv) and b"--parent" in argv:
            i = argv.index(b"--parent")
            if i + 1 < len(argv) and argv[i + 1] == str(parent).encode() and alive(int(d.name)):
                out.append(int(d.name))
    return out


def wait_gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    """The pids still alive after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [p for p in left if alive(p)]
    return left


def children_of(parent: int) -> list[int]:
    """Live direct children of process ``parent``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            out.append(int(d.name))
    return out


def workers_of(parent: int) -> list[int]:
    """Live ``--procs`` worker processes started by process ``parent``."""
    out = []
    for pid in children_of(parent):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"ragsafe.experiments.procs" in argv:
            out.append(pid)
    return out
