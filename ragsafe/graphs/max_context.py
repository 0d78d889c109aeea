"""Max context: ranked chunks fill the model's context window minus a reserve (the paper's condition).

The prompt (system + user message with the chunks) may use ``window - max_tokens - reserve``
tokens: ``max_tokens`` for the answer, ``reserve`` for the chat template and slack. The window is
the ``window`` param, else ``Deps.context_window`` (the runner sets the embedded server's
``n_ctx``), else the endpoint's ``/v1/models`` metadata when it reports one (vLLM's
``max_model_len``). Tokens are counted, in order of preference, by the LLM server's own
tokenizer (llama-cpp-python ``POST /extras/tokenize``; llama.cpp's and vLLM's ``POST /tokenize``), by
``Deps.count_tokens`` (the embedder's tokenizer, inflated by ``margin`` since it is not the
model's), or by characters / 3. Chunks are taken in rank order until the next one does not fit,
judged by the whole prompt as sent (trimmed or extended one chunk at a time), so the limit holds
by the counter that was used and one more ranked chunk would break it. The trace records the
counter, the window and where it came from.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from typing import Any, Awaitable, Callable

import httpx

from ragsafe.agents import answer as answer_agent
from ragsafe.config import ConfigError
from ragsafe.graphs.base import Deps, State, graph, join_chunks, retrieval_info, then_answer, traced
from ragsafe.graphs.standard_rag import check_query, query_text

PROBE_TEXT = "Tokenizer probe: pleural effusion."
_http_client = httpx.AsyncClient
"""Factory of the HTTP client used to reach the server (tests swap in a mock transport)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    reserve: int = 128
    """Tokens kept free besides the answer's max_tokens: chat-template tokens and slack."""
    window: int | None = None
    """Context window in tokens; overrides the endpoint's (needed for a remote endpoint that reports
    none)."""
    counter: str = "auto"
    """Token counter: "auto" (server tokenizer, else the embedder's, else characters), "server",
    "embedder" or "chars"."""
    margin: float = 0.15
    """Inflation of counts that are not the model's own tokenizer (embedder, characters): 0.15 counts 15% more."""
    query: str = "question"
    """Retrieval query: "question" (the paper's) or "question+options"."""
    max_chunks: int = 400
    """Most chunks ever retrieved to fill the window."""

    def __post_init__(self) -> None:
        if self.reserve < 0:
            raise ValueError(f"reserve={self.reserve}: must be >= 0")
        if self.window is not None and self.window < 1:
            raise ValueError(f"window={self.window}: must be >= 1")
        if self.counter not in ("auto", "server", "embedder", "chars"):
            raise ValueError(f"counter={self.counter!r}: choose auto, server, embedder or chars")
        if self.margin < 0:
            raise ValueError(f"margin={self.margin}: must be >= 0")
        check_query(self.query)
        if self.max_chunks < 1:
            raise ValueError(f"max_chunks={self.max_chunks}: must be >= 1")

    def expected_llm_calls(self, n_options: int | None = None) -> int | tuple[int, int]:
        """1: the answer. Token counting (server tokenizer, embedder or characters) is not an LLM call."""
        return 1


@dataclasses.dataclass
class Counter:
    """A token counter and the name the trace records for it."""

    name: str
    count: Callable[[str], Awaitable[int]]


def server_root(llm: Any) -> str | None:
    """``http://host:port`` of an OpenAI-compatible ``base_url`` (``…/v1``), or None."""
    base = getattr(llm, "base_url", None)
    if not isinstance(base, str) or "://" not in base:
        return None
    base = base.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


async def server_counter(llm: Any, timeout: float = 10.0) -> Counter | None:
    """The server's own tokenizer when one of the known endpoints answers, else None."""
    root = server_root(llm)
    if root is None:
        return None
    model = getattr(llm, "model", None)
    # (path, request body, reader of the token count)
    routes = [
        ("/extras/tokenize", lambda t: {"input": t, "model": model}, lambda j: len(j["tokens"])),
        # llama.cpp's llama-server reads "content", vLLM reads "model" and "prompt"; both answer "tokens"
        ("/tokenize", lambda t: {"content": t, "prompt": t, "model": model}, lambda j: len(j["tokens"])),
    ]
    for path, body, read in routes:
        try:
            async with _http_client(timeout=timeout) as http:
                r = await http.post(root + path, json=body(PROBE_TEXT))
            if r.status_code != 200 or read(r.json()) < 1:
                continue
        except (httpx.HTTPError, OSError, ValueError, KeyError, TypeError):
            continue

        async def count(text: str, _path=path, _body=body, _read=read) -> int:
            async with _http_client(timeout=timeout) as http:
                r = await http.post(root + _path, json=_body(text))
                r.raise_for_status()
                return _read(r.json())

        return Counter(f"server:{path}", count)
    return None


async def window_from_server(llm: Any, timeout: float = 10.0) -> int | None:
    """``max_model_len`` (vLLM) of this model from ``/v1/models``, when the server reports it."""
    base = getattr(llm, "base_url", None)
    if not isinstance(base, str) or "://" not in base:
        return None
    try:
        async with _http_client(timeout=timeout) as http:
            r = await http.get(base.rstrip("/") + "/models")
        data = r.json().get("data") or []
    except (httpx.HTTPError, OSError, ValueError, AttributeError):
        return None
    model = getattr(llm, "model", None)
    for m in sorted(data, key=lambda m: m.get("id") != model):  # this model's entry first
        for key in ("max_model_len", "context_length", "context_window"):
            v = m.get(key) if isinstance(m, dict) else None
            if isinstance(v, int) and v > 0:
                return v
    return None


def local_counter(deps: Deps, params: Params, which: str) -> Counter:
    factor = 1.0 + params.margin
    if which == "embedder":
        if deps.count_tokens is None:
            raise ConfigError("max_context counter=embedder needs Deps.count_tokens (the embedder's tokenizer)")
        fn = deps.count_tokens

        async def count(text: str) -> int:
            return math.ceil(fn(text) * factor)

        return Counter(f"embedder(+{params.margin:.0%})", count)

    async def by_chars(text: str) -> int:
        return math.ceil(len(text) / 3 * factor)

    return Counter(f"chars/3(+{params.margin:.0%})", by_chars)


async def resolve_counter(deps: Deps, params: Params) -> Counter:
    if params.counter in ("auto", "server"):
        c = await server_counter(deps.llm)
        if c is not None:
            return c
        if params.counter == "server":
            raise ConfigError(f"max_context counter=server: no tokenizer endpoint answered at "
                              f"{server_root(deps.llm) or '(no base_url)'} (tried /extras/tokenize, /tokenize)")
    if params.counter in ("auto", "embedder") and deps.count_tokens is not None:
        return local_counter(deps, params, "embedder")
    if params.counter == "embedder":
        return local_counter(deps, params, "embedder")  # raises the clear error
    return local_counter(deps, params, "chars")


async def resolve_window(deps: Deps, params: Params) -> tuple[int, str]:
    if params.window:
        return params.window, "param"
    if deps.context_window:
        return deps.context_window, "deps"
    w = await window_from_server(deps.llm)
    if w:
        return w, "server:/v1/models"
    raise ConfigError("max_context needs the model's context window: the endpoint reports none; set "
                      "max_context.window=N (or the endpoint's context_window)")


def prompt_text(question, context: str | None) -> str:
    """The text the answer prompt sends (system + user), as counted against the window."""
    msgs = answer_agent.build_messages(question.question, question.options, context)
    return "\n".join(m["content"] for m in msgs)


COUNT_SLOTS = 8
"""Token-count requests in flight at once (the server tokenizer is one HTTP call per chunk)."""


@graph("max_context", params=Params, needs_retriever=True, paper_condition="context_max")
def build(deps: Deps, params: Params):
    resolved: dict[str, Any] = {}

    async def setup() -> tuple[Counter, int, str]:
        # probed once per built graph (a concurrent first probe only repeats the same answer)
        if not resolved:
            resolved["counter"] = await resolve_counter(deps, params)
            resolved["window"] = await resolve_window(deps, params)
        return resolved["counter"], *resolved["window"]

    @traced("fill")
    async def fill(state: State) -> dict:
        q = state["question"]
        counter, window, window_source = await setup()
        limit = window - deps.policy.max_tokens - params.reserve
        base = await counter.count(prompt_text(q, None))
        sep = await counter.count(answer_agent.CHUNK_SEPARATOR)
        # a prompt with context also carries the blank line after it; count it with the separator
        budget = limit - base - sep
        query = query_text(state, params.query)
        sizes: dict[str, int] = {}
        slots = asyncio.Semaphore(COUNT_SLOTS)

        async def size(d) -> int:
            async with slots:
                return await counter.count(d.page_content.strip())

        pool = min(params.max_chunks, max(8, budget // 150 + 4))
        while True:
            docs = await deps.retriever.search(query, pool)
            todo = [d for d in docs if d.metadata.get("chunk_id") not in sizes]
            counts = await asyncio.gather(*(size(d) for d in todo))
            sizes.update({d.metadata.get("chunk_id"): n for d, n in zip(todo, counts)})
            chosen, used, full = [], 0, False
            for d in docs:
                n = sizes[d.metadata.get("chunk_id")] + (sep if chosen else 0)
                if used + n > budget:
                    full = True
                    break
                chosen.append(d)
                used += n
            if full or len(docs) < pool or pool >= params.max_chunks:
                break
            pool = min(params.max_chunks, pool * 2)
        # Per-chunk sums only estimate the prompt (tokens merge across joins, margins round up), so
        # the whole prompt, counted as sent, decides: trim the tail until it fits, or else take
        # further ranked chunks while they still fit.
        async def whole(n: int) -> int:
            return await counter.count(prompt_text(q, join_chunks(docs[:n]) if n else None))

        n = len(chosen)
        total = await whole(n)
        trimmed = extended = 0
        while n and total > limit:
            n, trimmed = n - 1, trimmed + 1
            total = await whole(n)
        while not trimmed and n < len(docs):
            trial = await whole(n + 1)
            if trial > limit:
                full = True
                break
            n, total, extended = n + 1, trial, extended + 1
        chosen = docs[:n]
        info = {**retrieval_info(query, chosen, pool), "counter": counter.name, "window": window,
                "window_source": window_source, "reserve": params.reserve, "answer_tokens": deps.policy.max_tokens,
                "limit": limit, "prompt_tokens": total, "chunks": len(chosen), "retrieved": len(docs),
                "trimmed": trimmed, "extended": extended, "window_full": full, "fits": total <= limit}
        return {"queries": [query], "chunks": chosen, "context": join_chunks(chosen) if chosen else None,
                "_trace": info}

    return then_answer(deps, "fill", fill)
