"""The embedded OpenAI-compatible endpoint: llama.cpp's own server (`python -m llama_cpp.server`).

It binds to 127.0.0.1 on a free port unless told otherwise, and is ready when ``/v1/models``
answers. Use it as a context manager so it is always stopped. It starts with the model's trained
context capped at :data:`ragsafe.llm.models.N_CTX_CAP` (``n_ctx`` / ``ragsafe serve --n-ctx`` sets
another).

It never outlives its parent: it runs under :mod:`ragsafe.llm.orphan_guard` (Linux parent-death
signal plus a watchdog), so even a SIGKILL of ragsafe takes the server down within a second.
:meth:`LocalServer.restart` starts it again on the same port after it died (the runner does this
when the server crashes mid-run).

Example:
    >>> with LocalServer("smollm2-135m") as srv:   # doctest: +SKIP
    ...     print(srv.base_url)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from ragsafe import config
from ragsafe.llm import models


class ServerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def describe_exit(rc: int) -> str:
    """A process's return code in words, for messages: 'exit code 1', 'killed by SIGKILL'."""
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


class LocalServer:
    """Start/stop llama.cpp's OpenAI-compatible server with an embedded GGUF."""

    def __init__(self, model: str = models.DEFAULT_MODEL, *, host: str = "127.0.0.1", port: int | None = None,
                 n_ctx: int | None = None, threads: int | None = None, startup_timeout: float = 180.0,
                 log_dir: Path | None = None, embedding: bool = False) -> None:
        self.model = models.get(model)
        self.host = host
        self.port = port or free_port(host)
        self.n_ctx = n_ctx or self.model.n_ctx
        self.threads = threads or int(config.env("RAGSAFE_SERVER_THREADS") or os.cpu_count() or 2)
        self.startup_timeout = startup_timeout
        self.embedding = embedding
        """Also serve /v1/embeddings (llama.cpp's ``--embedding true``)."""
        self.log_dir = log_dir or config.home() / "logs"
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.restarts = 0
        """Times :meth:`restart` started the server again after it had died."""

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self, gguf: Path) -> list[str]:
        """The server's command line, under the orphan guard."""
        guard = Path(__file__).with_name("orphan_guard.py")
        # the parent-death signal follows the thread that forks: ask for it only from the main thread
        pdeath = ["--pdeathsig"] if threading.current_thread() is threading.main_thread() else []
        return [sys.executable, str(guard), "--parent", str(os.getpid()), *pdeath, "--",
                "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", self.model.name,
                "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
                *(["--embedding", "true"] if self.embedding else [])]

    def start(self) -> "LocalServer":
        try:
            import llama_cpp.server  # noqa: F401  (only to give a clear error early)
        except ImportError as e:
            raise ServerError(
                "the embedded server needs the 'local' extra: pip install 'ragsafe[local]' "
                f"(llama-cpp-python[server]); import failed: {e}") from None
        gguf = self.model.gguf_path()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"llama-server-{self.model.name}-{self.port}.log"
        log = open(self.log_path, "ab")
        # its own session: a Ctrl-C in the terminal reaches ragsafe, which stops the server in order
        self.proc = subprocess.Popen(self.command(gguf), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        try:
            self._wait_ready()
        except BaseException:  # a signal or a failed start: never leave the process behind
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise ServerError(f"llama.cpp server exited with code {self.proc.returncode}; "
                                  f"log {self.log_path}:\n{tail}")
            if self.ready():
                return
            time.sleep(0.3)
        raise ServerError(f"llama.cpp server did not answer {self.base_url}/models within "
                          f"{self.startup_timeout:.0f}s; log: {self.log_path}")

    def alive(self) -> bool:
        """True while the server process runs (it may still be loading)."""
        return self.proc is not None and self.proc.poll() is None

    def exit_status(self) -> str:
        """How the last process ended, for messages: 'exit code 1', 'killed by SIGKILL', 'running'."""
        if self.proc is None or self.proc.returncode is None:
            return "running" if self.proc is not None else "not started"
        return describe_exit(self.proc.returncode)

    def restart(self) -> "LocalServer":
        """Start the server again on the same port (so clients keep their base URL)."""
        self.stop()
        self.restarts += 1
        return self.start()

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                return r.status == 200 and "data" in json.loads(r.read())
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
