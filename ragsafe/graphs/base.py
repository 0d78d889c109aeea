"""What every graph shares: state, dependencies, the registry, tracing, the answer node.

A graph is a factory ``build(deps, params) -> CompiledStateGraph`` registered with
:func:`graph`. Dependencies (LLM client, retriever) come in through :class:`Deps`; nodes never
build clients. Each node returns only the keys it changes; ``trace`` and ``queries`` accumulate.

Why closures and not LangGraph's ``context_schema`` / ``Runtime``: standard_rag and corrective_rag
were written both ways (``StateGraph(State, context_schema=Deps)``, nodes taking the run's
``Deps`` from ``runtime.context``, ``ainvoke(..., context=deps)``). The graph files did not get
simpler: params still have to be closed over (ablation switches decide which nodes and edges
exist), so the factory stays and only ``deps`` moves from the closure into every node's
signature. The shared parts got bigger: ``traced`` must forward the runtime (and hide the wrapped
signature LangGraph inspects), ``as_node`` must pass the context on to a subgraph, hybrid_rag's
lazily built fusion needs a per-context cache, every ``ainvoke`` must remember ``context=``
(forgetting it fails inside a node at run time, not at build), and every user graph's
``build(deps, params)`` would break. CPU per invocation showed no difference beyond noise (no-I/O
fakes, interleaved blocks, a shared 2-core machine: two runs of opposite sign within 10 %). The one
gain, self_consistency with ``resample="graph"`` not rebuilding the inner graph per sample, is
worth ~2-5 ms of CPU per sample against a model call's hundreds.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import time
import typing
from typing import Annotated, Any, Callable, TypedDict

from langchain_core.documents import Document

from ragsafe.agents import answer as answer_agent
from ragsafe.config import AnswerPolicy, ConfigError
from ragsafe.corpora.schema import Question
from ragsafe.llm.client import LLM
from ragsafe.registry import Registry
from ragsafe.retrievers.base import Retriever


class State(TypedDict, total=False):
    question: Question
    queries: Annotated[list[str], operator.add]
    chunks: list[Document]
    context: str | None
    letter: str | None
    answer: dict[str, Any]
    trace: Annotated[list[dict[str, Any]], operator.add]


@dataclasses.dataclass
class Deps:
    """What a graph may use. Built once per run by the runner (or by a test).

    The clients and facts about them, plus the run's answer policy as one typed object
    (``deps.policy.max_tokens``): decoding settings are not loose fields beside the clients.
    """

    llm: LLM
    retriever: Retriever | None = None
    context_window: int | None = None
    """The model's context size in tokens, when known."""
    count_tokens: Callable[[str], int] | None = None
    """A tokenizer's counter for budgets (the embedder's when the runner retrieves)."""
    policy: AnswerPolicy = dataclasses.field(default_factory=AnswerPolicy)
    """How the answer call is made (mode, max_tokens, temperature, seed)."""
    questions: list[Question] | None = None
    """The benchmark's questions (graphs that draw distractors from other questions read them)."""


@dataclasses.dataclass(frozen=True)
class GraphSpec:
    name: str
    build: Callable[..., Any]
    params: type
    needs_retriever: bool | Callable[[Any], bool] = False
    paper_condition: str | None = None
    doc: str = ""

    def make_params(self, overrides: dict[str, Any] | None = None):
        return parse_params(self.params, overrides or {}, where=self.name)

    def retrieves(self, params: Any) -> bool:
        """Whether this graph, with these params, needs a retriever (a wrapper asks its inner graph)."""
        nr = self.needs_retriever
        return bool(nr(params) if callable(nr) else nr)


graphs: Registry[GraphSpec] = Registry("graph")


@dataclasses.dataclass(frozen=True, kw_only=True)
class NoParams:
    pass


def graph(name: str, *, params: type = NoParams, needs_retriever: bool | Callable[[Any], bool] = False,
          paper_condition: str | None = None):
    """Register a graph factory under ``name``.

    Example:
        >>> @graph("my_rag", params=MyParams, needs_retriever=True)   # doctest: +SKIP
        ... def build(deps: Deps, params: MyParams): ...
    """

    def deco(fn):
        doc = fn.__doc__ or (fn.__module__ and __import__(fn.__module__, fromlist=["_"]).__doc__) or ""
        graphs.add(name, GraphSpec(name, fn, params, needs_retriever, paper_condition, doc.strip()))
        return fn

    return deco


def param_docs(cls: type) -> dict[str, str]:
    """Field docstrings (the string literal under each field) of a params dataclass."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    docs, body = {}, tree.body[0].body
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr) \
                and isinstance(getattr(b, "value", None), ast.Constant) and isinstance(b.value.value, str):
            docs[a.target.id] = " ".join(b.value.value.split())
    return docs


def _coerce(value: Any, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}={value!r}: expected {typ}")
    if typ is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}={value!r}: expected true/false")
    if typ in (int, float, str):
        if isinstance(value, (dict, list, tuple, set)):  # str({...}) would pass as a bogus string
            raise ConfigError(f"{key}={value!r}: expected {typ.__name__}")
        try:
            if typ is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return typ(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={value!r}: expected {typ.__name__}") from None
    return value


def parse_params(cls: type, overrides: dict[str, Any], where: str = "") -> Any:
    """Build ``cls`` from string/typed overrides; unknown keys and bad values name the key."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = set(overrides) - set(fields)
    if unknown:
        valid = ", ".join(sorted(fields)) or "(none)"
        raise ConfigError(f"unknown parameter(s) {sorted(unknown)} for {where or cls.__name__}; valid: {valid}")
    kw = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in overrides.items()}
    try:
        return cls(**kw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def traced(name: str):
    """Wrap an async node: time it and append one trace entry built from its ``_trace`` key."""

    def deco(fn):
        @functools.wraps(fn)
        async def run(state: State) -> dict[str, Any]:
            t0 = time.perf_counter()
            out = dict(await fn(state) or {})
            info = out.pop("_trace", {})
            out["trace"] = [{"node": name, "seconds": round(time.perf_counter() - t0, 4), **info}]
            return out

        return run

    return deco


def call_info(role: str, prompt_hash: str, calls: list[dict], output: Any = None, **extra) -> dict[str, Any]:
    """A trace fragment for LLM calls: the role, its prompt's hash, tokens, latency, the parsed output."""
    return {"role": role, "prompt_hash": prompt_hash, "llm_calls": calls, "output": output, **extra}


def retrieval_info(query: str, docs: list[Document], k: int) -> dict[str, Any]:
    return {"retrieval": {"query": query, "k": k,
                          "hits": [{"chunk_id": d.metadata.get("chunk_id"), "doc_id": d.metadata.get("doc_id"),
                                    "score": d.metadata.get("score"), "rank": d.metadata.get("rank")}
                                   for d in docs]}}


def join_chunks(docs: list[Document]) -> str:
    return answer_agent.CHUNK_SEPARATOR.join(d.page_content.strip() for d in docs)


def make_answer_node(deps: Deps, name: str = "answer", *, abstain: bool = False):
    """The shared answerer node: the paper's prompt over ``state['context']`` (``abstain``: the model
    may answer "insufficient evidence", recorded as an abstention)."""
    prompt_hash = answer_agent.ABSTAIN_PROMPT_HASH if abstain else answer_agent.ANSWER_PROMPT_HASH

    @traced(name)
    async def answer_node(state: State) -> dict[str, Any]:
        q = state["question"]
        a = await answer_agent.answer(deps.llm, q.question, q.options, state.get("context"),
                                      mode=deps.policy.answer_mode, max_tokens=deps.policy.max_tokens,
                                      temperature=deps.policy.temperature, seed=deps.policy.seed, abstain=abstain)
        ans = {"letter": a.letter, "raw": a.raw, "letter_dist": a.letter_dist, "source": a.source,
               "messages": a.call["request"].get("messages")}
        if a.reasoning:  # a reasoning model's separate thinking, kept for audit and the judge
            ans["reasoning"] = a.reasoning
        return {"letter": a.letter, "answer": ans,
                "_trace": call_info("answer", prompt_hash, [answer_agent.call_summary(a.call)], output=a.letter,
                                    **({"abstained": True} if a.source == "abstention" else {}))}

    return answer_node


def as_node(app, name: str | None = None):
    """Use a compiled graph as a node of another graph, wherever it sits.

    The subgraph runs on the parent's state with empty accumulators (``trace``, ``queries``) and
    returns only what it added, so the parent's reducers do not append earlier entries twice.
    """

    async def node(state: State) -> dict[str, Any]:
        out = await app.ainvoke({**state, "trace": [], "queries": []})
        return {k: v for k, v in out.items() if k != "question"}

    node.__name__ = name or "subgraph"
    return node
