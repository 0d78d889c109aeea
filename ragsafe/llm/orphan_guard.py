"""Run a Python module as a child that never outlives the process that started it.

:class:`ragsafe.llm.server.LocalServer` starts llama.cpp's server through this file (run by path,
so the ragsafe package is not imported into the server)::

    python orphan_guard.py --parent PID [--pdeathsig] -- -m llama_cpp.server --model ...

Two guards, because either alone has a gap:

* Linux parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, with ``--pdeathsig``): the
  kernel kills this process the moment the thread that started it exits, however it exits
  (SIGKILL included). It is only asked for when that thread is the parent's main thread, since
  the signal follows the thread, not the process.
* A watchdog thread that checks every half second whether the parent is still this process's
  parent (after the parent dies the child is re-parented), for other systems and for starts from
  a worker thread.

A parent that has already died before the guard ran is caught by the same check at start-up.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

POLL_SECONDS = 0.5


def _set_pdeathsig() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no libc prctl: the watchdog still covers it
        pass


def _watch(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)  # nothing of the server's is worth saving
        time.sleep(POLL_SECONDS)


def main(argv: list[str]) -> None:
    if "--" not in argv:
        raise SystemExit("usage: orphan_guard.py --parent PID [--pdeathsig] -- -m MODULE [ARGS...]")
    ours, rest = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    parent = int(ours[ours.index("--parent") + 1])
    if len(rest) < 2 or rest[0] != "-m":
        raise SystemExit("orphan_guard.py: after -- give -m MODULE [ARGS...]")
    if "--pdeathsig" in ours:
        _set_pdeathsig()
    if os.getppid() != parent:  # the parent died before the guard was in place
        raise SystemExit(0)
    threading.Thread(target=_watch, args=(parent,), name="orphan-guard", daemon=True).start()
    module = rest[1]
    sys.argv = [module, *rest[2:]]
    sys.path[0] = os.getcwd()  # as `python -m` would have it (not this file's folder)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
