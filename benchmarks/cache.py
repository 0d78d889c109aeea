"""The response cache and resume: a sweep run a second time, against its first run.

One sweep (3 conditions x 2 seeds x the 72 demo questions = 432 LLM calls) against the loopback
fake server. Per repetition, with a fresh cache and out folder:

* first: cold cache, no run folders: every call goes to the server;
* second: the same sweep again: its run folders hold every record, nothing is computed;
* fresh folder: the same sweep into an empty out folder: every record is recomputed, every call
  answered by the cache.

Times are in-process (``run_sweep`` from call to return, scoring included); calls are counted by
the server. The CLI pays ~3 s of Python imports on top of each (measured once, shown below).

    python benchmarks/cache.py [--latency 0.05] [--reps 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, fake_server, header, median, server_stats, table  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=8)
    a = ap.parse_args()
    import yaml

    os.environ.pop("RAGSAFE_NO_CACHE", None)
    from ragsafe.experiments.sweep import load_sweep, run_sweep
    header(f"Cache: a sweep run again (fake server {a.latency * 1000:.0f} ms, concurrency {a.concurrency}, "
           f"medians of {a.reps})")
    times: dict[str, list[float]] = {"first": [], "second": [], "fresh": []}
    calls: dict[str, list[int]] = {k: [] for k in times}
    quiet = lambda m: None  # noqa: E731
    with fake_server(a.latency) as url, tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.reps):
            home = Path(tmp) / f"home{rep}"
            os.environ["RAGSAFE_HOME"] = str(home)
            p = Path(tmp) / f"sweep{rep}.yaml"
            p.write_text(yaml.safe_dump({
                "benchmark": "demo", "seeds": [0, 1], "out": str(Path(tmp) / f"runs{rep}"),
                "graphs": ["closed_book", "clean_evidence", "conflict_evidence"],
                "endpoints": [{"model": "fake", "base_url": url, "concurrency": a.concurrency}]}))
            for phase, out in (("first", None), ("second", None), ("fresh", str(Path(tmp) / f"fresh{rep}"))):
                n0 = server_stats(url)["requests"]
                t0 = time.perf_counter()
                run_sweep(load_sweep(p), out=out, progress=quiet)
                times[phase].append(time.perf_counter() - t0)
                calls[phase].append(server_stats(url)["requests"] - n0)
        # the CLI once, for the import cost a user sees on top
        env = {**os.environ, "RAGSAFE_HOME": str(Path(tmp) / "home0"), "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ragsafe.cli.main", "sweep", str(Path(tmp) / "sweep0.yaml")], env=env,
                       check=True, capture_output=True)
        cli_second = time.perf_counter() - t0
    first = median(times["first"])
    rows = [[phase, f"{median(times[phase]):.3f}", f"{first / median(times[phase]):.1f}x",
             f"{min(calls[phase])}-{max(calls[phase])}"] for phase in times]
    table(["run", "seconds", "speed-up vs first", "LLM calls"], rows)
    print(f"CLI `ragsafe sweep` second run, wall including interpreter start and imports: {cli_second:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
