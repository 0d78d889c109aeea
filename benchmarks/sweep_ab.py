"""The sweep arm of ``throughput.py`` at several source trees, interleaved: is a later commit slower?

Each tree is a checkout of ragsafe (``git worktree add --detach /tmp/at-X X``). Every repetition
runs, for each tree in turn, that tree's own ``benchmarks/throughput.py:sweep_arm`` in a fresh
process with the tree first on ``sys.path`` (closed_book, one run per seed, ``16 x c`` questions
over the demo set) against that tree's fake server, and prints the fraction of ideal over the run
record's execute window and the client's CPU per question inside the event loop (process time
of every ``asyncio.run``: the execution, not planning or scoring). CPU per question is the figure
to compare on a shared machine; alternating the trees spreads drifting load over all of them.

    git worktree add --detach /tmp/at-e4bf697 e4bf697
    python benchmarks/sweep_ab.py /tmp/at-e4bf697 . [--levels 32,64] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r'''
import asyncio, importlib.util, json, math, os, sys, tempfile, time
from pathlib import Path
root = Path(sys.argv[1]).resolve()
sys.path[:0] = [str(root), str(root / "benchmarks")]
os.environ.setdefault("RAGSAFE_NO_CACHE", "1")
spec = importlib.util.spec_from_file_location("tp", root / "benchmarks" / "throughput.py")
tp = importlib.util.module_from_spec(spec); spec.loader.exec_module(tp)
import ragsafe
assert Path(ragsafe.__file__).resolve().is_relative_to(root), ragsafe.__file__
cpu = [0.0]
inner = asyncio.run
def timed(coro, **kw):
    c0 = time.process_time()
    try:
        return inner(coro, **kw)
    finally:
        cpu[0] += time.process_time() - c0
asyncio.run = timed
c, latency = int(sys.argv[2]), float(sys.argv[3])
with tp.fake_server(latency) as url, tempfile.TemporaryDirectory() as tmp:
    seeds = max(1, math.ceil(16 * c / 72))
    wall, n = tp.sweep_arm(url, c, seeds, Path(tmp))
print(json.dumps({"fraction": math.ceil(n / c) * latency / wall, "cpu_ms_per_q": cpu[0] / n * 1000, "n": n}))
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trees", nargs="+", help="ragsafe checkouts to compare")
    ap.add_argument("--levels", default="32,64")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.05)
    a = ap.parse_args()
    trees = [str(Path(t).resolve()) for t in a.trees]
    levels = [int(x) for x in a.levels.split(",")]
    res: dict[tuple[str, int], list[dict]] = {}
    for _ in range(a.reps):
        for c in levels:
            for t in trees:
                env = dict(os.environ, PYTHONPATH=t, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
                p = subprocess.run([sys.executable, "-c", CHILD, t, str(c), str(a.latency)], capture_output=True,
                                   text=True, env=env, cwd=t)
                if p.returncode:
                    raise SystemExit(f"{t} c={c} failed:\n{p.stderr[-2000:]}")
                res.setdefault((t, c), []).append(json.loads(p.stdout.strip().splitlines()[-1]))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    print(f"command: `{' '.join([Path(sys.executable).name] + sys.argv)}`; load average at the end {load}\n")
    print("| tree | concurrency | sweep / ideal | client CPU ms/question | each repetition (CPU) |")
    print("|---|---|---|---|---|")
    for (t, c), rs in res.items():
        each = ", ".join("%.2f" % r["cpu_ms_per_q"] for r in rs)
        print(f"| {t} | {c} | {statistics.median(r['fraction'] for r in rs):.2f} | "
              f"{statistics.median(r['cpu_ms_per_q'] for r in rs):.2f} | {each} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
