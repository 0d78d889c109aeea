"""What every benchmark script shares: machine facts, the loopback fake server, tables, medians."""

from __future__ import annotations

import itertools
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    vers = []
    for pkg in ("openai", "httpx", "langgraph", "chromadb"):
        try:
            vers.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    load = "?"
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        pass
    return (f"{platform.platform()}; {cpu}; {os.cpu_count()} cores; {mem}; Python {platform.python_version()}; "
            + ", ".join(vers) + f"; load average at start {load} (the cores are shared)")


def header(title: str) -> None:
    print(f"## {title}\n")
    print(f"command: `{' '.join([Path(sys.executable).name] + sys.argv)}`  ")
    print(f"machine: {machine()}\n")


def table(head: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print()


def median(xs: list[float]) -> float:
    return statistics.median(xs)


_servers = itertools.count()


@contextmanager
def fake_server(latency: float, flavor: str | None = None) -> Iterator[str]:
    """The loopback fake OpenAI server in its own process (so it has its own core); yields the base URL."""
    port_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"ragsafe-bench-port-{os.getpid()}-{next(_servers)}"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fault_server.py"), "--latency", str(latency),
                             "--port-file", str(port_file), "--max-seconds", "3600",
                             *(["--flavor", flavor] if flavor else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() - t0 > 30:
                raise RuntimeError("fake server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text().strip()}/v1"
    finally:
        proc.terminate()
        proc.wait(10)
        port_file.unlink(missing_ok=True)


def server_stats(base_url: str) -> dict:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{base_url}/stats", timeout=5) as r:
        return json.loads(r.read())
