"""The embedded OpenAI-compatible endpoint: llama.cpp's own server (`python -m llama_cpp.server`).

It binds to 127.0.0.1 on a free port unless told otherwise, and is ready when ``/v1/models``
answers. Use it as a context manager so it is always stopped.

Example:
    >>> with LocalServer("smollm2-135m") as srv:   # doctest: +SKIP
    ...     print(srv.base_url)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
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

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

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
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", self.model.name,
               "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx),
               "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads)]
        if self.embedding:
            cmd += ["--embedding", "true"]
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise ServerError(f"llama.cpp server exited with code {self.proc.returncode}; "
                                  f"log {self.log_path}:\n{tail}")
            if self.ready():
                return self
            time.sleep(0.3)
        self.stop()
        raise ServerError(f"llama.cpp server did not answer {self.base_url}/models within "
                          f"{self.startup_timeout:.0f}s; log: {self.log_path}")

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
