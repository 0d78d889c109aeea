"""The supervisor role: which options to research, and with what search query each.

One JSON-mode call over the question and its options (no evidence, so it is cheap). The plan
lists option letters and one search query per option; options without a usable query get the
default query (:func:`default_query`). An unparseable plan, or one naming no valid option, falls
back to researching every option with default queries (recorded as ``fallback: true``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Unpack

from ragsafe.agents.structured import STR, Role, Sampling, Structured, obj_schema
from ragsafe.llm.client import LLM

PLAN_SYSTEM = (
    "You plan the research for a multiple-choice radiology question. Choose the options worth checking "
    "against reference texts (leave out options that are clearly wrong) and write one short search query "
    "for each. Reply with one JSON object only:\n"
    '{"options": ["A", "C"], "queries": {"A": "search query", "C": "search query"}}'
)
"""System prompt of the supervisor (the reply shape is part of the prompt)."""

PLAN_USER = "Plan the research for this question.\n\nQuestion: {question}\n\nOptions:\n{options}\n\nJSON:"
"""User message; the first line is fixed so the prompt hash identifies the template."""

ROLE = Role(PLAN_SYSTEM, PLAN_USER, max_tokens=200)
"""The trace names the plan prompt by its system prompt's hash."""

CONTRA_SUFFIX = "differential diagnosis, mimics and features against"
"""Appended to an option's query to look for evidence that argues against it."""


@dataclasses.dataclass(frozen=True)
class Plan:
    options: tuple[str, ...]
    queries: dict[str, str]
    """Letter -> search query (every planned letter has one)."""

    def as_dict(self) -> dict[str, Any]:
        return {"options": list(self.options), "queries": dict(self.queries)}


def default_query(question: str, option: str, max_chars: int = 300) -> str:
    """Search text for one option: the option followed by the question stem (cut to ``max_chars``)."""
    text = f"{option.strip()} {' '.join(question.split())}"
    return text[:max_chars].rstrip()


def contra_query(option: str) -> str:
    """Search text for evidence against an option."""
    return f"{option.strip()} {CONTRA_SUFFIX}"


def all_options(question: str, options: dict[str, str]) -> Plan:
    """The plan without a supervisor: every option, default queries."""
    return Plan(tuple(options), {L: default_query(question, t) for L, t in options.items()})


def validator(question: str, options: dict[str, str], max_options: int | None = None):
    def validate(obj: dict) -> Plan:
        raw = obj["options"]
        if isinstance(raw, str):
            raw = [x for x in raw.replace(",", " ").split()]
        if not isinstance(raw, list):
            raise ValueError("'options' is not a list")
        letters = []
        for x in raw:
            L = str(x).strip().strip(".()").upper()[:1]
            if L in options and L not in letters:
                letters.append(L)
        if not letters:
            raise ValueError(f"no valid option letter in {raw!r}")
        if max_options:
            letters = letters[:max_options]
        given = obj.get("queries") if isinstance(obj.get("queries"), dict) else {}
        given = {str(k).strip().upper(): v for k, v in given.items()}
        queries = {}
        for L in letters:
            q = " ".join(str(given.get(L) or "").split())[:300]
            queries[L] = q if len(q) >= 3 else default_query(question, options[L])
        return Plan(tuple(sorted(letters)), queries)

    return validate


async def plan(
    llm: LLM,
    question: str,
    options: dict[str, str],
    *,
    max_options: int | None = None,
    **sampling: Unpack[Sampling],
) -> Structured:
    """Ask the supervisor for a research plan; ``.value`` is always a :class:`Plan`.

    Args:
        llm: the chat client.
        question: the question stem.
        options: letter -> option text.
        max_options: keep at most this many planned options (None: no cap).
        **sampling: ``max_tokens`` (default 200), ``temperature``, ``seed`` (:class:`~ragsafe.agents.structured.Sampling`).
    """
    return await ROLE.ask(
        llm, validate=validator(question, options, max_options), fallback=all_options(question, options),
        schema=obj_schema({"options": {"type": "array", "items": {"enum": list(options)}},
                           "queries": {"type": "object", "additionalProperties": STR}}),
        question=question, options=options, **sampling)
