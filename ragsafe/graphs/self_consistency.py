"""Self-consistency: any graph, then N sampled answers; ballots recorded for the SaFE-Scale SC metrics.

The inner graph runs once greedily (its letter is the sample's ``letter``) as a node of this graph
— graphs compose. Then ``n`` samples at ``temperature``: with ``resample="answer"`` (the paper's
SC) only the answer call is re-sampled over the greedy run's context; with ``resample="graph"``
the whole inner graph runs again per sample, so every agent step is sampled too. Sample ``i``
uses seed ``base_seed + 1 + i``, so each sample is reproducible and cached on its own.
Majority, confidence and the rest are computed by the metrics from the ballots, never here.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from langgraph.graph import END, START, StateGraph

from ragsafe.agents import answer as answer_agent
from ragsafe.config import ConfigError
from ragsafe.graphs.base import Deps, State, _call_summary, as_node, call_info, graph, graphs, traced


class SCState(State, total=False):
    sc: dict[str, Any]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    inner: str = "closed_book"
    """The graph to wrap (any registered graph)."""
    inner_params: str = ""
    """Params of the inner graph, "key=value;key=value" (e.g. "k=3")."""
    n: int = 20
    """Sampled answers (the paper: 20). 0 switches sampling off (greedy only)."""
    temperature: float = 0.7
    """Sampling temperature of the N samples (the paper: 0.7)."""
    resample: str = "answer"
    """"answer": re-sample only the answer over the greedy context (the paper's SC); "graph": re-run the inner graph."""

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n={self.n}: must be >= 0")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature}: must be >= 0")
        if self.resample not in ("answer", "graph"):
            raise ValueError(f"resample={self.resample!r}: choose 'answer' or 'graph'")
        if self.inner == "self_consistency":
            raise ValueError("inner=self_consistency: self-consistency cannot wrap itself")


def _inner_overrides(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        if "=" not in part:
            raise ConfigError(f"self_consistency.inner_params {text!r}: expected key=value;key=value")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _inner_retrieves(params: Params) -> bool:
    spec = graphs.get(params.inner)
    return spec.retrieves(spec.make_params(_inner_overrides(params.inner_params)))


@graph("self_consistency", params=Params, needs_retriever=_inner_retrieves)
def build(deps: Deps, params: Params):
    spec = graphs.get(params.inner)
    inner_params = spec.make_params(_inner_overrides(params.inner_params))
    if spec.retrieves(inner_params) and deps.retriever is None:
        raise ConfigError(f"self_consistency over {params.inner} needs a retriever")
    inner_app = spec.build(deps, inner_params)
    base_seed = deps.seed or 0

    @traced("sample")
    async def sample(state: SCState) -> dict:
        q = state["question"]

        async def one(i: int) -> dict:
            seed = base_seed + 1 + i
            if params.resample == "answer":
                a = await answer_agent.answer(deps.llm, q.question, q.options, state.get("context"),
                                              mode=deps.answer_mode, max_tokens=deps.max_tokens,
                                              temperature=params.temperature, seed=seed)
                return {"letter": a.letter, "raw": a.raw, "dist": a.letter_dist, "calls": [_call_summary(a.call)]}
            d = dataclasses.replace(deps, temperature=params.temperature, seed=seed)
            st = await spec.build(d, inner_params).ainvoke({"question": q, "queries": [], "trace": []})
            calls = [c for t in st.get("trace") or [] for c in t.get("llm_calls") or []]
            ans = st.get("answer") or {}
            return {"letter": st.get("letter"), "raw": ans.get("raw"), "dist": ans.get("letter_dist"), "calls": calls}

        results = await asyncio.gather(*(one(i) for i in range(params.n)))
        sc = {"n": params.n, "temperature": params.temperature, "resample": params.resample,
              "inner": params.inner, "seeds": [base_seed + 1 + i for i in range(params.n)],
              "ballots": [r["letter"] for r in results], "raw": [r["raw"] for r in results],
              "letter_dists": [r["dist"] for r in results]}
        calls = [c for r in results for c in r["calls"]]
        return {"sc": sc, "_trace": call_info("answer", answer_agent.ANSWER_PROMPT_HASH, calls,
                                              output=sc["ballots"], samples=params.n)}

    builder = StateGraph(SCState)
    builder.add_node("greedy", as_node(inner_app, "greedy"))
    builder.add_node("sample", sample)
    builder.add_edge(START, "greedy")
    builder.add_edge("greedy", "sample")
    builder.add_edge("sample", END)
    return builder.compile()
