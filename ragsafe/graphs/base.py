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

Why the answer policy stays in ``Deps`` (``deps.policy``): it left ``EndpointConfig`` (a server is not
a decoding setting), and moving it on into the state was tried on corrective_rag and
self_consistency (``State.policy``, set by the runner's ``ainvoke``; nodes read ``state["policy"]``).
Two things got worse. A fan-out node receives only its ``Send`` payload, so corrective_rag's grade
fan-out had to copy the policy into every payload (decompose, rerank_rag, query_rewrite and option_research
fan out the same way); and the policy became something every caller of a graph must remember: 27
of the 131 tests of four graph test files (each test or script that invokes a graph directly) failed with
``KeyError: 'policy'`` inside a node, at run time. A default in the state would turn that error into
a silently wrong seed. The gain was again self_consistency building its inner graph once instead of
per sample. The run's policy is fixed for a compiled graph, like its clients, so it is built in with
them; a wrapper that varies it (self-consistency's temperature and seeds) builds its inner graph
with ``dataclasses.replace(deps, policy=...)``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import operator
import textwrap
import time
from typing import Annotated, Any, Callable, Mapping, TypedDict

from langchain_core.documents import Document
from langgraph.graph import END, START, StateGraph

from ragsafe.agents import answer as answer_agent
from ragsafe.config import AnswerPolicy, ConfigError
from ragsafe.corpora.schema import Question
from ragsafe.llm.client import LLM
from ragsafe.params import parse_nested, parse_params  # noqa: F401  (parse_params: re-exported)
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
    (``deps.policy.max_tokens``): decoding settings are not loose fields beside the clients, and
    not state every caller of a graph must pass (the module docstring says why).
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


ROLES = ("floor", "ceiling")
"""Reference roles: every other graph is compared against its model's floor and ceiling."""


@dataclasses.dataclass(frozen=True)
class Wraps:
    """Where a wrapper graph (e.g. self-consistency) names the graph it wraps, in its params."""

    graph: str = "inner"
    """The param holding the inner graph's name."""
    params: str = "inner_params"
    """The param holding the inner graph's params (a mapping, or the text "key=value;key=value")."""


def _field(params: Any, name: str, default: Any = None) -> Any:
    return params.get(name, default) if isinstance(params, Mapping) else getattr(params, name, default)


@dataclasses.dataclass(frozen=True)
class GraphSpec:
    """A registered graph and everything the rest of ragsafe needs to know about it.

    Code outside ``graphs/`` reads these fields instead of testing graph names.
    """

    name: str
    build: Callable[..., Any]
    params: type
    needs_retriever: bool | Callable[[Any], bool] = False
    paper_condition: str | Callable[[Mapping[str, Any]], str | None] | None = None
    """The paper's condition this graph is (RadSaFE export), or a function of the recorded params."""
    doc: str = ""
    role: str | None = None
    """"floor" or "ceiling": the reference every other graph of the same model is compared against."""
    needs_fields: tuple[str, ...] = ()
    """Question fields every question must have (checked up front, before any LLM call)."""
    paper_params: Callable[[str], dict[str, Any] | None] | None = None
    """For a params-dependent ``paper_condition``: condition name -> params (RadSaFE import)."""
    wraps: Wraps | None = None
    """For a wrapper graph: which params name the inner graph and its params."""

    def make_params(self, overrides: dict[str, Any] | None = None):
        return parse_params(self.params, overrides or {}, where=self.name)

    def retrieves(self, params: Any) -> bool:
        """Whether this graph, with these params, needs a retriever (a wrapper asks its inner graph)."""
        nr = self.needs_retriever
        return bool(nr(params) if callable(nr) else nr)

    def inner(self, params: Any) -> tuple["GraphSpec", dict[str, str]] | None:
        """A wrapper's inner graph and its param overrides (params: a dataclass or recorded dict)."""
        if self.wraps is None:
            return None
        name = _field(params, self.wraps.graph) or _default(self.params, self.wraps.graph)
        return graphs.get(name), parse_nested(_field(params, self.wraps.params, "") or "")

    def condition(self, params: Any) -> str | None:
        """The paper's condition name when this variant *is* that condition, else None.

        A wrapper is its inner graph's condition (the paper ran greedy and sampled answers per condition).
        """
        if self.wraps is not None:
            spec, overrides = self.inner(params)
            if spec.wraps is not None:
                return None
            try:
                return spec.condition(spec.make_params(overrides))
            except ConfigError:
                return None
        pc = self.paper_condition
        if callable(pc):
            values = params if isinstance(params, Mapping) else dataclasses.asdict(params)
            return pc(values)
        return pc

    def params_for_condition(self, condition: str) -> dict[str, Any] | None:
        """The params that make this graph the paper's ``condition``; None when it never is."""
        if self.paper_params is not None:
            return self.paper_params(condition)
        return {} if isinstance(self.paper_condition, str) and self.paper_condition == condition else None

    def expected_calls(self, params: Any, n_options: int | None = None) -> tuple[int, int] | None:
        """(fewest, most) LLM calls one question makes; None when the graph does not say.

        A graph tells by a method ``expected_llm_calls(n_options=None)`` on its params returning an
        int, a (low, high) pair or None. Where calls are per option, ``n_options`` is the question's
        option count (None: any count within the benchmark's limits); a method without that
        parameter (an older user graph) is called without it.
        """
        hook = getattr(params, "expected_llm_calls", None)
        if not callable(hook):
            return None
        r = hook(n_options=n_options) if n_options is not None and _takes_n_options(hook) else hook()
        if r is None:
            return None
        return (r, r) if isinstance(r, int) else (int(r[0]), int(r[1]))


def _default(cls: type, name: str) -> Any:
    f = {f.name: f for f in dataclasses.fields(cls)}.get(name)
    return None if f is None or f.default is dataclasses.MISSING else f.default


def _takes_n_options(hook: Callable) -> bool:
    """Whether an ``expected_llm_calls`` method accepts ``n_options`` (inspected once per function)."""
    return _accepts_n_options(getattr(hook, "__func__", hook))


@functools.lru_cache(maxsize=None)
def _accepts_n_options(fn: Callable) -> bool:
    try:
        ps = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "n_options" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               or p.kind is p.VAR_KEYWORD for p in ps)


graphs: Registry[GraphSpec] = Registry("graph", modules=("ragsafe.graphs.*",))


def spec_of(name: str | None) -> GraphSpec | None:
    """The spec of a registered graph, None for a name not registered (e.g. a plugin not loaded)."""
    return graphs.get(name) if name and name in graphs else None


def role_of(name: str | None) -> str | None:
    """"floor", "ceiling" or None for the graph ``name``."""
    spec = spec_of(name)
    return spec.role if spec else None


def graphs_with_role(role: str) -> list[str]:
    """Registered graphs with this role, by name."""
    return [n for n in graphs.names() if graphs.get(n).role == role]


@dataclasses.dataclass(frozen=True, kw_only=True)
class NoParams:
    pass


@dataclasses.dataclass(frozen=True, kw_only=True)
class OneAnswer(NoParams):
    """No params, and one LLM call per question: the answer."""

    def expected_llm_calls(self, n_options: int | None = None) -> int:
        return 1


def graph(name: str, *, params: type = NoParams, needs_retriever: bool | Callable[[Any], bool] = False,
          paper_condition: str | Callable[[Mapping[str, Any]], str | None] | None = None,
          role: str | None = None, needs_fields: tuple[str, ...] | list[str] = (),
          paper_params: Callable[[str], dict[str, Any] | None] | None = None, wraps: Wraps | None = None):
    """Register a graph factory under ``name``.

    Args:
        params: the frozen dataclass of its params (a docstring under each field).
        needs_retriever: whether it searches (or a function of its params, for a wrapper).
        paper_condition: the paper's condition it reproduces (a name, or a function of its params).
        role: "floor" or "ceiling" for a reference graph.
        needs_fields: question fields it reads (e.g. ``("evidence_clean",)``), checked before a run.
        paper_params: condition name -> params, when ``paper_condition`` depends on params.
        wraps: for a wrapper, the params that name the inner graph.

    Example:
        >>> @graph("my_rag", params=MyParams, needs_retriever=True)   # doctest: +SKIP
        ... def build(deps: Deps, params: MyParams): ...
    """
    if role is not None and role not in ROLES:
        raise ValueError(f"graph {name!r}: role={role!r}; choose one of {', '.join(ROLES)} or None")

    def deco(fn):
        doc = fn.__doc__ or (fn.__module__ and __import__(fn.__module__, fromlist=["_"]).__doc__) or ""
        graphs.add(name, GraphSpec(name, fn, params, needs_retriever, paper_condition, doc.strip(), role,
                                   tuple(needs_fields), paper_params, wraps))
        return fn

    return deco


def param_docs(cls: type) -> dict[str, str]:
    """Field docstrings (the string literal under each field) of a params dataclass."""
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


def then_answer(deps: Deps, name: str, node: Callable, *, abstain: bool = False, one_step: bool = False):
    """The compiled graph ``START -> name -> answer -> END``: one node that puts the context together
    (retrieval, evidence, a report), then the shared answerer; the shape of most graphs here.

    ``one_step`` runs both in one LangGraph node named ``answer`` (state and trace as with two: the
    node's trace step, then the answer's). For a ``node`` that only reads the question: each
    LangGraph step costs about 0.25 ms of CPU per question, as much as the rest of a closed-book
    question's client work (``benchmarks/cli_profile.py``).

    Example:
        >>> app = then_answer(deps, "retrieve", retrieve, abstain=params.abstain)   # doctest: +SKIP
    """
    answerer = make_answer_node(deps, abstain=abstain)
    builder = StateGraph(State)
    if one_step:
        async def answer(state: State) -> dict[str, Any]:
            found = dict(await node(state) or {})
            out = dict(await answerer({**state, **found}))
            return {**found, **out, "trace": (found.get("trace") or []) + out["trace"]}

        builder.add_node("answer", answer)
        builder.add_edge(START, "answer")
    else:
        builder.add_node(name, node)
        builder.add_node("answer", answerer)
        builder.add_edge(START, name)
        builder.add_edge(name, "answer")
    builder.add_edge("answer", END)
    return builder.compile()


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
