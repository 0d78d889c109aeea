"""The synthesizer role: turn per-option research notes into a short structured report.

One JSON-mode call: a one-sentence finding per researched option and an overall summary. The
report text itself is rendered here, deterministically, from those findings plus the research
verdicts and evidence excerpts, so its layout is the same for every model and is capped at a
fixed length. An unparseable reply falls back to the report rendered from the research notes
alone (``fallback: true`` in the trace).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Unpack

from ragsafe.agents.structured import STR, Role, Sampling, Structured, obj_schema
from ragsafe.llm.client import LLM

SYNTH_SYSTEM = (
    "You write a short research report for a multiple-choice radiology question from research notes "
    "on its options. Do not pick an answer letter. Reply with one JSON object only:\n"
    '{"findings": {"A": "one sentence on what the evidence says about option A"}, '
    '"summary": "two sentences on what the evidence shows overall"}'
)
"""System prompt of the synthesizer (the reply shape is part of the prompt)."""

SYNTH_USER = "Write the report from these research notes.\n\nQuestion: {question}\n\nResearch notes:\n{notes}\n\nJSON:"
"""User message; the first line is fixed so the prompt hash identifies the template."""

ROLE = Role(SYNTH_SYSTEM, SYNTH_USER, max_tokens=250)
"""The trace names the synthesis prompt by its system prompt's hash."""
SCHEMA = obj_schema({"findings": {"type": "object", "additionalProperties": STR}, "summary": STR})

REPORT_TITLE = "Research report"


@dataclasses.dataclass(frozen=True)
class OptionNotes:
    """What the research sub-graph found for one option."""

    letter: str
    text: str
    verdict: str
    reason: str = ""
    excerpts: tuple[tuple[str, str], ...] = ()
    """(side, text): side "for" / "against" as the judge named the passage, "" when it named none."""


@dataclasses.dataclass(frozen=True)
class Synthesis:
    findings: dict[str, str]
    summary: str

    def as_dict(self) -> dict[str, Any]:
        return {"findings": dict(self.findings), "summary": self.summary}


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n].rstrip() + " …"


def _evidence_lines(n: OptionNotes, excerpt_chars: int) -> list[str]:
    return [f"  Evidence{' ' + side if side else ''}: {_clip(text, excerpt_chars)}" for side, text in n.excerpts]


def format_notes(notes: list[OptionNotes], excerpt_chars: int = 300) -> str:
    lines = []
    for n in notes:
        lines.append(
            f"Option {n.letter}. {n.text} — research verdict: {n.verdict}"
            + (f" ({_clip(n.reason, 200)})" if n.reason else "")
        )
        lines += _evidence_lines(n, excerpt_chars)
    return "\n".join(lines) if lines else "(no option was researched)"


def render_report(
    notes: list[OptionNotes], synthesis: Synthesis | None, *, excerpt_chars: int = 300, max_chars: int = 2400
) -> str:
    """The report the answerer reads: per option a verdict, a finding and evidence; then a summary."""
    findings = synthesis.findings if synthesis else {}
    lines = [REPORT_TITLE]
    for n in notes:
        lines.append(f"Option {n.letter}. {n.text}")
        lines.append(f"  Evidence verdict: {n.verdict}")
        finding = findings.get(n.letter) or n.reason
        if finding:
            lines.append(f"  Finding: {_clip(finding, 300)}")
        lines += _evidence_lines(n, excerpt_chars)
    if synthesis and synthesis.summary:
        lines.append(f"Summary: {_clip(synthesis.summary, 600)}")
    text = "\n".join(lines)
    return text if len(text) <= max_chars else text[:max_chars].rstrip() + " …"


def validator(letters: list[str]):
    def validate(obj: dict) -> Synthesis:
        raw = obj.get("findings")
        findings = {}
        if isinstance(raw, dict):
            for k, v in raw.items():
                L = str(k).strip().strip(".()").upper().removeprefix("OPTION ").strip()[:1]
                if L in letters and isinstance(v, str) and v.strip():
                    findings[L] = " ".join(v.split())[:400]
        summary = obj.get("summary")
        summary = " ".join(summary.split())[:800] if isinstance(summary, str) else ""
        if not findings and not summary:
            raise ValueError("neither findings nor a summary")
        return Synthesis(findings, summary)

    return validate


async def synthesize(
    llm: LLM,
    question: str,
    notes: list[OptionNotes],
    *,
    excerpt_chars: int = 300,
    **sampling: Unpack[Sampling],
) -> Structured:
    """Ask for findings and a summary; ``.value`` is a :class:`Synthesis` or None (the fallback).

    Args:
        llm: the chat client.
        question: the question stem.
        notes: per-option research notes, in letter order.
        excerpt_chars: each evidence excerpt in the prompt is cut to this many characters.
        **sampling: ``max_tokens`` (default 250), ``temperature``, ``seed`` (:class:`~ragsafe.agents.structured.Sampling`).
    """
    return await ROLE.ask(llm, validate=validator([n.letter for n in notes]), fallback=None, schema=SCHEMA,
                          question=question, notes=format_notes(notes, excerpt_chars), **sampling)
