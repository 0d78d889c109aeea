"""Pre-computed report: the question's ``agentic_report`` as context (the paper's agentic condition).

The paper ran its multi-step research agent once per question and gave every model the same
report; this graph replays that condition exactly. Questions without a report are an error (the
runner refuses them up front; see ``option_research`` for running the research live).
"""

from __future__ import annotations

from ragsafe.config import ConfigError
from ragsafe.graphs.base import Deps, OneAnswer, State, graph, then_answer, traced


@graph("precomputed_report", params=OneAnswer, paper_condition="deep_research",
       needs_fields=("agentic_report",))
def build(deps: Deps, params: OneAnswer):
    """The benchmark's pre-computed research report as context, then answer."""

    @traced("report")
    async def report(state: State) -> dict:
        q = state["question"]
        text = (q.agentic_report or "").strip()
        if not text:
            raise ConfigError(f"question {q.id!r} ({q.origin or 'no origin'}) has no agentic_report; "
                              f"precomputed_report needs one per question (run `ragsafe validate`, use "
                              f"--skip-invalid, or run the research live with option_research)")
        return {"context": text, "_trace": {"source": "agentic_report", "chars": len(text)}}

    return then_answer(deps, "report", report)
