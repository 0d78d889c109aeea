"""Retrievers registered by name, and ``module:factory`` for any langchain-core ``BaseRetriever``.

A run searches one retriever (``ragsafe run --retriever NAME``; default ``chroma``). Every retriever
is built over the run's corpus, chunked and indexed in Chroma as usual, from a
:class:`RetrieverContext`. Built-in names: ``chroma`` (dense, the default), ``bm25``, ``hybrid``
(dense + BM25, reciprocal rank fusion) and ``rerank`` (candidates of one retriever re-ordered by
embedding similarity); ``ragsafe retrievers`` lists them with their params.

Your own, two ways:

* a plugin registering one by name (``@retriever("mine", params=MyParams)`` over
  ``build(ctx, params) -> Retriever | BaseRetriever``), then ``--plugin FILE --retriever mine``;
* ``--retriever my_module:make`` (or ``path/to/file.py:make``): ``make`` is called with the keyword
  arguments it names among ``docs`` (the corpus Documents), ``chunks`` (the chunk Documents of the
  index), ``store`` (the Chroma store), ``dense`` (the Chroma retriever), ``params`` (a dict of the
  ``[key=value,...]`` given after the name) and must return a langchain-core ``BaseRetriever`` (or a
  ragsafe :class:`~ragsafe.retrievers.base.Retriever`); a ``BaseRetriever`` is adapted by
  :class:`~ragsafe.retrievers.base.LangChainRetriever`.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any, Callable

from langchain_core.documents import Document

from ragsafe.config import ConfigError
from ragsafe.params import parse_params
from ragsafe.plugins import load_plugin
from ragsafe.registry import Registry
from ragsafe.retrievers.base import Retriever, as_retriever

DEFAULT = "chroma"
"""The retriever of a run that names none (the paper's dense search)."""

BUILTIN = ("chroma", "bm25", "hybrid", "rerank")
"""The names :mod:`ragsafe.retrievers.builtin` registers (for help texts, without importing Chroma)."""

FACTORY_KWARGS = ("docs", "chunks", "store", "dense", "params")
"""What a ``module:factory`` may ask for, by parameter name."""


@dataclasses.dataclass
class RetrieverContext:
    """What a retriever is built from: the run's corpus and its Chroma index
    (:func:`ragsafe.retrievers.builtin.context` makes one from a store)."""

    store: Any
    """The Chroma store of the run's corpus and chunking (:class:`~ragsafe.retrievers.chroma.ChromaStore`)."""
    dense: Retriever
    """Dense search over :attr:`store`."""
    chunks: Callable[[], list[Document]]
    """The chunk Documents of the index (read back from the store when called)."""
    docs: list[Document] | None = None
    """The corpus Documents (before chunking), when the run loaded them."""


@dataclasses.dataclass(frozen=True)
class RetrieverSpec:
    name: str
    build: Callable[[RetrieverContext, Any], Any]
    params: type
    doc: str = ""

    def make_params(self, overrides: dict[str, Any] | None = None):
        return parse_params(self.params, overrides or {}, where=f"retriever {self.name}")


retrievers: Registry[RetrieverSpec] = Registry("retriever", modules=("ragsafe.retrievers.builtin",))


@dataclasses.dataclass(frozen=True, kw_only=True)
class NoParams:
    pass


def retriever(name: str, *, params: type = NoParams):
    """Register ``build(ctx: RetrieverContext, params) -> Retriever | BaseRetriever`` under ``name``.

    Example:
        >>> @retriever("bm25_only", params=MyParams)   # doctest: +SKIP
        ... def build(ctx, params): return BM25Retriever(ctx.chunks, k1=params.k1)
    """

    def deco(fn):
        retrievers.add(name, RetrieverSpec(name, fn, params, (fn.__doc__ or "").strip()))
        return fn

    return deco


_SPEC = re.compile(r"^\s*([^\[\]]+?)\s*(?:\[(.*)\])?\s*$", re.S)


def parse_retriever(text: str) -> tuple[str, dict[str, str]]:
    """``"hybrid[weights=1,1]"`` -> ``("hybrid", {"weights": "1,1"})``; pairs split on ``;`` or ``,``
    before a ``key=`` (so a value may hold commas)."""
    m = _SPEC.match(text or "")
    if not m:
        raise ConfigError(f"--retriever {text!r}: expected NAME, NAME[key=value,...] or module:factory")
    name, inner = m.group(1), m.group(2) or ""
    params: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in re.split(r"[;,](?=\s*[A-Za-z_]\w*\s*=)", inner))):
        if "=" not in part:
            raise ConfigError(f"--retriever {text!r}: {part!r} is not key=value")
        k, v = part.split("=", 1)
        params[k.strip()] = v.strip()
    return name, params


def describe_choice(text: str) -> dict[str, Any]:
    """The retriever choice as recorded in the run's identity: name and params."""
    name, params = parse_retriever(text)
    return {"name": name, "params": params}


def _factory(target: str) -> Callable[..., Any]:
    module, _, attr = target.rpartition(":")
    mod = load_plugin(module, flag="--retriever")
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise ConfigError(f"--retriever {target}: {module} has no callable {attr!r}")
    return fn


def _call_factory(fn: Callable[..., Any], target: str, ctx: RetrieverContext, params: dict[str, str]) -> Any:
    offered: dict[str, Callable[[], Any]] = {"docs": lambda: ctx.docs, "chunks": ctx.chunks,
                                             "store": lambda: ctx.store, "dense": lambda: ctx.dense,
                                             "params": lambda: dict(params)}
    sig = inspect.signature(fn)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    names = list(offered) if takes_any else [n for n in sig.parameters if n in offered]
    missing = [n for n, p in sig.parameters.items() if n not in offered and p.default is p.empty
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise ConfigError(f"--retriever {target}: the factory asks for {missing}; it may take only "
                          f"{', '.join(FACTORY_KWARGS)} (by name)")
    if params and "params" not in names:
        raise ConfigError(f"--retriever {target}: params {sorted(params)} given but the factory takes no 'params'")
    try:
        return fn(**{n: offered[n]() for n in names})
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"--retriever {target}: the factory failed: {type(e).__name__}: {e}") from None


def build_retriever(text: str, ctx: RetrieverContext) -> Retriever:
    """The retriever a run's ``--retriever`` names, built over ``ctx``.

    Raises:
        ConfigError: unknown name (the message lists the valid ones), bad params, a factory that
            cannot be imported or fails, or a result that is no retriever.
    """
    name, params = parse_retriever(text or DEFAULT)
    if ":" in name:
        obj = _call_factory(_factory(name), name, ctx, params)
    else:
        spec = retrievers.get(name)
        obj = spec.build(ctx, spec.make_params(params))
    try:
        return as_retriever(obj)
    except TypeError as e:
        raise ConfigError(f"--retriever {text}: {e}; return a langchain-core BaseRetriever") from None


def check_retriever(text: str) -> None:
    """Fail early (before any index is built) on an unknown name or bad params of a registered retriever."""
    name, params = parse_retriever(text or DEFAULT)
    if ":" not in name:
        retrievers.get(name).make_params(params)
    else:
        _factory(name)
