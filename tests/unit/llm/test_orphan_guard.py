"""The orphan guard: a child started under it dies with its parent, however the parent dies."""

import subprocess
import sys
import textwrap
import time

import pytest

from tests.paths import ROOT
from tests.procs import alive, wait_gone


@pytest.mark.parametrize("pdeathsig", [True, False], ids=["pdeathsig", "watchdog-only"])
def test_guarded_child_dies_with_its_sigkilled_parent(pdeathsig):
    guard = ROOT / "ragsafe" / "llm" / "orphan_guard.py"
    flag = ', "--pdeathsig"' if pdeathsig else ""
    # a parent that starts a long-lived child under the guard, prints its pid, then waits
    parent_code = textwrap.dedent(f'''
        import os, subprocess, sys, time
        p = subprocess.Popen([sys.executable, {str(guard)!r}, "--parent", str(os.getpid()){flag}, "--",
                              "-m", "http.server", "--bind", "127.0.0.1", "0"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        print(p.pid, flush=True)
        time.sleep(120)
    ''')
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    time.sleep(1.0)
    assert alive(child)
    parent.kill()
    parent.wait()
    assert wait_gone([child], timeout=5) == [], "the guarded child outlived its SIGKILLed parent"


def test_guard_refuses_without_a_module():
    guard = ROOT / "ragsafe" / "llm" / "orphan_guard.py"
    r = subprocess.run([sys.executable, str(guard), "--parent", "1", "--", "x"], capture_output=True, text=True)
    assert r.returncode != 0
