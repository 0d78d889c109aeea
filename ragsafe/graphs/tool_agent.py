"""Tool-calling agent: the model gets the retriever as a tool and decides whether, what and how often to search.

The way most engineers build agentic RAG with LangGraph today: at each step the model either
calls ``search(query)`` or ``answer()``. Up to ``max_steps`` searches run; then (or as soon as the
model chooses to answer) the paper's answer prompt is asked over every passage found, so the
letter is parsed, scored and compared exactly as for the other graphs. ``max_steps=0`` asks no
decision at all: the answer prompt with no context, the closed book with the same scaffold.

Two routes to the decision, recorded per step (``route`` in the trace):

- ``native``: OpenAI tools (``tools`` + ``tool_choice="required"``); the reply's ``tool_calls``
  say what to do. A reply without a tool call (a server that ignores ``tool_choice``) ends the
  search (``ignored_tools`` in the trace).
- ``json``: a JSON-Schema reply ``{"action": "search", "query": …}`` or ``{"action": "answer"}``
  for servers without native tool calling (the embedded llama.cpp server: it makes a tool call
  only for a named ``tool_choice``, which leaves the model no choice). A reply that does not parse
  is a counted fallback that ends the search.
- ``auto`` (default): native where the endpoint is known to make tool calls, JSON where it is
  known not to; the first decision on an unknown endpoint goes native and, when no tool call comes
  back, is asked again as JSON and the endpoint is marked (once per endpoint, ``caps["tools"]``).

Every search is traced (query sent, hits, the decision call's tokens), so attribution and cost
work as for every other graph.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import openai
from langchain_core.documents import Document
from langgraph.graph import END, START, StateGraph

from ragsafe.agents.answer import call_summary, format_options, prompt_hash
from ragsafe.agents.structured import STR, ask_structured, obj_schema
from ragsafe.graphs.base import Deps, State, call_info, graph, join_chunks, make_answer_node, retrieval_info, traced
from ragsafe.llm.errors import rejects

SYSTEM = (
    "You are an expert radiologist researching a multiple-choice question before it is answered. You can "
    "search a reference corpus of radiology text. Search when evidence would help, with short specific "
    "queries (a finding, a sign, a diagnosis); do not repeat a search. When the evidence found is enough, "
    "or more searching will not help, stop and answer."
)
NATIVE_USER = "Question: {question}\n\nOptions:\n{options}\n\nSearch the corpus with the search tool, or call answer."
JSON_USER = (
    "Question: {question}\n\nOptions:\n{options}\n\nSearches so far:\n{log}\n\nSearches left: {left}. Reply with "
    'JSON only: {{"action": "search", "query": "<what to look up>"}} to search the corpus, or '
    '{{"action": "answer"}} to stop and answer.'
)
AGENT_PROMPT_HASH = prompt_hash(SYSTEM, NATIVE_USER, JSON_USER)
SEARCH_TOOL = {"type": "function", "function": {
    "name": "search", "description": "Search the radiology reference corpus; returns the most relevant passages.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "what to look up"}},
                   "required": ["query"]}}}
ANSWER_TOOL = {"type": "function", "function": {
    "name": "answer", "description": "Stop searching; the question is answered from the passages found.",
    "parameters": {"type": "object", "properties": {}}}}
ACTION_SCHEMA = obj_schema({"action": {"type": "string", "enum": ["search", "answer"]}}, {"query": STR})
PASSAGE_CHARS = 600
"""Characters of each passage the agent sees while deciding (the answer prompt gets whole chunks)."""
ROUTES = ("auto", "native", "json")
NATIVE_MAX_TOKENS = 60
"""Budget of a native decision: a tool call is short; a server that ignores tools writes at most this much."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    max_steps: int = 3
    """Searches the model may make before it must answer (0: no search, the closed book with the same prompt)."""
    k: int = 3
    """Passages returned by each search call."""
    search_options: bool = False
    """Append the question's options to every query the search tool receives."""
    route: str = "auto"
    """How the model decides: "native" (OpenAI tool calls), "json" (a JSON-Schema action reply), or "auto"
    (native where the endpoint makes tool calls, else JSON; learnt once per endpoint)."""

    def __post_init__(self) -> None:
        if self.max_steps < 0:
            raise ValueError(f"max_steps={self.max_steps}: must be >= 0")
        if self.k < 1:
            raise ValueError(f"k={self.k}: must be >= 1")
        if self.route not in ROUTES:
            raise ValueError(f"route={self.route!r}: choose one of {ROUTES}")

    def expected_llm_calls(self, n_options: int | None = None) -> tuple[int, int]:
        """``max_steps=0``: 1 (the answer). Else 1 answer + 1 to ``max_steps`` decisions (a search after
        the last allowed one is never asked); ``auto`` may ask the first decision twice (native, then JSON)
        on an endpoint not yet known to make tool calls."""
        if self.max_steps == 0:
            return (1, 1)
        return (2, self.max_steps + 1 + (1 if self.route == "auto" else 0))


class ToolState(State, total=False):
    steps: int
    action: dict[str, Any]
    tool_messages: list[dict[str, Any]]
    log: list[dict[str, Any]]


def _caps(llm) -> dict[str, Any]:
    """The endpoint's capabilities (its gate's, shared by its clients; a test double keeps its own)."""
    gate = getattr(llm, "gate", None)
    if gate is not None and hasattr(gate, "caps"):
        return gate.caps
    return llm.__dict__.setdefault("_ragsafe_caps", {})


def _passages(docs: list[Document]) -> str:
    return "\n".join(f"[{i + 1}] {' '.join(d.page_content.split())[:PASSAGE_CHARS]}" for i, d in enumerate(docs)) \
        or "(no passages found)"


def _parse_args(raw: Any) -> dict:
    if isinstance(raw, dict):
        return raw
    try:
        out = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


@graph("tool_agent", params=Params, needs_retriever=lambda p: p.max_steps > 0)
def build(deps: Deps, params: Params):
    async def native(state: ToolState) -> tuple[dict, dict]:
        q = state["question"]
        msgs = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": NATIVE_USER.format(question=q.question.strip(),
                                                               options=format_options(q.options))},
                *(state.get("tool_messages") or [])]
        try:
            comp = await deps.llm.chat(msgs, temperature=deps.policy.temperature, max_tokens=NATIVE_MAX_TOKENS,
                                       seed=deps.policy.seed, tools=[SEARCH_TOOL, ANSWER_TOOL], tool_choice="required")
        except openai.APIStatusError as e:
            # vLLM without --tool-call-parser answers 400 "tool_choice=required requires --tool-call-parser"
            if params.route == "native" or not rejects(e, "tool"):
                raise
            return {"action": "answer", "ignored_tools": True, "refused": str(e)[:200]}, {"route": "native",
                                                                                            "llm_calls": [{}]}
        calls = comp.tool_calls or []
        info = {"route": "native", "llm_calls": [call_summary(comp.to_record())]}
        if not calls:
            return {"action": "answer", "ignored_tools": True}, info
        c = calls[0]
        args = _parse_args(c.get("arguments"))
        if c.get("name") == "search" and str(args.get("query") or "").strip():
            return {"action": "search", "query": str(args["query"]).strip(), "call_id": c.get("id") or "call_0",
                    "arguments": c.get("arguments")}, info
        return {"action": "answer"}, info

    async def as_json(state: ToolState) -> tuple[dict, dict]:
        q = state["question"]
        log = "\n".join(f"{i + 1}. {e['query']}\n{e['passages']}" for i, e in enumerate(state.get("log") or [])) \
            or "(none yet)"
        user = JSON_USER.format(question=q.question.strip(), options=format_options(q.options), log=log,
                                left=params.max_steps - (state.get("steps") or 0))

        def validate(obj: dict) -> dict:
            action = obj.get("action")
            if action == "search":
                query = str(obj.get("query") or "").strip()
                if not query:
                    raise ValueError("search without a query")
                return {"action": "search", "query": query}
            if action == "answer":
                return {"action": "answer"}
            raise ValueError(f"action {action!r} is neither search nor answer")

        s = await ask_structured(deps.llm, SYSTEM, user, validate=validate, fallback={"action": "answer"},
                                 max_tokens=60, temperature=deps.policy.temperature, seed=deps.policy.seed,
                                 prompt_hash=AGENT_PROMPT_HASH, schema=ACTION_SCHEMA)
        info = {"route": "json", **{k: v for k, v in s.trace("agent").items() if k in ("llm_calls", "fallback",
                                                                                      "fallback_reason")}}
        return s.value, info

    @traced("decide")
    async def decide(state: ToolState) -> dict:
        caps = _caps(deps.llm)
        route = params.route
        if route == "auto":
            route = "json" if caps.get("tools") is False else "native"
        probe_calls: list[dict] = []
        probed = None
        if route == "native":
            action, info = await native(state)
            if params.route == "auto" and info.get("llm_calls") and action.get("ignored_tools") \
                    and caps.get("tools") is None:
                caps["tools"] = False  # the endpoint makes no tool calls: this decision and later ones as JSON
                probe_calls = [c for c in info["llm_calls"] if c]  # a refused request made no completion
                probed = ("the server refused tool_choice: asked again as JSON" if action.get("refused")
                          else "no tool call came back: asked again as JSON")
                action, info = await as_json(state)
            elif "call_id" in action:
                caps["tools"] = True
        else:
            action, info = await as_json(state)
        calls = probe_calls + info.pop("llm_calls", [])
        extra = {k: v for k, v in info.items() if k != "route"}
        if probed:
            extra["native_probe"] = probed
        if action.get("ignored_tools"):
            extra["ignored_tools"] = True
        return {"action": action,
                "_trace": call_info("agent", AGENT_PROMPT_HASH, calls, output={k: action.get(k) for k in
                                                                               ("action", "query")},
                                    route=info["route"], step=(state.get("steps") or 0) + 1, **extra)}

    @traced("search")
    async def search(state: ToolState) -> dict:
        q, action = state["question"], state["action"]
        query = action["query"] + ("\n" + format_options(q.options) if params.search_options else "")
        docs = await deps.retriever.search(query, params.k)
        seen = {d.metadata.get("chunk_id") for d in state.get("chunks") or []}
        found = list(state.get("chunks") or []) + [d for d in docs if d.metadata.get("chunk_id") not in seen]
        text = _passages(docs)
        out: dict[str, Any] = {"queries": [query], "chunks": found, "steps": (state.get("steps") or 0) + 1,
                               "log": [*(state.get("log") or []), {"query": action["query"], "passages": text}],
                               "_trace": {**retrieval_info(query, docs, params.k),
                                          "tool": {"name": "search", "query": action["query"],
                                                   "step": (state.get("steps") or 0) + 1,
                                                   "call_id": action.get("call_id"), "new_chunks": len(found) -
                                                   len(seen)}}}
        if "call_id" in action:  # the native route: the conversation carries the call and its result
            out["tool_messages"] = [*(state.get("tool_messages") or []),
                                    {"role": "assistant", "content": None, "tool_calls": [
                                        {"id": action["call_id"], "type": "function",
                                         "function": {"name": "search", "arguments": action.get("arguments") or
                                                      json.dumps({"query": action["query"]})}}]},
                                    {"role": "tool", "tool_call_id": action["call_id"], "content": text}]
        return out

    @traced("gather")
    async def gather(state: ToolState) -> dict:
        docs = state.get("chunks") or []
        return {"context": join_chunks(docs) if docs else None,
                "_trace": {"searches": state.get("steps") or 0, "chunks": len(docs)}}

    def after_decide(state: ToolState) -> str:
        return "search" if state["action"].get("action") == "search" else "gather"

    def after_search(state: ToolState) -> str:
        return "decide" if (state.get("steps") or 0) < params.max_steps else "gather"

    builder = StateGraph(ToolState)
    builder.add_node("answer", make_answer_node(deps))
    if params.max_steps == 0:
        builder.add_edge(START, "answer")
    else:
        builder.add_node("decide", decide)
        builder.add_node("search", search)
        builder.add_node("gather", gather)
        builder.add_edge(START, "decide")
        builder.add_conditional_edges("decide", after_decide, {"search": "search", "gather": "gather"})
        builder.add_conditional_edges("search", after_search, {"decide": "decide", "gather": "gather"})
        builder.add_edge("gather", "answer")
    builder.add_edge("answer", END)
    return builder.compile()
