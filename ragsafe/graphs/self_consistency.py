"""Self-consistency: any graph, then N sampled answers; ballots recorded for the SaFE-Scale SC metrics.

The inner graph runs once greedily (its letter is the sample's ``letter``) as a node of this graph
— graphs compose. Then ``n`` samples at ``temperature``: with ``resample="answer"`` (the paper's
SC) only the answer call is re-sampled over the greedy run's context; with ``resample="graph"``
the whole inner graph runs again per sample, so every agent step is sampled too. Sample ``i`` of
question ``qid`` uses the seed :func:`sample_seed` derives from (base seed, ``qid``) with sha256,
plus ``i``, so each sample is reproducible and cached on its own while draws are independent across
questions; the seeds of one question are consecutive, so where the endpoint takes the ``n``
parameter the N answer samples go out as one request (vLLM seeds child ``j`` of a request with
seed ``s`` as ``s + j``: the same draws as N single requests; cached per sample either way). The rule is recorded in every record's ``sc.seed_rule``; records without one (older
runs) used ``base_seed + 1 + i`` for every question (``seed_rule="shared"``): a seeded server then
draws the same random numbers for sample ``i`` of every question, so ballots share common random
numbers across questions.
Majority, confidence and the rest are computed by the metrics from the ballots, never here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from typing import Any, Mapping

from langgraph.graph import END, START, StateGraph

from ragsafe.agents import answer as answer_agent
from ragsafe.config import ConfigError
from ragsafe.graphs.base import Deps, State, Wraps, as_node, call_info, graph, graphs, traced
from ragsafe.params import nested_text, parse_nested

NAME = "self_consistency"


class SCState(State, total=False):
    sc: dict[str, Any]


SEED_RULES = {
    "per_question_block": "(int(sha256(f'{base_seed}:{question_id}')[:8], 16) & 0x7fffffff) + i",
    "per_question": "int(sha256(f'{base_seed}:{question_id}:{i}')[:8], 16) & 0x7fffffff",
    "shared": "base_seed + 1 + i (the same for every question; runs before the per-question rule)",
}
"""How sample ``i``'s seed is derived, by rule name (recorded in ``sc.seed_rule`` and ``run.json``)."""

LEGACY_SEED_RULE = "shared"
"""The rule of records that name none (written before the rule was recorded)."""


def sample_seed(base_seed: int, question_id: str, i: int, rule: str = "per_question_block") -> int:
    """The seed of sample ``i`` of question ``question_id`` (a stable hash, never Python's ``hash()``).

    ``per_question_block`` (the default) starts each question at its own hashed seed and counts up,
    so the N seeds of a question are consecutive: one request with ``seed=s, n=N`` draws them (vLLM
    seeds child ``j`` with ``s + j``), and draws stay independent across questions.

    Example:
        >>> sample_seed(0, "q1", 0) == sample_seed(0, "q1", 0) != sample_seed(0, "q2", 0)
        True
        >>> sample_seed(0, "q1", 1) - sample_seed(0, "q1", 0)
        1
        >>> sample_seed(7, "q1", 2, rule="shared")
        10
    """
    if rule == "shared":
        return base_seed + 1 + i
    if rule == "per_question_block":
        return (int(hashlib.sha256(f"{base_seed}:{question_id}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF) + i
    if rule != "per_question":
        raise ValueError(f"seed_rule={rule!r}: choose one of {sorted(SEED_RULES)}")
    digest = hashlib.sha256(f"{base_seed}:{question_id}:{i}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def seed_rule_of(sc: dict[str, Any]) -> str:
    """The seed rule a stored ``sc`` block was sampled with (old records name none: the shared rule)."""
    return sc.get("seed_rule") or LEGACY_SEED_RULE


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    inner: str = "closed_book"
    """The graph to wrap (any registered graph)."""
    inner_params: str | Mapping[str, Any] = ""
    """Params of the inner graph: a mapping ({"k": 3}) or the text form "key=value;key=value" ("k=3").
    Stored as text (a mapping is written out), so a run's config hash is the same either way."""
    n: int = 20
    """Sampled answers (the paper: 20). 0 switches sampling off (greedy only)."""
    temperature: float = 0.7
    """Sampling temperature of the N samples (the paper: 0.7)."""
    resample: str = "answer"
    """"answer": re-sample only the answer over the greedy context (the paper's SC); "graph": re-run the inner graph."""
    seed_rule: str = "per_question_block"
    """Sample seeds: "per_question_block" (a hash of base seed and question id, + i: independent draws across
    questions, consecutive within one, so one request with n serves them), "per_question" (a hash of base
    seed, question id and i) or "shared" (base_seed + 1 + i for every question, the rule of older runs)."""

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n={self.n}: must be >= 0")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature}: must be >= 0")
        if self.resample not in ("answer", "graph"):
            raise ValueError(f"resample={self.resample!r}: choose 'answer' or 'graph'")
        if self.seed_rule not in SEED_RULES:
            raise ValueError(f"seed_rule={self.seed_rule!r}: choose one of {sorted(SEED_RULES)}")
        if self.inner == NAME:
            raise ValueError(f"inner={NAME}: self-consistency cannot wrap itself")
        try:
            object.__setattr__(self, "inner_params", nested_text(self.inner_params))
        except ConfigError as e:
            raise ValueError(f"inner_params: {e}") from None

    @property
    def inner_overrides(self) -> dict[str, str]:
        """The inner graph's params as key -> text value."""
        return parse_nested(self.inner_params)

    def expected_llm_calls(self, n_options: int | None = None) -> tuple[int, int] | None:
        """The inner graph's calls, plus ``n`` answers ("answer") or ``n`` more runs of it ("graph")."""
        spec = graphs.get(self.inner)
        got = spec.expected_calls(spec.make_params(self.inner_overrides), n_options)
        if got is None:
            return None
        if self.resample == "graph":
            return got[0] * (1 + self.n), got[1] * (1 + self.n)
        return got[0] + self.n, got[1] + self.n


def _inner_retrieves(params: Params) -> bool:
    spec = graphs.get(params.inner)
    return spec.retrieves(spec.make_params(params.inner_overrides))


@graph(NAME, params=Params, needs_retriever=_inner_retrieves, wraps=Wraps(graph="inner", params="inner_params"))
def build(deps: Deps, params: Params):
    spec = graphs.get(params.inner)
    inner_params = spec.make_params(params.inner_overrides)
    if spec.retrieves(inner_params) and deps.retriever is None:
        raise ConfigError(f"self_consistency over {params.inner} needs a retriever")
    inner_app = spec.build(deps, inner_params)
    base_seed = deps.policy.seed or 0

    @traced("sample")
    async def sample(state: SCState) -> dict:
        q = state["question"]
        seeds = [sample_seed(base_seed, q.id, i, params.seed_rule) for i in range(params.n)]

        if params.resample == "answer":
            # one request with n where the endpoint takes it, else one per sample (same samples, same cache)
            got = await answer_agent.answer_samples(deps.llm, q.question, q.options, state.get("context"),
                                                    seeds=seeds, temperature=params.temperature,
                                                    mode=deps.policy.answer_mode, max_tokens=deps.policy.max_tokens)
            results = [{"letter": a.letter, "raw": a.raw, "dist": a.letter_dist,
                        "calls": [answer_agent.call_summary(a.call)]} for a in got]
        else:
            async def one(seed: int) -> dict:
                d = dataclasses.replace(deps, policy=dataclasses.replace(deps.policy, temperature=params.temperature,
                                                                        seed=seed))
                st = await spec.build(d, inner_params).ainvoke({"question": q, "queries": [], "trace": []})
                calls = [c for t in st.get("trace") or [] for c in t.get("llm_calls") or []]
                ans = st.get("answer") or {}
                return {"letter": st.get("letter"), "raw": ans.get("raw"), "dist": ans.get("letter_dist"),
                        "calls": calls}

            results = await asyncio.gather(*(one(s) for s in seeds))
        sc = {"n": params.n, "temperature": params.temperature, "resample": params.resample,
              "inner": params.inner, "seed_rule": params.seed_rule, "seeds": seeds,
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
