"""Shared fixtures. Every cache and run folder points at a temporary directory.

End-to-end fixtures start the real llama.cpp server (smollm2-135m: fast, near chance; it proves
plumbing, never results) and a real Chroma store with the real embedder, once per session.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

E2E_MODEL = os.environ.get("RAGSAFE_E2E_MODEL") or "smollm2-135m"
E2E_BASE_URL = os.environ.get("RAGSAFE_E2E_BASE_URL") or None
E2E_FLAVOR = os.environ.get("RAGSAFE_E2E_FLAVOR") or ("llamacpp" if E2E_BASE_URL is None else None)
"""Which server the e2e tests talk to, where it is known: "llamacpp" (the embedded one), "vllm"
(``make e2e-vllm``), None (``make e2e BASE_URL=...``: only what holds on any server is checked)."""
"""``make e2e BASE_URL=... MODEL=...``: the end-to-end tests that go through ``llm_server`` use that
server instead of starting the embedded one (tests of the embedded server's own lifecycle still
start it)."""


class _RemoteServer:
    """A server someone else started (``RAGSAFE_E2E_BASE_URL``): its URL and context size."""

    def __init__(self, base_url: str, model: str) -> None:
        import asyncio

        from ragsafe.llm.client import LLM

        self.base_url = base_url.rstrip("/")
        llm = LLM(self.base_url, model)
        ids = asyncio.run(llm.check())
        if model not in ids:
            raise RuntimeError(f"RAGSAFE_E2E_MODEL={model!r} is not served at {base_url} (it serves {ids})")
        self.n_ctx = (llm.model_info.get(model) or {}).get("max_model_len") or 4096


@pytest.fixture(scope="session")
def session_home(tmp_path_factory):
    return tmp_path_factory.mktemp("ragsafe-home")


@pytest.fixture(autouse=True)
def _isolated_home(session_home, monkeypatch):
    monkeypatch.setenv("RAGSAFE_HOME", str(session_home))
    monkeypatch.setenv("RAGSAFE_NO_CACHE", "1")


@pytest.fixture(scope="session")
def _registry_baseline():
    """Every registry filled with the built-in entries (and installed plugins) before the first test."""
    import importlib

    from ragsafe import registry

    for mod in ("ragsafe.corpora.benchmark", "ragsafe.corpora.documents", "ragsafe.corpora.formats.base",
                "ragsafe.evals.metrics", "ragsafe.graphs", "ragsafe.retrievers.registry"):
        importlib.import_module(mod)  # each module makes its registry

    return registry.snapshot()


@pytest.fixture(autouse=True)
def _isolated_registries(_registry_baseline):
    """What a test registers (a plugin's metric, graph, retriever or format) is gone after it.

    Plugin files loaded by the test leave ``sys.modules`` too, so the next test that loads the same
    file registers its entries again instead of finding the module cached.
    """
    import sys

    from ragsafe import registry

    before = set(sys.modules)
    yield
    registry.restore(_registry_baseline)
    for name in set(sys.modules) - before:
        mod = sys.modules.get(name)
        if name.startswith("ragsafe_plugin_") or _outside_installed_code(getattr(mod, "__file__", None)):
            sys.modules.pop(name, None)


def _outside_installed_code(file: str | None) -> bool:
    """A module that is neither ragsafe's nor an installed library's: a plugin a test loaded."""
    if not file:
        return False
    import sys
    from pathlib import Path

    from tests.paths import ROOT

    f = Path(file).resolve()
    homes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), (ROOT / "ragsafe").resolve()}
    return not any(f.is_relative_to(h) for h in homes)


@pytest.fixture(scope="session")
def llm_server(session_home):
    """The embedded llama.cpp server over real HTTP on 127.0.0.1."""
    os.environ["RAGSAFE_HOME"] = str(session_home)
    if E2E_BASE_URL:
        yield _RemoteServer(E2E_BASE_URL, E2E_MODEL)
        return
    from ragsafe.llm.server import LocalServer

    srv = LocalServer(E2E_MODEL, log_dir=session_home / "logs")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """A real Chroma PersistentClient store of the demo corpus, embedded with all-MiniLM-L6-v2."""
    from ragsafe.retrievers.chroma import build_index

    return build_index("demo", chroma_path=tmp_path_factory.mktemp("chroma"))


@pytest.fixture(scope="session")
def demo_benchmark():
    from ragsafe.corpora.benchmark import load_benchmark
    return load_benchmark("demo")


@pytest.fixture
def e2e_deps(llm_server, demo_store):
    """Deps wired to the real server and the real store (fresh LLM client per test)."""
    from ragsafe.graphs import Deps
    from ragsafe.llm.client import LLM
    from ragsafe.retrievers.chroma import ChromaRetriever
    from ragsafe.retrievers.embedders import get_embedder

    llm = LLM(llm_server.base_url, E2E_MODEL, timeout=60, max_retries=2)
    return Deps(llm=llm, retriever=ChromaRetriever(store=demo_store), context_window=llm_server.n_ctx,
                count_tokens=get_embedder().count_tokens)
