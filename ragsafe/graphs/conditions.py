"""The paper's fixed-context conditions: closed book, clean evidence, conflict evidence.

Each is a one-node graph around the shared answerer (the context lookup and the answer in one
LangGraph step; the trace keeps a ``context`` step before the ``answer`` step); the context comes
straight from the benchmark record, so these are the floor (closed book) and the ceiling (clean
evidence) every retrieval graph is compared against.
"""

from __future__ import annotations

from ragsafe.config import ConfigError
from ragsafe.graphs.base import Deps, OneAnswer, State, graph, then_answer, traced


def _evidence_graph(deps: Deps, field: str | None):
    @traced("context")
    async def context(state: State) -> dict:
        q = state["question"]
        if field is None:
            return {"context": None, "_trace": {"source": "none"}}
        text = getattr(q, field)
        if not text:
            raise ConfigError(f"question {q.id!r} ({q.origin}) has no {field}; this graph needs it "
                              f"(run `ragsafe validate` or use --skip-invalid)")
        return {"context": text, "_trace": {"source": field, "chars": len(text)}}

    # one LangGraph step: the lookup is a field read, cheaper than the step it would take
    return then_answer(deps, "context", context, one_step=True)


@graph("closed_book", params=OneAnswer, paper_condition="zero_shot", role="floor")
def closed_book(deps: Deps, params: OneAnswer):
    """Question and options only: the closed-book floor."""
    return _evidence_graph(deps, None)


@graph("clean_evidence", params=OneAnswer, paper_condition="evidence_clean", role="ceiling",
       needs_fields=("evidence_clean",))
def clean_evidence(deps: Deps, params: OneAnswer):
    """The clinician clean evidence as context: the ceiling."""
    return _evidence_graph(deps, "evidence_clean")


@graph("conflict_evidence", params=OneAnswer, paper_condition="evidence_conflict",
       needs_fields=("evidence_conflict",))
def conflict_evidence(deps: Deps, params: OneAnswer):
    """Misleading evidence that points to one wrong option."""
    return _evidence_graph(deps, "evidence_conflict")
