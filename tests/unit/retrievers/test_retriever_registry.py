"""The retriever registry: built-in names with params, and module:factory for any langchain BaseRetriever."""

from __future__ import annotations

import asyncio
import textwrap

import pytest
from langchain_core.documents import Document

from ragsafe.config import ConfigError
from ragsafe.registry import UnknownName
from ragsafe.retrievers.base import LangChainRetriever
from ragsafe.retrievers.bm25 import BM25Retriever
from ragsafe.retrievers.hybrid import HybridRetriever
from ragsafe.retrievers.registry import (
    RetrieverContext,
    build_retriever,
    check_retriever,
    parse_retriever,
    retrievers,
)

CHUNKS = [Document(t, metadata={"chunk_id": f"d{i}#c0", "doc_id": f"d{i}"})
          for i, t in enumerate(["appendicolith in the right iliac fossa", "meniscus sign of pleural effusion",
                                 "air bronchograms in lobar consolidation"])]


class ListRetriever:
    """A dense stand-in that returns the chunks in reverse order (so fusion has something to fuse)."""

    name = "list"

    async def search(self, query: str, k: int) -> list[Document]:
        return list(reversed(CHUNKS))[:k]

    def describe(self) -> dict:
        return {"kind": "list"}


class FakeStore:
    name = "fake"


def ctx() -> RetrieverContext:
    return RetrieverContext(store=FakeStore(), dense=ListRetriever(), chunks=lambda: list(CHUNKS), docs=[])


def search(r, q, k=2):
    return [d.metadata["chunk_id"] for d in asyncio.run(r.search(q, k))]


def test_builtin_names_and_their_params():
    assert {"chroma", "bm25", "hybrid", "rerank"} <= set(retrievers.names())
    r = build_retriever("bm25[k1=1.2,b=0.5]", ctx())
    assert isinstance(r, BM25Retriever) and (r.k1, r.b) == (1.2, 0.5)
    assert search(r, "pleural effusion meniscus", 1) == ["d1#c0"]
    assert build_retriever("chroma", ctx()).name == "list"  # the context's dense retriever
    h = build_retriever("hybrid[weights=1,0]", ctx())
    assert isinstance(h, HybridRetriever) and h.weights == {"dense": 1.0, "bm25": 0.0}
    assert search(h, "appendicolith", 1) == ["d2#c0"]  # dense only: the stand-in's first hit


def test_bad_names_and_params_are_clear_errors():
    with pytest.raises(UnknownName, match="unknown retriever 'nope'; valid names: bm25, chroma, hybrid, rerank"):
        build_retriever("nope", ctx())
    with pytest.raises(ConfigError, match="unknown parameter"):
        check_retriever("bm25[k=3]")
    with pytest.raises(ConfigError, match="weights="):
        check_retriever("hybrid[weights=1]")
    with pytest.raises(ConfigError, match="first="):
        check_retriever("rerank[first=chroma]")


def test_parse_keeps_commas_inside_a_value():
    assert parse_retriever("hybrid[weights=1,0,rrf_k=10]") == ("hybrid", {"weights": "1,0", "rrf_k": "10"})
    assert parse_retriever("pkg.mod:make") == ("pkg.mod:make", {})
    assert parse_retriever("dir/f.py:make[top=2]") == ("dir/f.py:make", {"top": "2"})


FACTORY = textwrap.dedent('''
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class KeywordRetriever(BaseRetriever):
        """Chunks that contain the query's first word, in corpus order."""
        chunks: list
        k: int = 4

        def _get_relevant_documents(self, query, *, run_manager):
            word = query.split()[0].lower()
            return [d for d in self.chunks if word in d.page_content.lower()][: self.k]

    SEEN = {}

    def make(chunks, params):
        SEEN.update(params)
        return KeywordRetriever(chunks=chunks, k=int(params.get("k", 4)))

    def needs_more(chunks, tokenizer):
        return None

    def not_a_retriever(docs):
        return 42

    def broken(store):
        raise RuntimeError("no index here")
''')


def test_module_factory_returns_a_langchain_retriever_adapted(tmp_path):
    f = tmp_path / "my_retriever.py"
    f.write_text(FACTORY)
    r = build_retriever(f"{f}:make[k=1]", ctx())
    assert isinstance(r, LangChainRetriever) and r.name == "KeywordRetriever"
    hits = asyncio.run(r.search("air bronchograms", 3))
    assert [d.metadata["chunk_id"] for d in hits] == ["d2#c0"]
    assert hits[0].metadata["rank"] == 1  # annotated like every other retriever's hits
    import sys
    mod = next(m for m in sys.modules.values() if getattr(m, "__file__", None) == str(f))
    assert mod.SEEN == {"k": "1"}


def test_module_factory_errors_name_the_factory(tmp_path):
    f = tmp_path / "my_retriever.py"
    f.write_text(FACTORY)
    with pytest.raises(ConfigError, match=r"asks for \['tokenizer'\]; it may take only docs, chunks, store"):
        build_retriever(f"{f}:needs_more", ctx())
    with pytest.raises(ConfigError, match="int is neither a ragsafe Retriever nor a langchain BaseRetriever"):
        build_retriever(f"{f}:not_a_retriever", ctx())
    with pytest.raises(ConfigError, match="the factory failed: RuntimeError: no index here"):
        build_retriever(f"{f}:broken", ctx())
    with pytest.raises(ConfigError, match="has no callable 'missing'"):
        check_retriever(f"{f}:missing")
    with pytest.raises(ConfigError, match="no module named 'no_such_pkg_xyz'"):
        check_retriever("no_such_pkg_xyz:make")
    with pytest.raises(ConfigError, match="takes no 'params'"):
        build_retriever(f"{f}:not_a_retriever[k=1]", ctx())


def test_a_plugin_registers_a_retriever_by_name(tmp_path):
    from ragsafe.plugins import load_plugin

    f = tmp_path / "plug.py"
    f.write_text(textwrap.dedent('''
        import dataclasses
        from ragsafe.retrievers.bm25 import BM25Retriever
        from ragsafe.retrievers.registry import retriever

        @dataclasses.dataclass(frozen=True, kw_only=True)
        class P:
            k1: float = 0.9
            """BM25 k1."""

        @retriever("plugin_bm25", params=P)
        def build(ctx, params):
            return BM25Retriever(ctx.chunks, name="plugin_bm25", k1=params.k1)
    '''))
    load_plugin(str(f))
    r = build_retriever("plugin_bm25[k1=2]", ctx())
    assert r.name == "plugin_bm25" and r.k1 == 2.0


def test_sweep_and_run_config_take_a_retriever(tmp_path):
    from ragsafe.experiments.config import RunConfig
    from ragsafe.experiments.plan import plan
    from ragsafe.experiments.sweep import SweepError, load_sweep

    sw = tmp_path / "s.yaml"
    sw.write_text("endpoints: [{model: m, base_url: 'http://127.0.0.1:9/v1'}]\nlimit: 2\n"
                  "retriever: 'bm25[k1=1.2]'\ngraphs: ['standard_rag[k=2]']\n")
    (_, cfg), = load_sweep(sw).configs()
    assert cfg.retriever == "bm25[k1=1.2]"
    sw.write_text("endpoints: [{model: m, base_url: 'http://127.0.0.1:9/v1'}]\nretriever: nope\ngraphs: [closed_book]\n")
    with pytest.raises(SweepError, match=r"retriever: unknown retriever 'nope'; valid names: bm25, chroma"):
        load_sweep(sw)
    # the default retriever keeps older config hashes; another one enters the hash
    base = dict(graphs=["standard_rag[k=2]"], limit=2)
    default, bm25 = plan(RunConfig(**base)), plan(RunConfig(**base, retriever="bm25"))
    assert "retriever" not in default["identity"]["corpus"]
    assert bm25["identity"]["corpus"]["retriever"] == {"name": "bm25", "params": {}}
    assert default["config_hash"] != bm25["config_hash"]
    with pytest.raises(ConfigError, match="unknown parameter"):
        plan(RunConfig(**base, retriever="bm25[q=1]"))
    # a run without a retrieving graph ignores the retriever (nothing is searched)
    assert plan(RunConfig(graphs=["closed_book"], limit=2, retriever="bm25"))["identity"]["corpus"] is None
