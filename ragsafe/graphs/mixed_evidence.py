"""Mixed evidence: the clean and the conflict evidence together in one context, in a chosen order.

The paper shows each alone (the ceiling and its misleading twin); this condition asks what a model
does when both are in front of it, as in a real record where a correct source and a misleading one
sit side by side. ``order`` puts the clean text first, the conflict text first, or draws the order
per question from a stable hash of (seed, question id), so a run is reproducible and half of the
questions (in expectation) get each order. The trace's ``order`` says which one each question got.
"""

from __future__ import annotations

import dataclasses
import hashlib

from ragsafe.agents.answer import CHUNK_SEPARATOR
from ragsafe.config import ConfigError
from ragsafe.graphs.base import Deps, State, graph, then_answer, traced

ORDERS = ("clean_first", "conflict_first", "random")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    order: str = "random"
    """"clean_first", "conflict_first", or "random" (per question, seeded by (seed, question id))."""
    abstain: bool = False
    """Let the model answer "insufficient evidence" (recorded as an abstention, not a null)."""

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order={self.order!r}: choose one of {', '.join(ORDERS)}")

    def expected_llm_calls(self, n_options: int | None = None) -> int:
        """One answer call."""
        return 1


def seeded_coin(seed: int | None, question_id: str, salt: str) -> bool:
    """A fair, reproducible coin per (seed, question, purpose): sha256, never Python's hash()."""
    return hashlib.sha256(f"{seed or 0}:{question_id}:{salt}".encode()).digest()[0] < 128


def need(q, field: str) -> str:
    text = getattr(q, field)
    if not text:
        raise ConfigError(f"question {q.id!r} ({q.origin}) has no {field}; this graph needs it "
                          f"(run `ragsafe validate` or use --skip-invalid)")
    return text


@graph("mixed_evidence", params=Params, needs_fields=("evidence_clean", "evidence_conflict"))
def build(deps: Deps, params: Params):
    @traced("context")
    async def context(state: State) -> dict:
        q = state["question"]
        clean, conflict = need(q, "evidence_clean"), need(q, "evidence_conflict")
        order = params.order
        if order == "random":
            order = "clean_first" if seeded_coin(deps.policy.seed, q.id, "mixed_evidence.order") else "conflict_first"
        parts = [clean, conflict] if order == "clean_first" else [conflict, clean]
        return {"context": CHUNK_SEPARATOR.join(p.strip() for p in parts),
                "_trace": {"source": "evidence_clean+evidence_conflict",
                           "sources": ["evidence_clean", "evidence_conflict"], "order": order}}

    return then_answer(deps, "context", context, abstain=params.abstain)
